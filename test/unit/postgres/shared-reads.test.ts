import { describe, expect, it } from 'vitest';
import { RecordBatchBuilder, stampBatch } from '../../../src/storage/index.js';
import { SharedReads } from '../../../src/postgres/shared-reads.js';

/** What a read of a partition finds: records `from` to `to` - 1 as one batch (null: none), and the partition's end then. */
function found(from: number, to: number, logEndOffset: number) {
  if (to <= from) return { data: null, logStartOffset: 0, logEndOffset };
  const builder = new RecordBatchBuilder(1024);
  for (let offset = from; offset < to; offset++) builder.append(0, 'k', `m-${offset}`, null, Buffer.from('v'));
  const data = builder.finish();
  stampBatch(data, from);
  return { data, logStartOffset: 0, logEndOffset };
}

/** A load that answers when told. */
function controlled() {
  let answer: (value: ReturnType<typeof found>) => void = () => {};
  const promise = new Promise<ReturnType<typeof found>>((resolve) => (answer = resolve));
  return { load: () => promise, answer };
}

describe('SharedReads', () => {
  it('makes one load of reads asked for together, and answers the next ones from it while nothing newer is heard of', async () => {
    const reads = new SharedReads();
    const pending = controlled();
    const together = [reads.read(1, 0, 1024, pending.load), reads.read(1, 0, 1024, pending.load), reads.read(1, 0, 1024, pending.load)];
    pending.answer(found(0, 5, 5));
    const results = await Promise.all(together);
    expect(reads.loads).toBe(1);
    expect(results[1]).toBe(results[0]);
    expect(await reads.read(1, 0, 1024, () => Promise.reject(new Error('not loaded again')))).toBe(results[0]);
    // Another offset, size or partition is another read.
    await reads.read(1, 1, 1024, async () => found(1, 5, 5));
    await reads.read(1, 0, 2048, async () => found(0, 5, 5));
    await reads.read(2, 0, 1024, async () => found(0, 5, 5));
    expect(reads.loads).toBe(4);
  });

  it('does not answer from a read that reached the end once a later end is heard of, but does from one that stopped short of it', async () => {
    const reads = new SharedReads();
    await reads.read(1, 0, 1024, async () => found(0, 1, 1));
    // Stopped short (maxBytes): offsets 0-2 of 10.
    await reads.read(2, 0, 64, async () => found(0, 3, 10));
    reads.heard(1, 5);
    reads.heard(2, 12);
    expect((await reads.read(1, 0, 1024, async () => found(0, 5, 5))).logEndOffset).toBe(5);
    expect((await reads.read(2, 0, 64, () => Promise.reject(new Error('not loaded again')))).logEndOffset).toBe(10);
    expect(reads.loads).toBe(3);
  });

  it('does not join a read that began before a later end was heard of: it may have looked before that commit', async () => {
    const reads = new SharedReads();
    const early = controlled();
    const first = reads.read(1, 0, 1024, early.load);
    reads.heard(1, 3);
    const second = reads.read(1, 0, 1024, async () => found(0, 3, 3));
    early.answer(found(0, 0, 0));
    expect((await first).data).toBeNull();
    expect((await second).logEndOffset).toBe(3);
    expect(reads.loads).toBe(2);
    // The early read, ending after the later one, did not take its place: the next read is answered by the later one.
    expect((await reads.read(1, 0, 1024, () => Promise.reject(new Error('not loaded again')))).logEndOffset).toBe(3);
  });

  it('keeps no read that found nothing, and no failure', async () => {
    const reads = new SharedReads();
    await reads.read(1, 0, 1024, async () => found(0, 0, 0));
    await expect(reads.read(1, 0, 1024, () => Promise.reject(new Error('the database went away')))).rejects.toThrow('went away');
    expect((await reads.read(1, 0, 1024, async () => found(0, 2, 2))).logEndOffset).toBe(2);
    expect(reads.loads).toBe(3);
  });
});

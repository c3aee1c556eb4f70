import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LogConfig, PartitionLog, StoredRecord } from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

type Storage = typeof import('../../../src/storage/index.js');

const config: LogConfig = {
  segmentBytes: 4096,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 256,
  retentionMs: -1,
  retentionBytes: -1,
};

/** The storage modules loaded afresh with RILL_FAILPOINTS set to `value` (read once, at load). */
async function storageWith(value: string | undefined): Promise<Storage> {
  vi.resetModules();
  vi.stubEnv('RILL_FAILPOINTS', value);
  return import('../../../src/storage/index.js');
}

function batch(storage: Storage, value: string): Buffer {
  const builder = new storage.RecordBatchBuilder(64);
  builder.append(1000, 'k', `id-${value}`, null, Buffer.from(value.repeat(20)));
  return builder.finish();
}

function values(storage: Storage, log: PartitionLog): string[] {
  const records: StoredRecord[] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const data = log.read(offset, 1 << 20);
    if (data.length === 0) break;
    storage.forEachRecord(data, offset, (r) => void records.push(r));
    offset = records.at(-1)!.offset + 1;
  }
  return records.map((r) => r.messageId ?? '');
}

function logBytes(dir: string): number {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .reduce((total, f) => total + fs.statSync(path.join(dir, f)).size, 0);
}

describe('a full disk and failed fsyncs leave the log as it was', () => {
  const tempDir = useTempDirs();
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  for (const fault of ['short', 'enospc'] as const) {
    it(`a ${fault === 'short' ? 'short write' : 'write refused'} with ENOSPC is cut off whole, and the next batch takes the same offset`, async () => {
      const dir = tempDir();
      const healthy = await storageWith(undefined);
      const { log } = healthy.PartitionLog.open(dir, config);
      log.append(batch(healthy, 'a'));
      await log.flush();
      log.close();
      const before = logBytes(dir);

      const full = await storageWith(`write=${fault}`);
      const { log: failing } = full.PartitionLog.open(dir, config);
      expect(() => failing.append(batch(full, 'b'))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
      // Nothing of the batch is left: not a half-written batch, not a gap of zeros.
      expect(logBytes(dir)).toBe(before);
      expect(failing.logEndOffset).toBe(1);
      expect(failing.isOffline).toBe(false);

      const again = await storageWith(undefined);
      // As after a crash: no clean shutdown, so recovery checks every batch past the recovery point.
      const { log: recovered, recovery } = again.PartitionLog.open(dir, config);
      expect(recovery.truncatedBytes).toBe(0);
      expect(recovered.append(batch(again, 'c')).baseOffset).toBe(1);
      expect(values(again, recovered)).toEqual(['id-a', 'id-c']);
    });
  }

  it('after a failed fsync, cuts the log back to its durable end, so nothing reported failed can come back', async () => {
    const dir = tempDir();
    const storage = await storageWith('fsync=error');
    const { log } = storage.PartitionLog.open(dir, config);
    log.append(batch(storage, 'a'));
    log.append(batch(storage, 'b'));
    const epoch = log.epoch;
    await expect(log.flush()).rejects.toMatchObject({ code: 'EIO' });
    expect(log.rollBackToDurableEnd(new Error('fsync failed'))).toBe(2);
    expect(log.epoch).toBe(epoch + 1);
    expect(log.logEndOffset).toBe(0);
    expect(logBytes(dir)).toBe(0);
    // The next batch takes offset 0 again; after a crash only what was written after the cut is there.
    expect(log.append(batch(storage, 'c')).baseOffset).toBe(0);
    const reopened = (await storageWith(undefined)).PartitionLog.open(dir, config);
    expect(values(storage, reopened.log)).toEqual(['id-c']);
  });

  it('cuts back across a segment rolled since the durable end', async () => {
    const dir = tempDir();
    const storage = await storageWith(undefined);
    const { log } = storage.PartitionLog.open(dir, config);
    log.append(batch(storage, 'a'));
    await log.flush();
    for (let i = 0; i < 60; i++) log.append(batch(storage, `n${i}`));
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.log')).length).toBeGreaterThan(1);
    log.rollBackToDurableEnd(new Error('fsync failed'));
    expect(log.logEndOffset).toBe(1);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.log'))).toEqual(['00000000000000000000.log']);
    expect(values(storage, log)).toEqual(['id-a']);
  });

  it('after a crash, checks every batch past the recovery point, not only the tail of the newest segment', async () => {
    const dir = tempDir();
    const storage = await storageWith(undefined);
    // No fsync on roll: the recovery point stays at 0, so every segment must be checked.
    const { log } = storage.PartitionLog.open(dir, config);
    for (let i = 0; i < 150; i++) log.append(batch(storage, `m${i}`));
    const files = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.log'))
      .sort();
    expect(files.length).toBeGreaterThanOrEqual(3);
    // Damage a batch in the middle of the first segment (as a full disk once did: zeros in place of a batch).
    const first = path.join(dir, files[0]!);
    const fd = fs.openSync(first, 'r+');
    fs.writeSync(fd, Buffer.alloc(64), 0, 64, 1200);
    fs.closeSync(fd);
    // no close(): a crash
    const { log: recovered, recovery } = storage.PartitionLog.open(dir, config);
    expect(recovery.truncatedBytes).toBeGreaterThan(0);
    expect(recovery.droppedSegments).toBe(files.length - 1);
    const kept = values(storage, recovered);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => `id-m${i}`));
    expect(recovered.logEndOffset).toBe(kept.length);
  });

  it('writes the recovery point at a checkpoint; after a crash, checks every batch past it, even inside its segment, and none before it', async () => {
    const dir = tempDir();
    const storage = await storageWith(undefined);
    const { log } = storage.PartitionLog.open(dir, config);
    for (let i = 0; i < 150; i++) log.append(batch(storage, `m${i}`));
    // Rolls do not fsync (the journal makes batches durable): no recovery point until a checkpoint.
    expect(fs.existsSync(path.join(dir, 'recovery-point.json'))).toBe(false);
    await log.checkpoint();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'recovery-point.json'), 'utf8'))).toEqual({ v: 1, offset: 150 });
    for (let i = 150; i < 156; i++) log.append(batch(storage, `m${i}`));
    const segments = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.log'))
      .sort();
    const active = path.join(dir, segments.at(-1)!);
    expect(Number(segments.at(-1)!.slice(0, 20))).toBeLessThan(150);
    // The position of offset 152 in the active segment, which also holds offsets before the point.
    const bytes = fs.readFileSync(active);
    let position = 0;
    while (storage.readBatchInfo(bytes, position).baseOffset < 152) position += storage.readBatchInfo(bytes, position).size;
    // A crash (no close), then damage: one batch before the point (in the first segment, not in its
    // tail past the last index entry) and the batch at 152, past the point but before the active
    // segment's last index entry.
    const damage = (file: string, at: number): void => {
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.alloc(16, 0xff), 0, 16, at);
      fs.closeSync(fd);
    };
    damage(path.join(dir, segments[0]!), 1200);
    damage(active, position + 50);
    const firstSize = fs.statSync(path.join(dir, segments[0]!)).size;
    const { log: recovered, recovery } = storage.PartitionLog.open(dir, config);
    expect(recovered.logEndOffset).toBe(152);
    expect(recovery.truncatedBytes).toBe(bytes.length - position);
    expect(fs.statSync(path.join(dir, segments[0]!)).size).toBe(firstSize);
  });
});

import { describe, expect, it } from 'vitest';
import { Deduplicator, type DeduplicatedTicket, type LogReads } from '../../../src/broker/front/deduplication/index.js';
import { WorkerDownError, WorkerStoppedError } from '../../../src/broker/front/worker-supervisor.js';
import { Fingerprint, FingerprintIndex } from '../../../src/broker/front/deduplication/fingerprint-index.js';
import { StoredMessageIds } from '../../../src/broker/front/deduplication/stored-message-ids.js';
import type { Topic } from '../../../src/broker/index.js';
import { RillError } from '../../../src/errors/index.js';
import { createLogger } from '../../../src/logging/index.js';
import { RecordBatchBuilder } from '../../../src/storage/index.js';
import { testTopic } from '../../helpers/topics.js';

const fingerprint = (id: string): Fingerprint => new Fingerprint().of(id, 42);

describe('FingerprintIndex', () => {
  it('agrees with a Map through random inserts, replacements and deletions, across growth and wrapped runs', () => {
    const index = new FingerprintIndex();
    const model = new Map<string, number>();
    let seed = 7;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let step = 0; step < 200_000; step++) {
      const id = `id-${random(5000)}`;
      const fp = fingerprint(id);
      if (random(3) === 0) {
        // Removed only when it holds the value named.
        const value = random(4) + 1;
        index.deleteIf(fp.a, fp.b, fp.c, value);
        if (model.get(id) === value) model.delete(id);
      } else {
        const value = random(4) + 1;
        index.set(fp, value);
        model.set(id, value);
      }
    }
    expect(index.size).toBe(model.size);
    expect(index.resizes).toBeGreaterThan(0);
    for (let i = 0; i < 5000; i++) expect(index.get(fingerprint(`id-${i}`)), `id-${i}`).toBe(model.get(`id-${i}`) ?? -1);
  });

  it('sized for the entries expected, takes them without rehashing; values up to the largest reference come back as stored', () => {
    const index = new FingerprintIndex(50_000);
    const largest = 127 * 2 ** 24 - 1;
    for (let i = 0; i < 50_000; i++) index.set(fingerprint(`e-${i}`), i === 0 ? largest : i);
    expect(index.resizes).toBe(0);
    expect(index.get(fingerprint('e-0'))).toBe(largest);
    expect(index.get(fingerprint('e-49999'))).toBe(49_999);
    expect(index.get(fingerprint('absent'))).toBe(-1);
  });

  it('gives different fingerprints to the same ID in two topics (seeds) and to IDs that differ in one character', () => {
    const one = new Fingerprint().of('order-1', 1);
    const other = new Fingerprint().of('order-1', 2);
    const next = new Fingerprint().of('order-2', 1);
    expect([one.a, one.b, one.c]).not.toEqual([other.a, other.b, other.c]);
    expect([one.a, one.b, one.c]).not.toEqual([next.a, next.b, next.c]);
  });
});

describe('StoredMessageIds', () => {
  it('finds each messageID at its partition and offset while a ring grows, after it wrapped round', () => {
    // Nothing made room for at the start: the ring and the index grow.
    const ids = new StoredMessageIds(100_000, 0);
    const ring = ids.ringFor(5);
    // Expire the first 1,000 so that later ones wrap round the first columns before they grow.
    for (let i = 0; i < 1000; i++) ids.add(ring, fingerprint(`old-${i}`), 0, i, 0);
    ids.expire(10);
    expect(ids.size).toBe(0);
    for (let i = 0; i < 5000; i++) ids.add(ring, fingerprint(`m-${i}`), i % 7, 1000 + i, 100);
    expect(ids.size).toBe(5000);
    for (let i = 0; i < 5000; i++) {
      const at = ids.find(fingerprint(`m-${i}`))!;
      expect([at.ring.partition(at.slot), at.ring.offset(at.slot), at.ring.isWithinWindow(at.slot, 104), at.ring.isWithinWindow(at.slot, 105)]).toEqual([
        i % 7,
        1000 + i,
        true,
        false,
      ]);
    }
    expect(ids.find(fingerprint('old-0'))).toBeNull();
    expect(ids.evictedEarly).toBe(0);
    expect(ids.growths).toBeGreaterThan(0);
  });

  it('makes room for the default capacity at the start: filling it and going on grows nothing (each growth copies every entry at once)', () => {
    const ids = new StoredMessageIds(250_000);
    const ring = ids.ringFor(1_000_000_000);
    for (let i = 0; i < 300_000; i++) ids.add(ring, fingerprint(`m-${i}`), i % 4, i, i);
    expect(ids.growths).toBe(0);
    expect(ids.size).toBe(250_000);
    expect(ids.find(fingerprint('m-49999'))).toBeNull();
    for (const i of [50_000, 123_456, 299_999]) {
      const at = ids.find(fingerprint(`m-${i}`))!;
      expect([at.ring.partition(at.slot), at.ring.offset(at.slot)]).toEqual([i % 4, i]);
    }
  });

  it('forgets the oldest first when full, and counts it', () => {
    const ids = new StoredMessageIds(1000);
    const ring = ids.ringFor(1_000_000);
    for (let i = 0; i < 1500; i++) ids.add(ring, fingerprint(`m-${i}`), 0, i, i);
    expect(ids.size).toBe(1000);
    expect(ids.find(fingerprint('m-499'))).toBeNull();
    const at = ids.find(fingerprint('m-500'))!;
    expect(at.ring.offset(at.slot)).toBe(500);
    expect(ids.evictedEarly).toBe(500);
  });

  it('makes room from expired entries of a short window before forgetting a long window’s live ones', () => {
    const ids = new StoredMessageIds(1000);
    const long = ids.ringFor(7 * 24 * 3600_000);
    const short = ids.ringFor(1000);
    const kept = (): number => Array.from({ length: 10 }, (_, i) => ids.find(fingerprint(`keep-${i}`))).filter((at) => at !== null).length;
    // The long window's entries are the oldest of all; then the short window fills the rest and keeps coming.
    for (let i = 0; i < 10; i++) ids.add(long, fingerprint(`keep-${i}`), 0, i, 0);
    // One every 2 ms in a 1 s window: about 500 live at a time, so the 1,000 fill up with expired ones.
    for (let i = 0; i < 5000; i++) ids.add(short, fingerprint(`s-${i}`), 0, i, 10 + 2 * i);
    expect(kept()).toBe(10);
    expect(ids.evictedEarly).toBe(0);
    // Only when nothing has expired does a live entry go, the oldest: the long window's first.
    for (let i = 0; i < 1000; i++) ids.add(short, fingerprint(`burst-${i}`), 0, i, 10_008);
    expect(ids.find(fingerprint('keep-0'))).toBeNull();
    expect(ids.evictedEarly).toBeGreaterThan(0);
    expect(ids.size).toBe(1000);
  });
});

class Ticket implements DeduplicatedTicket {
  outcome: string | null = null;
  settle(offset: number, failure: RillError | null): void {
    this.outcome = failure === null ? `stored@${offset}` : `failed:${failure.code}`;
  }
  duplicate(partition: number, offset: number): void {
    this.outcome = `duplicate@${partition}/${offset}`;
  }
}

function batchOf(baseOffset: number, messageIds: string[]): Buffer {
  const builder = new RecordBatchBuilder(1024);
  for (const id of messageIds) builder.append(0, null, id, null, Buffer.from('x'));
  const batch = builder.finish();
  batch.writeBigInt64BE(BigInt(baseOffset), 0);
  return batch;
}

describe('Deduplicator', () => {
  const topic: Topic = testTopic('orders', 2);
  const settings = { windowOf: () => 60_000, maxMessageIds: 10_000 };

  it('holds publishes while a topic’s window is read back from its log, then answers resends of what it read as duplicates', async () => {
    let releaseRead: () => void = () => {};
    const readGate = new Promise<void>((resolve) => (releaseRead = resolve));
    const logs = [batchOf(0, ['a', 'b']), batchOf(0, ['c'])];
    const reads: LogReads = {
      offsets: async (_topic, partition) => ({ logStartOffset: 0, logEndOffset: partition === 0 ? 2 : 1, appendedSinceOffset: 0 }),
      storedEnd: () => 0,
      read: async (_topic, partition, offset) => {
        await readGate;
        return { batches: offset === 0 ? logs[partition]! : null };
      },
    };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    const stored: string[] = [];
    const store = (id: string, ticket: { settle: (offset: number, failure: RillError | null) => void }): void => {
      stored.push(id);
      ticket.settle(10 + stored.length, null);
    };
    const rebuilt = deduplicator.rebuild([topic]);
    const early = new Ticket();
    deduplicator.submit(topic, 1, 'b', early, 'b', store, 1);
    expect(early.outcome).toBeNull();
    releaseRead();
    await rebuilt;
    expect(early.outcome).toBe('duplicate@0/1');
    const fresh = new Ticket();
    deduplicator.submit(topic, 0, 'd', fresh, 'd', store, 1);
    const again = new Ticket();
    deduplicator.submit(topic, 1, 'c', again, 'c', store, 1);
    expect([fresh.outcome, again.outcome, stored]).toEqual(['stored@11', 'duplicate@1/0', ['d']]);
    deduplicator.close();
  });

  it('gives a resend waiting on a copy in flight that copy’s outcome, and forgets a copy that failed', () => {
    const reads: LogReads = { offsets: async () => ({ logStartOffset: 0, logEndOffset: 0 }), read: async () => ({ batches: null }), storedEnd: () => 0 };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    const inFlight: Array<{ settle: (offset: number, failure: RillError | null) => void }> = [];
    const store = (_id: string, ticket: (typeof inFlight)[number]) => void inFlight.push(ticket);

    const first = new Ticket();
    const resend = new Ticket();
    deduplicator.submit(topic, 0, 'x', first, 'x', store, 1);
    deduplicator.submit(topic, 1, 'x', resend, 'x', store, 1);
    expect(inFlight).toHaveLength(1);
    inFlight[0]!.settle(-1, new RillError('unavailable', 'worker died'));
    expect([first.outcome, resend.outcome]).toEqual(['failed:unavailable', 'failed:unavailable']);

    const retry = new Ticket();
    const retryCopy = new Ticket();
    deduplicator.submit(topic, 1, 'x', retry, 'x', store, 1);
    deduplicator.submit(topic, 0, 'x', retryCopy, 'x', store, 1);
    expect(inFlight).toHaveLength(2);
    inFlight[1]!.settle(7, null);
    expect([retry.outcome, retryCopy.outcome]).toEqual(['stored@7', 'duplicate@1/7']);
    deduplicator.close();
  });

  it('refuses resends of a message in flight to a worker that stopped until the worker is back, then answers them from the log', async () => {
    // Partition 1 holds "a" (written before its worker died, never answered); "b" never reached it.
    const log = batchOf(5, ['a']);
    const readAt: number[] = [];
    const reads: LogReads = {
      offsets: async () => ({ logStartOffset: 0, logEndOffset: 6 }),
      read: async (_topic, _partition, offset) => {
        readAt.push(offset);
        return { batches: offset <= 5 ? log : null };
      },
      // Where the partition's end was when the batch went in flight: the read starts there, not at 0.
      storedEnd: () => 5,
    };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    const inFlight: Array<{ settle: (offset: number, failure: RillError | null) => void }> = [];
    const store = (_id: string, ticket: (typeof inFlight)[number]) => void inFlight.push(ticket);
    deduplicator.submit(topic, 1, 'a', new Ticket(), 'a', store, 1);
    deduplicator.submit(topic, 1, 'b', new Ticket(), 'b', store, 1);
    const stopped = new WorkerStoppedError('broker worker 1 stopped before answering');
    for (const ticket of inFlight.splice(0)) ticket.settle(-1, stopped);

    const early = new Ticket();
    deduplicator.submit(topic, 0, 'a', early, 'a', store, 1);
    expect(early.outcome).toBe('failed:unavailable');
    expect(inFlight).toHaveLength(0);

    // Another worker's restart settles nothing of partition 1.
    await deduplicator.workerRestarted([topic], () => false);
    const stillEarly = new Ticket();
    deduplicator.submit(topic, 0, 'b', stillEarly, 'b', store, 1);
    expect(stillEarly.outcome).toBe('failed:unavailable');

    await deduplicator.workerRestarted([topic], (_topic, partition) => partition === 1);
    const resendA = new Ticket();
    const resendB = new Ticket();
    deduplicator.submit(topic, 0, 'a', resendA, 'a', store, 1);
    deduplicator.submit(topic, 0, 'b', resendB, 'b', store, 1);
    expect(resendA.outcome).toBe('duplicate@1/5');
    expect(readAt).toEqual([5]);
    // "b" was never written: stored now.
    expect(inFlight).toHaveLength(1);
    inFlight[0]!.settle(6, null);
    expect(resendB.outcome).toBe('stored@6');
    deduplicator.close();
  });

  it('does not hold a topic for a partition whose worker is down at start-up, and reads that partition once the worker is back', async () => {
    let workerUp = false;
    const logs = [batchOf(0, ['a']), batchOf(0, ['c'])];
    const reads: LogReads = {
      offsets: async (_topic, partition) => {
        if (partition === 1 && !workerUp) throw new WorkerDownError('broker worker 1 is down');
        return { logStartOffset: 0, logEndOffset: 1, appendedSinceOffset: 0 };
      },
      read: async (_topic, partition, offset) => ({ batches: offset === 0 ? logs[partition]! : null }),
      storedEnd: () => 0,
    };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    const stored: string[] = [];
    const store = (id: string, ticket: { settle: (offset: number, failure: RillError | null) => void }): void => {
      stored.push(id);
      ticket.settle(100 + stored.length, null);
    };
    await deduplicator.rebuild([topic]);
    const resendA = new Ticket();
    deduplicator.submit(topic, 1, 'a', resendA, 'a', store, 1);
    expect(resendA.outcome).toBe('duplicate@0/0');

    workerUp = true;
    await deduplicator.workerRestarted([topic], (_topic, partition) => partition === 1);
    const resendC = new Ticket();
    deduplicator.submit(topic, 0, 'c', resendC, 'c', store, 1);
    expect(resendC.outcome).toBe('duplicate@1/0');
    expect(stored).toEqual([]);
    deduplicator.close();
  });

  it('answers the publishes it holds when the broker closes, refuses new ones, and says when none is held', async () => {
    const reads: LogReads = {
      offsets: () => new Promise(() => {}), // a read-back that never ends
      read: async () => ({ batches: null }),
      storedEnd: () => 0,
    };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    void deduplicator.rebuild([topic]);
    const held = new Ticket();
    deduplicator.submit(topic, 0, 'x', held, 'x', () => undefined, 500);
    expect(deduplicator.heldBytes).toBe(500);
    let idle = false;
    void deduplicator.whenNothingHeld().then(() => (idle = true));
    await Promise.resolve();
    expect([held.outcome, idle]).toEqual([null, false]);
    deduplicator.close();
    await Promise.resolve();
    expect([held.outcome, idle, deduplicator.heldBytes]).toEqual(['failed:unavailable', true, 0]);
    const late = new Ticket();
    deduplicator.submit(topic, 0, 'y', late, 'y', () => undefined, 1);
    expect(late.outcome).toBe('failed:unavailable');
  });

  it('remembers a message whose entry was forgotten while it was in flight (the limit reached), once it is stored', () => {
    const reads: LogReads = { offsets: async () => ({ logStartOffset: 0, logEndOffset: 0 }), read: async () => ({ batches: null }), storedEnd: () => 0 };
    const deduplicator = new Deduplicator(reads, { windowOf: () => 60_000, maxMessageIds: 1000 }, createLogger('silent'));
    const inFlight: Array<{ settle: (offset: number, failure: RillError | null) => void }> = [];
    const store = (_id: string, ticket: (typeof inFlight)[number]) => void inFlight.push(ticket);
    deduplicator.submit(topic, 0, 'slow', new Ticket(), 'slow', store, 1);
    // A thousand more in flight push the first one's entry out.
    for (let i = 0; i < 1000; i++) deduplicator.submit(topic, 1, `m-${i}`, new Ticket(), `m-${i}`, store, 1);
    for (let i = 1; i <= 1000; i++) inFlight[i]!.settle(i, null);
    inFlight[0]!.settle(0, null);
    const resend = new Ticket();
    deduplicator.submit(topic, 1, 'slow', resend, 'slow', store, 1);
    expect(resend.outcome).toBe('duplicate@0/0');
    deduplicator.close();
  });
});

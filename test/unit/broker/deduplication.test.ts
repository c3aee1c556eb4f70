import { describe, expect, it } from 'vitest';
import { Deduplicator, type DeduplicatedTicket, type LogReads } from '../../../src/broker/front/deduplication/index.js';
import { WorkerStoppedError } from '../../../src/broker/front/worker-supervisor.js';
import { StoredMessageIds, type MessageIdTable } from '../../../src/broker/front/deduplication/stored-message-ids.js';
import type { Topic } from '../../../src/broker/index.js';
import { RillError } from '../../../src/errors/index.js';
import { createLogger } from '../../../src/logging/index.js';
import { RecordBatchBuilder } from '../../../src/storage/index.js';

describe('StoredMessageIds', () => {
  it('finds each messageID at its partition and offset while the ring grows, after it wrapped round', () => {
    const ids = new StoredMessageIds<never>(100_000);
    const table: MessageIdTable<never> = new Map();
    // Expire the first 1,000 so that later ones wrap round the first columns before they grow.
    for (let i = 0; i < 1000; i++) ids.add(table, `old-${i}`, 0, i, 0);
    ids.expire(10, () => 5);
    expect(ids.size).toBe(0);
    for (let i = 0; i < 5000; i++) ids.add(table, `m-${i}`, i % 7, 1000 + i, 100);
    expect(ids.size).toBe(5000);
    for (let i = 0; i < 5000; i++) {
      const slot = table.get(`m-${i}`) as number;
      expect([ids.partition(slot), ids.offset(slot), ids.storedAt(slot)]).toEqual([i % 7, 1000 + i, 100]);
    }
    expect(table.has('old-0')).toBe(false);
    expect(ids.evictedEarly).toBe(0);
  });

  it('forgets the oldest first when full, and counts it', () => {
    const ids = new StoredMessageIds<never>(1000);
    const table: MessageIdTable<never> = new Map();
    for (let i = 0; i < 1500; i++) ids.add(table, `m-${i}`, 0, i, i);
    expect(ids.size).toBe(1000);
    expect(table.size).toBe(1000);
    expect(table.has('m-499')).toBe(false);
    expect(ids.offset(table.get('m-500') as number)).toBe(500);
    expect(ids.evictedEarly).toBe(500);
  });

  it('expires by each topic’s own window, oldest first', () => {
    const ids = new StoredMessageIds<never>(1000);
    const short: MessageIdTable<never> = new Map();
    const long: MessageIdTable<never> = new Map();
    ids.add(short, 'a', 0, 0, 0);
    ids.add(long, 'b', 0, 0, 10);
    ids.add(short, 'c', 0, 1, 20);
    const windowOf = (table: MessageIdTable<never>) => (table === short ? 100 : 1000);
    ids.expire(150, windowOf);
    // 'a' is past its 100 ms; 'b' is within its 1000 ms and 'c', behind it, waits for it.
    expect([...short.keys(), ...long.keys()]).toEqual(['c', 'b']);
    ids.expire(1010, windowOf);
    expect(short.size + long.size).toBe(0);
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
  const topic: Topic = { name: 'orders', partitions: 2, partitionIds: [0, 1] };
  const settings = { windowOf: () => 60_000, maxMessageIds: 10_000 };

  it('holds publishes while a topic’s window is read back from its log, then answers resends of what it read as duplicates', async () => {
    let releaseRead: () => void = () => {};
    const readGate = new Promise<void>((resolve) => (releaseRead = resolve));
    const logs = [batchOf(0, ['a', 'b']), batchOf(0, ['c'])];
    const reads: LogReads = {
      offsets: async (_topic, partition) => ({ logStartOffset: 0, logEndOffset: partition === 0 ? 2 : 1, appendedSinceOffset: 0 }),
      read: async (_topic, partition, offset) => {
        await readGate;
        return { batches: offset === 0 ? logs[partition]! : null };
      },
    };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    const stored: string[] = [];
    const store = (id: string, ticket: { settle: (offset: number, failure: RillError | null) => void }) => {
      stored.push(id);
      ticket.settle(10 + stored.length, null);
    };
    const rebuilt = deduplicator.rebuild([topic]);
    const early = new Ticket();
    deduplicator.submit(topic, 1, 'b', early, 'b', store);
    expect(early.outcome).toBeNull();
    releaseRead();
    await rebuilt;
    expect(early.outcome).toBe('duplicate@0/1');
    const fresh = new Ticket();
    deduplicator.submit(topic, 0, 'd', fresh, 'd', store);
    const again = new Ticket();
    deduplicator.submit(topic, 1, 'c', again, 'c', store);
    expect([fresh.outcome, again.outcome, stored]).toEqual(['stored@11', 'duplicate@1/0', ['d']]);
    deduplicator.close();
  });

  it('gives a resend waiting on a copy in flight that copy’s outcome, and forgets a copy that failed', () => {
    const reads: LogReads = { offsets: async () => ({ logStartOffset: 0, logEndOffset: 0 }), read: async () => ({ batches: null }) };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    const inFlight: Array<{ settle: (offset: number, failure: RillError | null) => void }> = [];
    const store = (_id: string, ticket: (typeof inFlight)[number]) => void inFlight.push(ticket);

    const first = new Ticket();
    const resend = new Ticket();
    deduplicator.submit(topic, 0, 'x', first, 'x', store);
    deduplicator.submit(topic, 1, 'x', resend, 'x', store);
    expect(inFlight).toHaveLength(1);
    inFlight[0]!.settle(-1, new RillError('unavailable', 'worker died'));
    expect([first.outcome, resend.outcome]).toEqual(['failed:unavailable', 'failed:unavailable']);

    const retry = new Ticket();
    const retryCopy = new Ticket();
    deduplicator.submit(topic, 1, 'x', retry, 'x', store);
    deduplicator.submit(topic, 0, 'x', retryCopy, 'x', store);
    expect(inFlight).toHaveLength(2);
    inFlight[1]!.settle(7, null);
    expect([retry.outcome, retryCopy.outcome]).toEqual(['stored@7', 'duplicate@1/7']);
    deduplicator.close();
  });

  it('refuses resends of a message in flight to a worker that stopped until the worker is back, then answers them from the log', async () => {
    // Partition 1 holds "a" (written before its worker died, never answered); "b" never reached it.
    const log = batchOf(5, ['a']);
    const reads: LogReads = {
      offsets: async () => ({ logStartOffset: 0, logEndOffset: 6 }),
      read: async (_topic, _partition, offset) => ({ batches: offset <= 5 ? log : null }),
    };
    const deduplicator = new Deduplicator(reads, settings, createLogger('silent'));
    const inFlight: Array<{ settle: (offset: number, failure: RillError | null) => void }> = [];
    const store = (_id: string, ticket: (typeof inFlight)[number]) => void inFlight.push(ticket);
    deduplicator.submit(topic, 1, 'a', new Ticket(), 'a', store);
    deduplicator.submit(topic, 1, 'b', new Ticket(), 'b', store);
    const stopped = new WorkerStoppedError('broker worker 1 stopped before answering');
    for (const ticket of inFlight.splice(0)) ticket.settle(-1, stopped);

    const early = new Ticket();
    deduplicator.submit(topic, 0, 'a', early, 'a', store);
    expect(early.outcome).toBe('failed:unavailable');
    expect(inFlight).toHaveLength(0);

    // Another worker's restart settles nothing of partition 1.
    await deduplicator.workerRestarted([topic], () => false);
    const stillEarly = new Ticket();
    deduplicator.submit(topic, 0, 'b', stillEarly, 'b', store);
    expect(stillEarly.outcome).toBe('failed:unavailable');

    await deduplicator.workerRestarted([topic], (_topic, partition) => partition === 1);
    const resendA = new Ticket();
    const resendB = new Ticket();
    deduplicator.submit(topic, 0, 'a', resendA, 'a', store);
    deduplicator.submit(topic, 0, 'b', resendB, 'b', store);
    expect(resendA.outcome).toBe('duplicate@1/5');
    // "b" was never written: stored now.
    expect(inFlight).toHaveLength(1);
    inFlight[0]!.settle(6, null);
    expect(resendB.outcome).toBe('stored@6');
    deduplicator.close();
  });
});

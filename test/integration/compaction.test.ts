import { describe, expect, it, vi } from 'vitest';
import { RawStompClient, until, WAIT } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { storedMessages, useServers, type TestServer } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

/* Compacted topics (cleanupPolicy: compact): the log cleaner keeps each key's latest record. */

const COMPACTING = { storage: { segmentBytes: 4096, compaction: { intervalMs: 100 } } } as const;
/** The same, with the cleaner not yet running: what is written is measured as it is before the restart with COMPACTING. */
const NOT_YET_COMPACTING = { storage: { segmentBytes: 4096, compaction: { intervalMs: 3_600_000 } } } as const;

/** Every message a tail from the earliest offset gets: key, body, and whether it is a tombstone. */
async function readFromStart(server: TestServer, topic: string): Promise<Array<{ key: string; body: string; tombstone: boolean; offset: number }>> {
  const expected = await storedMessages(server, topic);
  const reader = await RawStompClient.session(server.stompPort);
  reader.send('SUBSCRIBE', { id: 'r', destination: `/topic/${topic}`, from: 'earliest' });
  await until(`${topic} read to its end`, () => {
    const messages = reader.all('MESSAGE');
    const last = messages.at(-1);
    return last !== undefined && Number(last.headers.offset) >= expected - 1 ? messages : null;
  });
  reader.close();
  return reader.all('MESSAGE').map((frame) => ({
    key: frame.headers.key!,
    body: frame.body.toString(),
    tombstone: frame.headers.tombstone === 'true',
    offset: Number(frame.headers.offset),
  }));
}

async function sizeOf(server: TestServer, topic: string): Promise<number> {
  const found = server.broker.topics.get(topic)!;
  return (await server.broker.offsets(found, 0)).sizeBytes ?? 0;
}

describe('log compaction', () => {
  const servers = useServers();

  // On both stores: segment files (embedded) or rows of rill_batches (PostgreSQL, src/postgres/batch-cleaner.ts).
  it('keeps the latest record of each key, tombstones included, across restarts; a tombstone must have a key and no body', async () => {
    const first = await servers.start(NOT_YET_COMPACTING);
    const base = httpBase(first.httpPort);
    // No deduplication window: segments younger than it are not compacted (it is read back from the log).
    const created = await call(base, 'POST', '/v1/topics', {
      name: 'accounts',
      partitions: 1,
      config: { cleanupPolicy: 'compact', deduplicationWindowMs: 0 },
    });
    expect(created.body.config.cleanupPolicy).toBe('compact');
    const producer = await RawStompClient.session(first.stompPort);
    for (let i = 0; i < 400; i++)
      producer.send('SEND', { destination: '/producer/publish/accounts', key: `account-${i % 10}`, receipt: `r${i}` }, `balance ${i}`);
    producer.send('SEND', { destination: '/producer/publish/accounts', key: 'account-3', tombstone: 'true', receipt: 'deleted' });
    await until('every receipt', () => producer.all('RECEIPT').length === 401);
    // A tombstone with a body is refused, and nothing is stored.
    producer.send('SEND', { destination: '/producer/publish/accounts', key: 'account-4', tombstone: 'true', receipt: 'bad' }, 'not empty');
    const error = await producer.next('ERROR');
    expect(error.headers).toMatchObject({ code: 'invalid-message', 'receipt-id': 'bad' });
    expect(await storedMessages(first, 'accounts')).toBe(401);
    // Nor is a tombstone header that says neither true nor false, nor one without a key (and no topic is made for it).
    for (const [headers, name] of [
      [{ key: 'account-4', tombstone: 'yes' }, 'tombstones-a'],
      [{ tombstone: 'true' }, 'tombstones-b'],
    ] as const) {
      const other = await RawStompClient.session(first.stompPort);
      other.send('SEND', { destination: `/producer/publish/${name}`, ...headers, receipt: 'r' });
      expect((await other.next('ERROR')).headers.code).toBe('invalid-message');
      expect(first.broker.topics.get(name)).toBeUndefined();
    }
    const before = await sizeOf(first, 'accounts');
    // A clean stop makes every closed segment durable below the recovery point: the cleaner's to clean.
    await first.close();

    const server = await servers.start(COMPACTING, first.dataDir);
    await vi.waitFor(async () => expect(await sizeOf(server, 'accounts')).toBeLessThan(before / 4), WAIT);
    const messages = await readFromStart(server, 'accounts');
    expect(messages.length).toBeLessThan(100);
    // Offsets stay where they were; the latest of each key survives.
    const latest = new Map<string, (typeof messages)[number]>();
    for (const message of messages) latest.set(message.key, message);
    for (let k = 0; k < 10; k++) {
      const last = latest.get(`account-${k}`)!;
      if (k === 3) expect(last).toMatchObject({ tombstone: true, body: '', offset: 400 });
      else expect(last).toMatchObject({ tombstone: false, body: `balance ${390 + k}`, offset: 390 + k });
    }
    // Offsets only ever rise, and the log still ends where it did.
    expect(messages.map((m) => m.offset)).toEqual([...messages.map((m) => m.offset)].sort((a, b) => a - b));
    const described = await call(httpBase(server.httpPort), 'GET', '/v1/topics/accounts');
    expect(described.body.partitions[0].logEndOffset).toBe(401);
    expect(described.body.config.cleanupPolicy).toBe('compact');
  });

  // On PostgreSQL the committed offsets are rows of rill_offsets, one per key, never a log (test/integration/postgres-store.test.ts).
  it.skipIf(TESTING_POSTGRES)(
    'compacts the committed offsets: a group committing thousands of times keeps only its latest offsets, and they come back at start',
    async () => {
      const first = await servers.start(COMPACTING);
      const base = httpBase(first.httpPort);
      await call(base, 'POST', '/v1/topics', { name: 'events', partitions: 2 });
      await call(base, 'POST', '/v1/groups/busy/members', { member: 'b', topics: ['events'] });
      for (let i = 1; i <= 1500; i++) {
        const answer = await call(base, 'POST', '/v1/groups/busy/members/b/commit', { offsets: [{ topic: 'events', partition: i % 2, offset: i }] });
        if (answer.status !== 200) throw new Error(`commit ${i}: ${JSON.stringify(answer.body)}`);
      }
      const before = await sizeOf(first, '__consumer_offsets');
      await first.close();
      const server = await servers.start(COMPACTING, first.dataDir);
      await vi.waitFor(async () => expect(await sizeOf(server, '__consumer_offsets')).toBeLessThan(before / 4), WAIT);
      await server.close();
      const again = await servers.start(COMPACTING, first.dataDir);
      const lag = await call(httpBase(again.httpPort), 'GET', '/v1/groups/busy/lag');
      const committed = Object.fromEntries(lag.body.partitions.map((p: { partition: number; committedOffset: number }) => [p.partition, p.committedOffset]));
      expect(committed).toEqual({ 0: 1500, 1: 1499 });
    },
  );
});

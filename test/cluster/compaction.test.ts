import postgres from 'postgres';
import { describe, expect, it, vi } from 'vitest';
import { RawStompClient, until, WAIT } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { createDatabase } from '../helpers/postgres.js';
import { useServers, type TestServer } from '../helpers/server.js';
import { BatchCleaner } from '../../src/postgres/index.js';

/* Log compaction in cluster mode: compacted topics' batches are rows of rill_batches, cleaned by one node at a time. */

const KEYS = 20;

/** Publishes `rounds` values of every key from one connection (keys in turn), with receipts; resolves once all are stored. */
async function publishRounds(server: TestServer, topic: string, node: string, fromRound: number, rounds: number): Promise<void> {
  const client = await RawStompClient.session(server.stompPort);
  let sent = 0;
  for (let round = fromRound; round < fromRound + rounds; round++) {
    for (let k = 0; k < KEYS; k++) {
      client.send('SEND', { destination: `/producer/publish/${topic}`, key: `key-${k}`, receipt: `r-${sent++}` }, `${node} round ${round}`);
    }
  }
  await until(`${sent} receipts`, () => client.all('RECEIPT').length === sent);
  expect(client.all('ERROR')).toEqual([]);
  client.close();
}

/** Every record a tail from the earliest offset gets, once it reached `end` - 1. */
async function readAll(server: TestServer, topic: string, end: number): Promise<Array<{ key: string; body: string; offset: number }>> {
  const reader = await RawStompClient.session(server.stompPort);
  reader.send('SUBSCRIBE', { id: 'r', destination: `/topic/${topic}`, from: 'earliest' });
  await until(`${topic} read to ${end}`, () => Number(reader.all('MESSAGE').at(-1)?.headers.offset ?? -1) >= end - 1);
  reader.close();
  return reader.all('MESSAGE').map((frame) => ({ key: frame.headers.key!, body: frame.body.toString(), offset: Number(frame.headers.offset) }));
}

async function rowsOf(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const [row] = await sql`SELECT count(*)::int AS rows FROM rill_batches WHERE topic = 'accounts'`;
  await sql.end();
  return row!.rows as number;
}

describe('cluster mode: log compaction in PostgreSQL', () => {
  const servers = useServers();
  const onDatabase = (url: string, intervalMs: number) => servers.start({ storage: { backend: 'postgres', postgres: { url }, compaction: { intervalMs } } });

  it('two nodes publish in turns to a compacted topic while the cleaner runs: each key keeps its latest record at its offset, on both nodes, and appends go on', async () => {
    const url = await createDatabase();
    // Node A cleans (the first to take the lock); node B would too, were A gone.
    const a = await onDatabase(url, 100);
    const b = await onDatabase(url, 100);
    await call(httpBase(a.httpPort), 'POST', '/v1/topics', { name: 'accounts', partitions: 1, config: { cleanupPolicy: 'compact', deduplicationWindowMs: 0 } });
    await until('node B to know the topic', () => b.broker.topics.get('accounts'));
    // Both nodes publish, in turns, so that the rows interleave; the cleaner runs meanwhile.
    for (let turn = 0; turn < 6; turn++) {
      const node = turn % 2 === 0 ? a : b;
      await publishRounds(node, 'accounts', turn % 2 === 0 ? 'a' : 'b', turn * 5, 5);
    }
    const end = 6 * 5 * KEYS;
    await vi.waitFor(async () => expect(await readAll(a, 'accounts', end)).toHaveLength(KEYS), WAIT);
    // Fewer rows too: a page's kept records are gathered (600 records came in batches of at most 100).
    expect(await rowsOf(url)).toBeLessThan(6);
    for (const node of [a, b]) {
      const records = await readAll(node, 'accounts', end);
      expect(records).toHaveLength(KEYS);
      // Offsets only rise, and the log still ends where it did.
      expect(records.map((r) => r.offset)).toEqual([...records.map((r) => r.offset)].sort((x, y) => x - y));
      for (let k = 0; k < KEYS; k++) {
        // The last turn (5) was node B's, rounds 25 to 29: key k's last value is round 29, at offset 29 * KEYS + k.
        expect(records.find((r) => r.key === `key-${k}`)).toEqual({ key: `key-${k}`, body: 'b round 29', offset: 29 * KEYS + k });
      }
    }
    const described = await call(httpBase(b.httpPort), 'GET', '/v1/topics/accounts');
    expect(described.body.partitions[0]).toMatchObject({ logStartOffset: 0, logEndOffset: end });

    // Appends after the cleaning land past it, and are cleaned in their turn.
    await publishRounds(a, 'accounts', 'a', 30, 3);
    await vi.waitFor(async () => expect((await readAll(b, 'accounts', end + 3 * KEYS)).length).toBe(KEYS), WAIT);
    const after = await readAll(a, 'accounts', end + 3 * KEYS);
    for (let k = 0; k < KEYS; k++) expect(after.find((r) => r.key === `key-${k}`)).toMatchObject({ body: 'a round 32', offset: end + 2 * KEYS + k });
  });

  it('removes a tombstone once its retention is over, though the rows around it are rewritten all the while', async () => {
    const url = await createDatabase();
    const node = await servers.start({
      storage: { backend: 'postgres', postgres: { url }, compaction: { intervalMs: 100, tombstoneRetentionMs: 1500 } },
    });
    await call(httpBase(node.httpPort), 'POST', '/v1/topics', {
      name: 'accounts',
      partitions: 1,
      config: { cleanupPolicy: 'compact', deduplicationWindowMs: 0 },
    });
    await publishRounds(node, 'accounts', 'n', 0, 1);
    const producer = await RawStompClient.session(node.stompPort);
    producer.send('SEND', { destination: '/producer/publish/accounts', key: 'key-3', tombstone: 'true', receipt: 'deleted' });
    await producer.receipt('deleted');
    const deletedAt = Date.now();
    // The other keys keep changing: each cleaning rewrites the rows before and after the tombstone's.
    let round = 1;
    const updates = setInterval(() => {
      for (let k = 0; k < KEYS; k++) if (k !== 3) producer.send('SEND', { destination: '/producer/publish/accounts', key: `key-${k}` }, `n round ${round}`);
      round++;
    }, 100);
    try {
      const topic = node.broker.topics.get('accounts')!;
      const current = async () => readAll(node, 'accounts', (await node.broker.offsets(topic, 0)).logEndOffset);
      // Kept while its retention runs (consumers behind must see the deletion)...
      expect((await current()).some((r) => r.key === 'key-3' && r.body === '')).toBe(true);
      // ...and gone after it, value and tombstone (looked for often: gone sooner would be seen sooner).
      await vi.waitFor(async () => expect((await current()).some((r) => r.key === 'key-3')).toBe(false), { ...WAIT, interval: 50 });
      expect(Date.now() - deletedAt).toBeGreaterThanOrEqual(1500);
    } finally {
      clearInterval(updates);
    }
    expect(producer.all('ERROR')).toEqual([]);
    producer.close();
  });

  it('leaves rows that changed while it read them (retention ran, the topic went) as they are, and changes nothing', async () => {
    const url = await createDatabase();
    const node = await onDatabase(url, 3_600_000);
    await call(httpBase(node.httpPort), 'POST', '/v1/topics', {
      name: 'accounts',
      partitions: 1,
      config: { cleanupPolicy: 'compact', deduplicationWindowMs: 0 },
    });
    for (let turn = 0; turn < 3; turn++) await publishRounds(node, 'accounts', 'n', turn * 5, 5);
    await node.close();
    const sql = postgres(url, { max: 4, onnotice: () => {} });
    try {
      const before = await sql`SELECT base_offset, size, md5(data) AS digest FROM rill_batches WHERE topic = 'accounts' ORDER BY base_offset`;
      expect(before.length).toBeGreaterThanOrEqual(2);
      const cleaner = new BatchCleaner(sql as never);
      let paced = 0;
      const report = await cleaner.clean(0, { topic: 'accounts', partition: 0 }, Date.now(), {
        tombstoneRetentionMs: 0,
        minCompactionLagMs: 0,
        maxKeys: 1000,
        compression: 'none',
        // The first pace follows the map of the keys, the second the read of the page to clean: the oldest row goes then, as retention would take it.
        pace: async () => {
          if (++paced === 2) await sql`DELETE FROM rill_batches WHERE topic = 'accounts' AND base_offset = ${before[0]!.base_offset}`;
        },
      });
      expect(paced).toBe(2);
      expect(report).toBeNull();
      const after = await sql`SELECT base_offset, size, md5(data) AS digest FROM rill_batches WHERE topic = 'accounts' ORDER BY base_offset`;
      expect(after).toEqual(before.slice(1));
    } finally {
      await sql.end();
    }
  });
});

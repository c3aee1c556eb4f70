import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hashKey, partitionForKey } from '../../src/broker/index.js';
import { exited, useChildServers } from '../helpers/child-server.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { storedMessages, useServers } from '../helpers/server.js';
import postgres from 'postgres';
import { databaseFor, TESTING_POSTGRES } from '../helpers/postgres.js';

const PARTITIONS = 4;
/** Keys that put the transaction's eight messages on every partition of the topic (so on both workers). */
const KEYS = (() => {
  const keys: string[] = [];
  for (let n = 0; keys.length < 8; n++) {
    const key = `k-${n}`;
    if (keys.filter((k) => partitionForKey(k, PARTITIONS) === partitionForKey(key, PARTITIONS)).length < 2) keys.push(key);
  }
  return keys;
})();

/** BEGIN, eight SENDs over every partition, COMMIT with a receipt. */
function sendTransaction(client: RawStompClient, topic: string, id: string): void {
  client.send('BEGIN', { transaction: id });
  for (let i = 0; i < KEYS.length; i++) {
    client.send('SEND', { destination: `/producer/publish/${topic}`, transaction: id }, canonical(`${id}-${i}`, KEYS[i]!, i));
  }
  client.send('COMMIT', { transaction: id, receipt: `commit-${id}` });
}

/** Bytes the topic holds: in its segment files, or in its rows in a cluster-mode run. */
async function segmentBytes(dataDir: string, topic: string): Promise<number> {
  if (TESTING_POSTGRES) {
    const sql = postgres(await databaseFor(dataDir), { max: 1, onnotice: () => {} });
    const [row] = await sql`SELECT coalesce(sum(size), 0)::int AS bytes FROM rill_batches WHERE topic = ${topic}`;
    await sql.end();
    return row?.bytes as number;
  }
  const dir = path.join(dataDir, 'topics', topic);
  if (!fs.existsSync(dir)) return 0;
  let bytes = 0;
  for (const partition of fs.readdirSync(dir).filter((p) => /^\d+$/.test(p))) {
    for (const file of fs.readdirSync(path.join(dir, partition)).filter((f) => f.endsWith('.log'))) bytes += fs.statSync(path.join(dir, partition, file)).size;
  }
  return bytes;
}

describe('transactions atomic across partitions and crashes', () => {
  const servers = useServers();
  const startChild = useChildServers();

  for (const step of ['kill-after-log', 'kill-after-first-partition'] as const) {
    it(`completes a transaction whose COMMIT was decided when the broker died (${step}): every message stored once, and a resend stores nothing`, {
      timeout: 60_000,
    }, async () => {
      const dataDir = servers.tempDir();
      const configFile = path.join(servers.tempDir(), 'rill.json');
      fs.writeFileSync(configFile, JSON.stringify({ topics: { definitions: [{ name: 'orders', partitions: PARTITIONS }] } }));
      const child = await startChild(dataDir, { args: ['--config', configFile], env: { RILL_FAILPOINTS: `transaction=${step}` } });
      const producer = await RawStompClient.session(child.stompPort);
      sendTransaction(producer, 'orders', 'tx');
      await exited(child.process);
      // The producer never heard that the COMMIT was done.
      expect(producer.all('RECEIPT')).toEqual([]);
      const written = await segmentBytes(dataDir, 'orders');
      // Killed once the decision was durable: before any partition had the messages, or after the first had.
      if (step === 'kill-after-log') expect(written).toBe(0);
      else expect(written).toBeGreaterThan(0);

      const server = await servers.start({ topics: { definitions: [{ name: 'orders', partitions: PARTITIONS }] } }, dataDir);
      const stored = await readTopic(server, 'orders');
      expect(stored.map((m) => m.messageId).sort()).toEqual(KEYS.map((_, i) => `tx-${i}`).sort());
      expect(new Set(stored.map((m) => m.partition)).size).toBe(PARTITIONS);

      // The producer, with no RECEIPT, sends the transaction again: each message is a duplicate.
      const again = await RawStompClient.session(server.stompPort);
      again.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders', receipt: 'subscribed' });
      await again.receipt('subscribed');
      sendTransaction(again, 'orders', 'tx');
      await again.receipt('commit-tx');
      await until('8 acknowledgments', () => again.all('MESSAGE').length === 8);
      expect(again.all('MESSAGE').every((frame) => JSON.parse(frame.body.toString()).duplicate === true)).toBe(true);
      expect((await readTopic(server, 'orders')).length).toBe(8);
      again.close();
    });
  }

  // Removes the topic's directory while the broker is down: the embedded store's files.
  it.skipIf(TESTING_POSTGRES)(
    'starts after a crash that left a decided transaction for a topic deleted since: that part is dropped, the rest of the broker serves',
    {
      timeout: 60_000,
    },
    async () => {
      const dataDir = servers.tempDir();
      const child = await startChild(dataDir, { env: { RILL_FAILPOINTS: 'transaction=kill-after-log' } });
      await call(httpBase(child.httpPort), 'POST', '/v1/topics', { name: 'orders', partitions: PARTITIONS });
      const producer = await RawStompClient.session(child.stompPort);
      sendTransaction(producer, 'orders', 'tx');
      await exited(child.process);
      // The topic is deleted before the broker comes back (as DELETE /v1/topics would have: its directory gone).
      fs.rmSync(path.join(dataDir, 'topics', 'orders'), { recursive: true });
      const server = await servers.start({}, dataDir);
      expect(server.broker.topics.get('orders')).toBeUndefined();
      // A topic made again under the name gets nothing of the old transaction.
      await call(httpBase(server.httpPort), 'POST', '/v1/topics', { name: 'orders', partitions: PARTITIONS });
      expect(await storedMessages(server, 'orders')).toBe(0);
    },
  );

  // Broker worker threads: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'stores a transaction whose partitions’ worker is down at COMMIT once the worker is back, then sends the RECEIPT',
    { timeout: 60_000 },
    async () => {
      const server = await servers.start({
        topics: { definitions: [{ name: 'orders', partitions: PARTITIONS }] },
        brokers: { workers: 2, restartBackoffMs: 300 },
      });
      const producer = await RawStompClient.session(server.stompPort);
      producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders', receipt: 'subscribed' });
      await producer.receipt('subscribed');
      // The worker that does not hold the transaction log: the decision is written, the parts wait for the worker.
      const logWorker = hashKey('__transaction_state') % 2;
      await server.broker.killWorker(1 - logWorker);
      sendTransaction(producer, 'orders', 'late');
      await producer.receipt('commit-late');
      const acks = producer.all('MESSAGE').map((frame) => JSON.parse(frame.body.toString()));
      expect(acks.map((ack) => ack.status)).toEqual(Array(8).fill('ACK'));
      const stored = await readTopic(server, 'orders');
      expect(stored.map((m) => m.messageId).sort()).toEqual(KEYS.map((_, i) => `late-${i}`).sort());
      // Each acknowledgment names where its message is.
      const place = new Map(stored.map((m) => [m.messageId, `${m.partition}/${m.offset}`]));
      for (const ack of acks) expect(`${ack.partition}/${ack.offset}`).toBe(place.get(ack.messageID));
      producer.close();
    },
  );

  it('stores a messageID sent twice in one transaction once, and answers the second as its duplicate', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'orders', partitions: PARTITIONS }] } });
    const producer = await RawStompClient.session(server.stompPort);
    producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders', receipt: 'subscribed' });
    await producer.receipt('subscribed');
    producer.send('BEGIN', { transaction: 'twice' });
    producer.send('SEND', { destination: '/producer/publish/orders', transaction: 'twice' }, canonical('same', 'k-1', 'first'));
    producer.send('SEND', { destination: '/producer/publish/orders', transaction: 'twice' }, canonical('other', 'k-2', 'x'));
    producer.send('SEND', { destination: '/producer/publish/orders', transaction: 'twice' }, canonical('same', 'k-3', 'second'));
    producer.send('COMMIT', { transaction: 'twice', receipt: 'committed' });
    await producer.receipt('committed');
    await until('3 acknowledgments', () => producer.all('MESSAGE').length === 3);
    const acks = producer.all('MESSAGE').map((frame) => JSON.parse(frame.body.toString()));
    const same = acks.filter((ack) => ack.messageID === 'same');
    expect(same.map((ack) => ack.duplicate === true).sort()).toEqual([false, true]);
    expect(new Set(same.map((ack) => `${ack.partition}/${ack.offset}`)).size).toBe(1);
    const stored = await readTopic(server, 'orders');
    expect(stored.map((m) => m.messageId).sort()).toEqual(['other', 'same']);
    expect(JSON.parse(stored.find((m) => m.messageId === 'same')!.body.toString()).message).toBe('first');
    producer.close();
  });
});

import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { exited, useChildServers } from '../helpers/child-server.js';
import { type Ack, Acknowledgments, expectStoredExactly } from '../helpers/acknowledgments.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { call, httpBase, topicOffsets } from '../helpers/http.js';
import { createDatabase } from '../helpers/postgres.js';
import { useServers, type TestServer } from '../helpers/server.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { StartupError } from '../../src/server/index.js';
import { brokerOffsetLog } from '../../src/coordinator/index.js';
import { Lease } from '../../src/postgres/index.js';

/** Publishes `count` messages (keys spread over partitions) with receipts from one connection; resolves once all are stored. */
async function publish(server: TestServer, topic: string, prefix: string, count: number): Promise<void> {
  const client = await RawStompClient.session(server.stompPort);
  for (let i = 0; i < count; i++) {
    client.send('SEND', { destination: `/producer/publish/${topic}`, receipt: `${prefix}-${i}` }, canonical(`${prefix}-${i}`, `key-${i % 7}`, i));
  }
  await until(`${count} receipts`, () => client.all('RECEIPT').length === count);
  expect(client.all('ERROR')).toEqual([]);
  client.close();
}

/** Messages a topic holds, as the node sees the database now. */
async function storedOf(server: TestServer, name: string): Promise<number> {
  const topic = server.broker.topics.get(name)!;
  let total = 0;
  for (let partition = 0; partition < topic.partitions; partition++) total += (await server.broker.offsets(topic, partition)).logEndOffset;
  return total;
}

/** The backend holding a node id's advisory lock (a bigint key: its halves are classid and objid), or null. */
async function lockHolder(sql: postgres.Sql, nodeId: string): Promise<number | null> {
  const [row] = await sql`
    WITH k AS (SELECT hashtextextended(${`rill-node:${nodeId}`}, 0) AS key)
    SELECT pid FROM pg_locks, k WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND classid::int8 = (key >> 32) & 4294967295 AND objid::int8 = key & 4294967295`;
  return row === undefined ? null : (row.pid as number);
}

/** A new database, and a proxy in front of it that a test can make hold what the node sends (a network that stops passing it, without a reset). */
async function proxiedDatabase(): Promise<{ url: string; proxy: TcpProxy; proxied: string }> {
  const url = await createDatabase();
  const database = new URL(url);
  const proxy = await TcpProxy.start(database.hostname, Number(database.port));
  return { url, proxy, proxied: proxy.urlFor(url) };
}

/**
 * The append notices (`rill_appended`) as a session of the test's own hears them: not a node, so no
 * node counts it as a peer. Notices come in commit order, so those heard before a marker sent now
 * are every one of the appends committed before now.
 */
class AppendNoticeLog {
  /** The highest end heard of per topic and partition. */
  readonly ends = new Map<string, number>();
  private heard: Array<[string, number, number] | string> = [];
  private markers = 0;

  private constructor(private readonly sql: postgres.Sql) {}

  static async listen(url: string): Promise<AppendNoticeLog> {
    const log = new AppendNoticeLog(postgres(url, { max: 1, onnotice: () => {} }));
    await log.sql.listen('rill_appended', (payload) => {
      if (payload.startsWith('marker-')) return void log.heard.push(payload);
      for (const entry of JSON.parse(payload) as Array<[string, number, number]>) {
        const key = `${entry[0]}/${entry[1]}`;
        log.ends.set(key, Math.max(log.ends.get(key) ?? 0, entry[2]));
        log.heard.push(entry);
      }
    });
    return log;
  }

  /** The notices of the appends committed since the last flush. */
  async flush(): Promise<Array<[string, number, number]>> {
    const marker = `marker-${++this.markers}`;
    await this.sql`SELECT pg_notify('rill_appended', ${marker})`;
    await until(marker, () => this.heard.includes(marker));
    const at = this.heard.indexOf(marker);
    const since = this.heard.slice(0, at).filter((entry): entry is [string, number, number] => typeof entry !== 'string');
    this.heard = this.heard.slice(at + 1);
    return since;
  }

  /** Messages in a topic, by the ends heard of. */
  heardOf(topic: string): number {
    let total = 0;
    for (const [key, end] of this.ends) if (key.startsWith(`${topic}/`)) total += end;
    return total;
  }

  close(): Promise<void> {
    return this.sql.end({ timeout: 1 });
  }
}

/** Whether a backend is one of a node's connections. */
async function isNodeBackend(sql: postgres.Sql, nodeId: string, pid: number): Promise<boolean> {
  return (await sql`SELECT 1 FROM pg_stat_activity WHERE pid = ${pid} AND application_name = ${`rill:${nodeId}`}`).length === 1;
}

describe('cluster mode: partitions in PostgreSQL', () => {
  const servers = useServers();
  const startChild = useChildServers();
  const onDatabase = async (url: string, overrides: Parameters<typeof servers.start>[0] = {}, dataDir?: string) =>
    servers.start({ ...overrides, storage: { backend: 'postgres', postgres: { url }, ...overrides.storage } }, dataDir);

  it('stores acknowledged messages in the database: a node started anew on it (other data directory) reads them all, once each', async () => {
    const url = await createDatabase();
    const first = await onDatabase(url, { topics: { defaultPartitions: 3 } });
    await publish(first, 'orders', 'm', 200);
    await first.close();
    // Nothing of it was in the node: a second node with an empty data directory serves the same log.
    const second = await onDatabase(url, { topics: { defaultPartitions: 3 } });
    const stored = await readTopic(second, 'orders');
    expect(stored.map((m) => m.messageId).sort()).toEqual(Array.from({ length: 200 }, (_, i) => `m-${i}`).sort());
    for (let partition = 0; partition < 3; partition++) {
      const offsets = stored.filter((m) => m.partition === partition).map((m) => m.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const [row] = await sql`SELECT count(*)::int AS batches FROM rill_batches`;
    await sql.end();
    // Batches, not a row per message.
    expect(row?.batches).toBeGreaterThan(0);
    expect(row?.batches).toBeLessThan(200);
  });

  it('two nodes append to one partition at once: every offset used once, none skipped', async () => {
    const url = await createDatabase();
    const definitions = [{ name: 'shared', partitions: 1 }];
    const a = await onDatabase(url, { topics: { definitions } });
    const b = await onDatabase(url, { topics: { definitions } });
    await Promise.all([publish(a, 'shared', 'a', 300), publish(b, 'shared', 'b', 300)]);
    const stored = await readTopic(a, 'shared');
    expect(stored.map((m) => m.offset)).toEqual(Array.from({ length: 600 }, (_, i) => i));
    expect(new Set(stored.map((m) => m.messageId)).size).toBe(600);
    // Each node's own order holds within the partition.
    const order = (prefix: string) => stored.filter((m) => m.messageId.startsWith(`${prefix}-`)).map((m) => Number(m.messageId.slice(2)));
    expect(order('a')).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(order('b')).toEqual(Array.from({ length: 300 }, (_, i) => i));
  });

  it('a subscriber on node B gets what a producer on node A publishes, live (LISTEN/NOTIFY), on a topic A created', async () => {
    const url = await createDatabase();
    const a = await onDatabase(url, { topics: { defaultPartitions: 2 } });
    const b = await onDatabase(url, { topics: { defaultPartitions: 2 } });
    await publish(a, 'live', 'early', 1);
    await until('node B to know the topic node A made', () => b.broker.topics.get('live'));
    const reader = await RawStompClient.session(b.stompPort);
    reader.send('SUBSCRIBE', { id: 'live', destination: '/topic/live', from: 'latest', receipt: 'subscribed' });
    await reader.receipt('subscribed');
    await publish(a, 'live', 'later', 50);
    await until('50 messages on node B', () => reader.all('MESSAGE').length >= 50);
    const ids = reader.all('MESSAGE').map((f) => f.headers['message-id']);
    expect(ids.sort()).toEqual(Array.from({ length: 50 }, (_, i) => `later-${i}`).sort());
    reader.close();
  });

  it('a producer resending to node B what node A stored first (keyed and keyless) is answered with the first copy, stored once', async () => {
    const url = await createDatabase();
    const settings = { topics: { definitions: [{ name: 'pay', partitions: 4 }], keylessPartitioner: 'round-robin' as const } };
    const a = await onDatabase(url, settings);
    const b = await onDatabase(url, settings);
    const acknowledgments = async (server: TestServer) => {
      const client = await RawStompClient.session(server.stompPort);
      client.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/pay', receipt: 'subscribed' });
      await client.receipt('subscribed');
      return {
        client,
        acks: () =>
          client.all('MESSAGE').map((f) => JSON.parse(f.body.toString()) as { messageID: string; partition: number; offset: number; duplicate?: boolean }),
      };
    };
    const first = await acknowledgments(a);
    const ids = Array.from({ length: 20 }, (_, i) => `pay-${i}`);
    const resendAll = (client: RawStompClient) => {
      for (const [i, id] of ids.entries())
        client.send('SEND', { destination: '/producer/publish/pay' }, canonical(id, i % 2 === 0 ? `customer-${i}` : null, i));
    };
    resendAll(first.client);
    await until('20 acknowledgments on A', () => first.acks().length === 20);
    const topic = b.broker.topics.get('pay')!;
    const ends = await Promise.all([0, 1, 2, 3].map(async (p) => (await a.broker.offsets(a.broker.topics.get('pay')!, p)).logEndOffset));
    // What B heard of A's appends is in its window (read a few milliseconds after each notice).
    await until("B to take A's messageIDs in", () => ends.every((end, p) => b.broker.deduplicationFollowed(topic, p) >= end));

    // A dies before answering, say; the producer resends everything through B.
    const again = await acknowledgments(b);
    resendAll(again.client);
    await until('20 acknowledgments on B', () => again.acks().length === 20);
    const original = new Map(first.acks().map((ack) => [ack.messageID, ack]));
    for (const ack of again.acks()) {
      expect(ack, ack.messageID).toMatchObject({
        duplicate: true,
        partition: original.get(ack.messageID)!.partition,
        offset: original.get(ack.messageID)!.offset,
      });
    }
    expect((await readTopic(a, 'pay')).map((m) => m.messageId).sort()).toEqual([...ids].sort());
    first.client.close();
    again.client.close();
  });

  it('keeps committed offsets as one row per key, and takes over those an older Rill left in the __consumer_offsets log', async () => {
    const url = await createDatabase();
    const dataDir = servers.tempDir();
    const first = await onDatabase(url, {}, dataDir);
    const base = `http://127.0.0.1:${first.httpPort}`;
    await fetch(`${base}/v1/topics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ledger', partitions: 1 }),
    });
    for (let i = 1; i <= 50; i++) await first.coordinator.store.commit('g', [{ topic: 'ledger', partition: 0, offset: i }]);
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    // Fifty commits of one partition: one row.
    expect((await sql`SELECT key FROM rill_offsets WHERE key LIKE 'offset/%'`).map((r) => r.key)).toEqual(['offset/g/ledger/0']);
    // As a Rill before the table left it: the offsets in the log, none in the table.
    await brokerOffsetLog(first.broker).write('offset/old/ledger/0', JSON.stringify({ v: 1, offset: 7, committedAt: 0 }));
    await first.close();
    await sql`DELETE FROM rill_offsets`;
    const again = await onDatabase(url, {}, dataDir);
    expect(again.coordinator.store.committed('old', { topic: 'ledger', partition: 0 })).toBe(7);
    expect((await sql`SELECT key FROM rill_offsets`).map((r) => r.key)).toEqual(['offset/old/ledger/0']);
    await sql.end();
  });

  it('a node completes its own transaction decided before it crashed, and another node starting meanwhile leaves it alone', { timeout: 60_000 }, async () => {
    const url = await createDatabase();
    const dataDir = servers.tempDir();
    const flags = ['--storage', 'postgres', '--postgres-url', url];
    // Node A dies once the COMMIT's decision is durable, before any message reached its partition.
    const a = await startChild(dataDir, { args: flags, env: { RILL_FAILPOINTS: 'transaction=kill-after-log' } });
    const producer = await RawStompClient.session(a.stompPort);
    producer.send('BEGIN', { transaction: 'tx' });
    for (let i = 0; i < 6; i++) producer.send('SEND', { destination: '/producer/publish/orders', transaction: 'tx' }, canonical(`tx-${i}`, `k-${i}`, i));
    producer.send('COMMIT', { transaction: 'tx', receipt: 'committed' });
    await exited(a.process);
    expect(producer.all('RECEIPT')).toEqual([]);
    // Node B, another node of the cluster, starts: the transaction is A's to complete, not B's.
    const b = await onDatabase(url);
    await until('node B to know the topic', () => b.broker.topics.get('orders'));
    expect(await storedOf(b, 'orders')).toBe(0);
    // A comes back (same data directory: same node id) and completes it: every message once.
    const again = await onDatabase(url, {}, dataDir);
    expect(await storedOf(again, 'orders')).toBe(6);
    const stored = await readTopic(b, 'orders');
    expect(stored.map((m) => m.messageId).sort()).toEqual(Array.from({ length: 6 }, (_, i) => `tx-${i}`));
  });

  it("retention goes by when the broker appended, never by a publisher's timestamp: a message dated 2020 deletes nothing newer", async () => {
    const url = await createDatabase();
    const server = await onDatabase(url, {
      storage: { backend: 'postgres', postgres: { url }, retention: { checkIntervalMs: 100 } },
      topics: {
        definitions: [
          { name: 'kept', partitions: 1, retentionMs: 60_000 },
          { name: 'trimmed', partitions: 1, retentionMs: 1 },
        ],
      },
    });
    const client = await RawStompClient.session(server.stompPort);
    const old = Date.parse('2020-01-01T00:00:00Z');
    for (let i = 0; i < 20; i++) {
      client.send('SEND', { destination: '/producer/publish/kept', receipt: `r-${i}` }, canonical(`m-${i}`, 'k', i, i === 10 ? old : Date.now()));
    }
    // The witness that retention ran: a topic whose every batch is over its retention at once.
    client.send('SEND', { destination: '/producer/publish/trimmed', receipt: 'trimmed' }, canonical('t-0', 'k', 0));
    await until('21 receipts', () => client.all('RECEIPT').length === 21);
    client.close();
    const trimmed = server.broker.topics.get('trimmed')!;
    await until('retention to run (the witness trimmed)', async () => (await server.broker.offsets(trimmed, 0)).logStartOffset === 1);
    const topic = server.broker.topics.get('kept')!;
    expect(await server.broker.offsets(topic, 0)).toMatchObject({ logStartOffset: 0, logEndOffset: 20 });
  });

  it('refuses to start on a database migrated by a newer Rill, changing nothing', async () => {
    const url = await createDatabase();
    const first = await onDatabase(url);
    await first.close();
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const known = (await sql`SELECT version FROM rill_schema ORDER BY version`).map((v) => v.version);
    await sql`INSERT INTO rill_schema (version, name) VALUES (999, 'from the future')`;
    const error = await onDatabase(url).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartupError);
    expect((error as StartupError).message).toMatch(/schema is version 999, newer than this Rill knows/);
    const versions = await sql`SELECT version FROM rill_schema ORDER BY version`;
    await sql.end();
    expect(versions.map((v) => v.version)).toEqual([...known, 999]);
  });

  it('refuses a second node under a node id a live node holds, and takes it once that node stopped', async () => {
    const url = await createDatabase();
    const first = await onDatabase(url, { storage: { backend: 'postgres', postgres: { url }, nodeId: 'twin' } });
    const error = await onDatabase(url, { storage: { backend: 'postgres', postgres: { url }, nodeId: 'twin' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartupError);
    expect((error as StartupError).setting).toBe('storage.nodeId');
    expect((error as StartupError).message).toMatch(/another Rill node runs on this database with node id "twin"/);
    await first.close();
    const again = await onDatabase(url, { storage: { backend: 'postgres', postgres: { url }, nodeId: 'twin' } });
    expect(again.broker.nodeId).toBe('twin');
  });

  it('takes its node id again when its connection to the database is lost; if another process took it meanwhile, health says so until it is free', async () => {
    const url = await createDatabase();
    const node = await onDatabase(url, { storage: { backend: 'postgres', postgres: { url }, nodeId: 'phoenix' } });
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    const holder = () => lockHolder(sql, 'phoenix');
    const nodeBackend = (pid: number) => isNodeBackend(sql, 'phoenix', pid);
    try {
      // The database drops the node's session (as a restart or a fail-over does): the node takes its id again.
      const first = (await holder())!;
      expect(await nodeBackend(first)).toBe(true);
      await sql`SELECT pg_terminate_backend(${first})`;
      const second = await until('the node holding its id again', async () => {
        const pid = await holder();
        return pid !== null && pid !== first && (await nodeBackend(pid)) ? pid : null;
      });
      const error = await onDatabase(url, { storage: { backend: 'postgres', postgres: { url }, nodeId: 'phoenix' } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StartupError);
      expect((error as StartupError).setting).toBe('storage.nodeId');
      expect(node.broker.health().status).toBe('ok');

      // Another process waits for the id and gets it the moment the node's session ends.
      const other = await sql.reserve();
      const taken = other`SELECT pg_advisory_lock(hashtextextended('rill-node:phoenix', 0))`.execute();
      await until(
        'the other process waiting for the id',
        async () => (await sql`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).length === 1,
      );
      await sql`SELECT pg_terminate_backend(${second})`;
      await taken;
      const unhealthy = await until('health naming the conflict', () => {
        const health = node.broker.health();
        return health.status === 'unhealthy' ? health : null;
      });
      expect(JSON.stringify(unhealthy)).toMatch(/another process took node id \\"phoenix\\"/);
      await other`SELECT pg_advisory_unlock(hashtextextended('rill-node:phoenix', 0))`;
      other.release();
      await until('the node holding its id once it is free', async () => {
        const pid = await holder();
        return pid !== null && (await nodeBackend(pid)) && node.broker.health().status === 'ok';
      });
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('ends its own session that the database still has holding the node id when only the node saw the connection die (a partition), and takes the id again', async () => {
    const url = await createDatabase();
    const database = new URL(url);
    // A TCP proxy between the node and the database, to cut connections on the node's side only.
    const proxy = await TcpProxy.start(database.hostname, Number(database.port));
    const proxied = new URL(proxy.urlFor(url));
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    let node: TestServer | null = null;
    try {
      node = await onDatabase(proxied.toString(), { storage: { backend: 'postgres', postgres: { url: proxied.toString() }, nodeId: 'islander' } });
      const first = (await lockHolder(sql, 'islander'))!;
      expect(await isNodeBackend(sql, 'islander', first)).toBe(true);
      // The node's side of every connection dies; the database's side stays open, its sessions (the lock's among them) alive.
      proxy.cutClientSide();
      await until('the node holding its id in a new session', async () => {
        const pid = await lockHolder(sql, 'islander');
        return pid !== null && pid !== first && (await isNodeBackend(sql, 'islander', pid)) && node!.broker.health().status === 'ok';
      });
      expect((await sql`SELECT 1 FROM pg_stat_activity WHERE pid = ${first}`).length).toBe(0);
    } finally {
      // Before the proxy goes: the node's connections run through it.
      await node?.close();
      await proxy.close();
      await sql.end({ timeout: 1 });
    }
  });

  it('answers an append the database leaves unanswered past appendTimeoutMs as perhaps stored, retriably; refuses the rest meanwhile, storing nothing; a resend after the late commit gets the first copy', async () => {
    const url = await createDatabase();
    const node = await onDatabase(url, {
      storage: { postgres: { url, appendTimeoutMs: 500 } },
      topics: { definitions: [{ name: 'slow', partitions: 1 }] },
    });
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    const producer = await RawStompClient.session(node.stompPort);
    try {
      const acks = new Acknowledgments(producer);
      producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/slow', receipt: 'subscribed' });
      await producer.receipt('subscribed');
      const sends = new Map<string, number>();
      const send = (id: string) => {
        sends.set(id, (sends.get(id) ?? 0) + 1);
        producer.send('SEND', { destination: '/producer/publish/slow' }, canonical(id, 'k', id));
      };
      const answersTo = (id: string) => acks.all.filter((ack) => ack.messageID === id) as Array<Ack & { reason?: string }>;

      // Another transaction holds the partition's row: the node's append waits on it, unanswered.
      const holder = await sql.reserve();
      await holder`BEGIN`;
      await holder`SELECT 1 FROM rill_partitions WHERE topic = 'slow' FOR UPDATE`;
      const sentAt = Date.now();
      send('first');
      await until('an answer to the append', () => answersTo('first').length === 1);
      expect(Date.now() - sentAt).toBeGreaterThanOrEqual(450);
      expect(answersTo('first')[0]).toMatchObject({ status: 'FAILED', retriable: true, code: 'unavailable' });
      expect(answersTo('first')[0]!.reason).toMatch(/did not answer an append within 500 ms; it may have been stored/);
      expect(JSON.stringify(node.broker.health())).toMatch(/did not answer an append/);

      // Meanwhile another message is refused at once, nothing written, and the resend of the first waits for its fate.
      send('second');
      send('first');
      await until('answers to the second and the resend', () => answersTo('second').length === 1 && answersTo('first').length === 2);
      expect(answersTo('second')[0]).toMatchObject({ status: 'FAILED', retriable: true });
      expect(answersTo('second')[0]!.reason).toMatch(/nothing was written/);
      expect(answersTo('first')[1]).toMatchObject({ status: 'FAILED', retriable: true });

      // The append commits late, in its place; the resend is answered with that copy.
      await holder`COMMIT`;
      holder.release();
      await until('the resend acknowledged', () => {
        if (answersTo('first').some((ack) => ack.status === 'ACK')) return true;
        // Resent, as a producer would, each time the last attempt was refused.
        if (answersTo('first').length === sends.get('first')) send('first');
        return false;
      });
      expect(answersTo('first').find((ack) => ack.status === 'ACK')).toMatchObject({ duplicate: true, partition: 0, offset: 0 });
      send('second');
      await until('the second acknowledged', () => answersTo('second').some((ack) => ack.status === 'ACK'));
      const stored = await readTopic(node, 'slow');
      expectStoredExactly(acks.all, new Set(['first', 'second']), stored, (await topicOffsets(httpBase(node.httpPort), 'slow'))!);
      expect(stored.map((m) => m.messageId)).toEqual(['first', 'second']);
      await until('health to come back', () => node.broker.health().status === 'ok');
    } finally {
      producer.close();
      await sql.end({ timeout: 1 });
    }
  });

  it('refuses appends retriably, storing nothing, while its sessions are read-only (a database made read-only, or a standby), and goes on over a new connection once writes are taken again', async () => {
    const url = await createDatabase();
    const name = new URL(url).pathname.slice(1);
    const node = await onDatabase(url, { topics: { definitions: [{ name: 'ro', partitions: 1 }] } });
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const producer = await RawStompClient.session(node.stompPort);
    try {
      const acks = new Acknowledgments(producer);
      producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/ro', receipt: 'subscribed' });
      await producer.receipt('subscribed');
      const send = (id: string) => producer.send('SEND', { destination: '/producer/publish/ro' }, canonical(id, 'k', id));
      const answersTo = (id: string) => acks.all.filter((ack) => ack.messageID === id) as Array<Ack & { reason?: string }>;
      send('before');
      await until('the first acknowledged', () => answersTo('before').some((ack) => ack.status === 'ACK'));

      // New sessions of the database refuse writes; the node's sessions are ended, and it connects anew into read-only ones.
      await admin.unsafe(`ALTER DATABASE ${name} SET default_transaction_read_only = on`);
      await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${name} AND pid <> pg_backend_pid()`;
      let sent = 0;
      // Sent again each time it was answered otherwise (a connection lost while the node connected anew, the message then in doubt).
      const resendUntil = (what: string, done: (answers: Array<Ack & { reason?: string }>) => boolean) =>
        until(what, () => {
          const answers = answersTo('during');
          if (done(answers)) return true;
          if (answers.length === sent) {
            send('during');
            sent++;
          }
          return false;
        });
      const readOnly = (ack: Ack & { reason?: string }) => /read-only/.test(ack.reason ?? '');
      await resendUntil('an append refused as read-only', (answers) => answers.some(readOnly));
      expect(answersTo('during').find(readOnly)).toMatchObject({ status: 'FAILED', retriable: true });
      expect(answersTo('during').find(readOnly)!.reason).toMatch(/nothing was written/);

      // Writable again for new sessions: the connection the node appends over is still a read-only session, unless made anew.
      await admin.unsafe(`ALTER DATABASE ${name} RESET default_transaction_read_only`);
      await resendUntil('the resend acknowledged', (answers) => answers.some((ack) => ack.status === 'ACK'));
      const stored = await readTopic(node, 'ro');
      expectStoredExactly(acks.all, new Set(['before', 'during']), stored, (await topicOffsets(httpBase(node.httpPort), 'ro'))!);
      expect(stored.map((m) => m.messageId)).toEqual(['before', 'during']);
    } finally {
      producer.close();
      await admin.unsafe(`ALTER DATABASE ${name} RESET default_transaction_read_only`);
      await admin.end();
    }
  });

  it('goes on over new connections when the old ones go silent without a reset (a dead host): an append given up on is cut, resends wait until the database answers again, and each message is stored once, whether the cut append had committed or never arrived', async () => {
    const url = await createDatabase();
    const database = new URL(url);
    const proxy = await TcpProxy.start(database.hostname, Number(database.port));
    const proxied = proxy.urlFor(url);
    let node: TestServer | null = null;
    let producer: RawStompClient | null = null;
    try {
      node = await onDatabase(proxied, {
        // A pool of 2, both open before the database goes silent: the probe has no new connection to go by.
        storage: { postgres: { url: proxied, appendTimeoutMs: 500, readTimeoutMs: 500, maxConnections: 2 } },
        topics: { definitions: [{ name: 'slow', partitions: 1 }] },
      });
      producer = await RawStompClient.session(node.stompPort);
      const client = producer;
      const acks = new Acknowledgments(client);
      client.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/slow', receipt: 'subscribed' });
      await client.receipt('subscribed');
      const sends = new Map<string, number>();
      const send = (id: string) => {
        sends.set(id, (sends.get(id) ?? 0) + 1);
        client.send('SEND', { destination: '/producer/publish/slow' }, canonical(id, 'k', id));
      };
      const answers = (id: string) => acks.all.filter((ack) => ack.messageID === id) as Array<Ack & { reason?: string }>;
      /** Sends `id` until it is acknowledged, as a producer would after each retriable refusal; the acknowledgment, and how long it took. */
      const sendUntilStored = async (id: string) => {
        const started = Date.now();
        send(id);
        await until(`${id} acknowledged`, () => {
          const got = answers(id);
          if (got.some((ack) => ack.status === 'ACK')) return true;
          if (got.length === sends.get(id)) send(id);
          return false;
        });
        expect(
          answers(id)
            .filter((ack) => ack.status !== 'ACK')
            .every((ack) => ack.status === 'FAILED' && ack.retriable),
        ).toBe(true);
        return { ack: answers(id).find((ack) => ack.status === 'ACK')!, ms: Date.now() - started };
      };
      expect((await sendUntilStored('before')).ack).toMatchObject({ partition: 0, offset: 0 });

      // The database's answers stop coming on every connection open now: the append reaches it and
      // commits, its answer never comes back. Given up on, the append is cut; so are the others, once
      // the probe goes unanswered; on new connections the database answers, with nothing of the node
      // running: the resend is answered with the copy that committed.
      proxy.silence({ requests: false });
      send('answer-lost');
      await until('the append given up on', () => answers('answer-lost').length === 1);
      expect(answers('answer-lost')[0]).toMatchObject({ status: 'FAILED', retriable: true });
      expect(answers('answer-lost')[0]!.reason).toMatch(/did not answer an append within 500 ms; it may have been stored/);
      const answerLost = await sendUntilStored('answer-lost');
      expect(answerLost.ack).toMatchObject({ duplicate: true, partition: 0, offset: 1 });
      // Without the cuts it waits for the kernel's TCP timeout: many minutes.
      expect(answerLost.ms).toBeLessThan(8000);
      // Appends go on, over a new connection.
      expect((await sendUntilStored('after')).ack).toMatchObject({ partition: 0, offset: 2 });

      // Now nothing passes either way on the connections open now: the append never reaches the database.
      proxy.silence({ requests: true });
      send('never-arrived');
      await until('the append given up on', () => answers('never-arrived').length === 1);
      expect(answers('never-arrived')[0]).toMatchObject({ status: 'FAILED', retriable: true });
      const neverArrived = await sendUntilStored('never-arrived');
      expect(neverArrived.ack.duplicate ?? false).toBe(false);
      expect(neverArrived.ack).toMatchObject({ partition: 0, offset: 3 });
      expect(neverArrived.ms).toBeLessThan(8000);

      const stored = await readTopic(node, 'slow');
      expect(stored.map((m) => m.messageId)).toEqual(['before', 'answer-lost', 'after', 'never-arrived']);
      await until('health to come back', () => node!.broker.health().status === 'ok');
    } finally {
      producer?.close();
      await node?.close();
      await proxy.close();
    }
  });

  it('answers a pull and a request for offsets the database leaves unanswered past readTimeoutMs with a retriable error, refuses more while as many as the pool holds wait, then serves them once it answers', async () => {
    const { proxy, proxied } = await proxiedDatabase();
    let node: TestServer | null = null;
    try {
      node = await onDatabase(proxied, {
        storage: { postgres: { url: proxied, readTimeoutMs: 500, maxConnections: 2 } },
        topics: { definitions: [{ name: 'quiet', partitions: 1 }] },
      });
      await publish(node, 'quiet', 'q', 5);
      const base = httpBase(node.httpPort);
      expect((await call(base, 'POST', '/v1/groups/readers/members', { member: 'm1', topics: ['quiet'] })).status).toBe(200);
      const first = await call(base, 'POST', '/v1/groups/readers/members/m1/pull', { maxMessages: 2 });
      expect(first.status).toBe(200);
      expect(first.body.records.map((record: { offset: number }) => record.offset)).toEqual([0, 1]);

      // The database stops answering (as while there is no primary): the next pull's read waits 500 ms, then fails.
      proxy.stall();
      const startedAt = Date.now();
      const pulled = await call(base, 'POST', '/v1/groups/readers/members/m1/pull', { maxMessages: 2 });
      expect(pulled.status).toBe(503);
      expect(pulled.body.error).toMatchObject({
        code: 'unavailable',
        retriable: true,
        message: expect.stringMatching(/did not answer a read within 500 ms; read again/),
      });
      expect(Date.now() - startedAt).toBeLessThan(5000);
      const described = await call(base, 'GET', '/v1/topics/quiet');
      expect(described.status).toBe(503);
      expect(described.body.error).toMatchObject({ code: 'unavailable', message: expect.stringMatching(/did not answer a request for offsets within 500 ms/) });
      // Those two still wait, as many as the pool has connections: the next read is refused at once, not sent.
      const refused = await call(base, 'POST', '/v1/groups/readers/members/m1/pull', { maxMessages: 2 });
      expect(refused.status).toBe(503);
      expect(refused.body.error.message).toMatch(/did not answer a read: 2 reads given up on still wait for it/);
      expect((await call(base, 'GET', '/health')).status).toBe(503);

      // Answered again: the pull goes on where the last one that succeeded stopped, nothing skipped.
      proxy.release();
      // Refused at once until the reads given up on are answered.
      const again = await until('a pull served', async () => {
        const answer = await call(base, 'POST', '/v1/groups/readers/members/m1/pull', { maxMessages: 10 });
        return answer.status === 200 && answer;
      });
      expect(again.body.records.map((record: { offset: number }) => record.offset)).toEqual([2, 3, 4]);
      // Healthy again once the probe finds the database answering and the reads given up on ended.
      await until('healthy', async () => (await call(base, 'GET', '/health')).status === 200);
    } finally {
      await node?.close();
      await proxy.close();
    }
  });

  it('shuts down within seconds when the database stops answering, with an append and a pull waiting on it', async () => {
    const { proxy, proxied } = await proxiedDatabase();
    let node: TestServer | null = null;
    try {
      node = await onDatabase(proxied, {
        // Neither gives up before the shutdown: it is the shutdown that must not wait for them.
        storage: { postgres: { url: proxied, appendTimeoutMs: 600_000, readTimeoutMs: 600_000 } },
        topics: { definitions: [{ name: 'stuck', partitions: 1 }] },
      });
      await publish(node, 'stuck', 's', 3);
      const base = httpBase(node.httpPort);
      expect((await call(base, 'POST', '/v1/groups/stuck-readers/members', { member: 'm1', topics: ['stuck'] })).status).toBe(200);
      expect((await call(base, 'POST', '/v1/groups/stuck-readers/members/m1/pull', { maxMessages: 1 })).body.records).toHaveLength(1);

      proxy.stall();
      const producer = await RawStompClient.session(node.stompPort);
      producer.send('SEND', { destination: '/producer/publish/stuck', receipt: 'held' }, canonical('held', 'k', 'body'));
      let pullAnswered = false;
      const pull = call(base, 'POST', '/v1/groups/stuck-readers/members/m1/pull', { maxMessages: 3 })
        .catch((error: Error) => error)
        .finally(() => {
          pullAnswered = true;
        });
      // The append on its connection, the read on one of the pool's.
      await until('the append and the read sent, held by the network', () => proxy.pairs.filter((pair) => pair.held.length > 0).length >= 2);
      expect(pullAnswered).toBe(false);
      const startedAt = Date.now();
      await node.close();
      const took = Date.now() - startedAt;
      node = null;
      await pull;
      producer.close();
      // 5 s for the append to be answered (the gateway answers every SEND it read), 2 s for the clients to leave, 5 s for the store.
      expect(took).toBeLessThan(15_000);
    } finally {
      await node?.close();
      await proxy.close();
    }
  });

  it("sends no append notices while alone; when another node joins it notifies every partition's end, then its appends; alone again, it stops", async () => {
    const url = await createDatabase();
    const notices = await AppendNoticeLog.listen(url);
    const topics = { definitions: [{ name: 'solo', partitions: 2 }] };
    try {
      const a = await onDatabase(url, { topics });
      let published = 0;
      const quietAgain = async () => {
        // Once its heartbeat saw no other node: an append is committed, and no notice of it comes.
        await until('appends not notified', async () => {
          await publish(a, 'solo', `alone-${published}`, 1);
          published++;
          return (await notices.flush()).length === 0;
        });
      };
      await quietAgain();
      expect(notices.heardOf('solo')).toBeLessThan(published);

      // B joins: A notifies every partition's end (what it appended unnotified with them), then its appends.
      const b = await onDatabase(url, { topics });
      await until("every partition's end", () => notices.heardOf('solo') === published);
      await publish(a, 'solo', 'together', 3);
      published += 3;
      expect((await notices.flush()).length).toBeGreaterThan(0);
      expect(notices.heardOf('solo')).toBe(published);
      // B's tail reads what A appended, alone and since.
      expect((await readTopic(b, 'solo')).length).toBe(published);

      // B leaves: A is alone again.
      await b.close();
      await quietAgain();
      expect(notices.heardOf('solo')).toBeLessThan(published);
    } finally {
      await notices.close();
    }
  });

  it('starts on topics a newer node wrote with settings it does not know, keeping the ones it knows', async () => {
    const url = await createDatabase();
    const first = await onDatabase(url);
    await first.close();
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    await sql`INSERT INTO rill_topics (name, partitions, settings, created_at) VALUES ('future', 2, ${sql.json({ retentionMs: 5000, settingFromTheFuture: true })}, 1)`;
    await sql.end();
    const server = await onDatabase(url);
    expect(server.broker.topics.get('future')?.ownSettings).toEqual({ retentionMs: 5000 });
  });

  it('a database it cannot reach is a start-up error naming storage.postgres.url', async () => {
    const error = await onDatabase('postgres://rill:rill@127.0.0.1:1/none').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartupError);
    expect((error as StartupError).setting).toBe('storage.postgres.url');
  });

  it("a node's subscribers that follow the same partition share its reads of another node's appends: one read of the database, not one each", async () => {
    const url = await createDatabase();
    const definitions = [{ name: 'fanout', partitions: 1 }];
    const a = await onDatabase(url, { topics: { definitions } });
    const b = await onDatabase(url, { topics: { definitions } });
    const subscribe = async (id: string) => {
      const reader = await RawStompClient.session(b.stompPort);
      reader.send('SUBSCRIBE', { id, destination: '/topic/fanout', from: 'latest', receipt: `${id}-subscribed` });
      await reader.receipt(`${id}-subscribed`);
      return reader;
    };
    /** Publishes on node A in bursts, one at a time, each read by every reader on node B before the next; gives the reads node B made. */
    const readsFor = async (readers: RawStompClient[], prefix: string) => {
      const before = b.broker.databaseReads!;
      const producer = await RawStompClient.session(a.stompPort);
      for (let burst = 0; burst < 10; burst++) {
        for (let i = 0; i < 10; i++)
          producer.send('SEND', { destination: '/producer/publish/fanout', receipt: `${prefix}-${burst}-${i}` }, canonical(`${prefix}-${burst}-${i}`, 'k', i));
        await until(`burst ${burst} on every reader`, () =>
          readers.every((reader) => reader.all('MESSAGE').filter((m) => m.headers['message-id']!.startsWith(`${prefix}-${burst}-`)).length === 10),
        );
      }
      producer.close();
      return b.broker.databaseReads! - before;
    };
    const first = await subscribe('r0');
    const alone = await readsFor([first], 'alone');
    const readers = [first, ...(await Promise.all([1, 2, 3, 4].map((i) => subscribe(`r${i}`))))];
    const together = await readsFor(readers, 'together');
    console.info(`node B's reads: ${alone} for one subscriber, ${together} for five`);
    expect(alone).toBeGreaterThan(0);
    // Five readers, each told of each new end at once: about the reads of one (not five times them).
    expect(together).toBeLessThanOrEqual(alone * 2);
    for (const reader of readers) reader.close();
  });

  it("one node at a time holds a background job's lease: refused to others while it runs, given back, and taken over once it ran out", async () => {
    const url = await createDatabase();
    // A node migrates the schema.
    await (await onDatabase(url)).close();
    const sql = postgres(url, { max: 2, onnotice: () => {} });
    try {
      const a = new Lease(sql as never, 'retention', 'node-a', 2000);
      const b = new Lease(sql as never, 'retention', 'node-b', 2000);
      expect(await a.take()).toBe(true);
      expect(await b.take()).toBe(false);
      expect(await a.hold()).toBe(true);
      await a.give();
      expect(await b.take()).toBe(true);
      expect(await a.take()).toBe(false);
      // Node B dies holding it: once its lease has run out (the database's clock), node A takes it, and B's renewal is refused.
      await until("B's lease to run out", () => a.take());
      expect(await b.take()).toBe(false);
      expect(await a.hold()).toBe(true);
    } finally {
      await sql.end();
    }
  });

  it('a job that runs longer than its lease keeps it: renewed on a timer while one step takes long, given back after', async () => {
    const url = await createDatabase();
    await (await onDatabase(url)).close();
    const sql = postgres(url, { max: 3, onnotice: () => {} });
    try {
      const a = new Lease(sql as never, 'compaction', 'node-a', 1000);
      const b = new Lease(sql as never, 'compaction', 'node-b', 1000);
      let refusals = 0;
      let stepDone = false;
      // One step of 3 s, three leases long, that never asks stillHeld: only the timer renews the lease meanwhile.
      const running = a.run(async () => {
        const deadline = Date.now() + 3000;
        while (Date.now() < deadline) {
          if (!(await b.take())) refusals++;
          else throw new Error("node B took the lease while node A's job ran");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        stepDone = true;
      });
      expect(await running).toBe(true);
      expect(stepDone).toBe(true);
      expect(refusals).toBeGreaterThan(10);
      // Given back: node B takes it at once, and node A's run is refused while B holds it.
      expect(await b.take()).toBe(true);
      expect(await a.run(async () => {})).toBe(false);
    } finally {
      await sql.end();
    }
  });
});

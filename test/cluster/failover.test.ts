import fs from 'node:fs';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { Acknowledgments, expectStoredExactly } from '../helpers/acknowledgments.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { httpBase, topicOffsets } from '../helpers/http.js';
import { connect } from '../../src/postgres/connection.js';
import { PostgresServer, serverRoot } from '../helpers/postgres-server.js';
import { useServers } from '../helpers/server.js';

const TOPIC = 'orders';
const TOTAL = 6000;
const idOf = (n: number): string => `m-${n}`;
const keyOf = (n: number): string | null => (n % 2 === 0 ? `key-${n % 13}` : null);

/** A primary and its synchronous standby, the standby made from a copy of the stopped primary's data directory. */
async function replicatedPair(root: string): Promise<{ primary: PostgresServer; standby: PostgresServer }> {
  const primary = await PostgresServer.create(root, 'primary', {
    settings: { wal_level: 'replica', synchronous_standby_names: "'standby'", synchronous_commit: 'on' },
    hba: ['host replication rill 127.0.0.1/32 trust'],
  });
  const standby = await PostgresServer.copyOf(primary, root, 'standby');
  // Once promoted it runs alone: without this, the copied synchronous_standby_names would make every commit wait for a standby it no longer has.
  standby.configure({ primary_conninfo: `'host=127.0.0.1 port=${primary.port} user=rill application_name=standby'`, synchronous_standby_names: "''" });
  standby.writeFile('standby.signal', '');
  await primary.start();
  await standby.start();
  const sql = postgres(primary.url(), { max: 1, onnotice: () => {} });
  try {
    await until('the standby to stream synchronously', async () => {
      const rows = await sql`SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'`;
      return rows[0]?.sync_state === 'sync';
    });
  } finally {
    await sql.end();
  }
  return { primary, standby };
}

describe('cluster mode: fail-over to a synchronous standby', () => {
  const servers = useServers();
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  /** A replicated pair, removed after the test, and a URL naming both hosts: the node connects to whichever takes writes. */
  const pair = async () => {
    const root = serverRoot();
    cleanups.push(async () => fs.rmSync(root, { recursive: true, force: true }));
    const { primary, standby } = await replicatedPair(root);
    cleanups.push(
      () => primary.kill(),
      () => standby.kill(),
    );
    const url = `postgres://rill@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/postgres?target_session_attrs=read-write`;
    return { primary, standby, url };
  };

  it('while there is no primary, tries the hosts again about once a second per connection, not in a loop', { timeout: 60_000 }, async () => {
    const { primary, standby, url } = await pair();
    const server = await servers.start({ storage: { backend: 'postgres', postgres: { url } }, topics: { defaultPartitions: 4 } });
    cleanups.push(() => server.close());
    const producer = await RawStompClient.session(server.stompPort);
    try {
      await primary.kill();
      // Appends (and the node's own work: its probe, its node id's lock, LISTEN) wait for a primary.
      for (let n = 0; n < 50; n++) producer.send('SEND', { destination: `/producer/publish/${TOPIC}` }, canonical(idOf(n), keyOf(n), `payload ${n}`));
      const standbySql = postgres(standby.url(), { max: 1, onnotice: () => {} });
      try {
        const sessions = async () => {
          // Sessions counted as they end: the standby's statistics, read after a flush of this session's own.
          const [row] = await standbySql`SELECT sessions::int AS n FROM pg_stat_database WHERE datname = 'postgres'`;
          return row!.n as number;
        };
        await until('the node to be trying the hosts', async () => (await sessions()) > 0);
        const before = await sessions();
        const started = Date.now();
        await until('three seconds', () => Date.now() - started >= 3000);
        const tried = (await sessions()) - before;
        // A dozen connections at most, about one round a second each: a few dozen. In a loop: thousands.
        expect(tried).toBeLessThan(150);
      } finally {
        await standbySql.end();
      }
    } finally {
      producer.close();
    }
  });

  it('a session the primary ended in the middle of a statement: the next connection, tried on the standby first, goes on to the primary (unpatched postgres.js failed its first statement with the old error, and skipped the check that keeps it off a standby)', async () => {
    const { primary, url } = await pair();
    const sql = connect(url, 1, 'ended-session');
    const admin = postgres(primary.url(), { max: 1, onnotice: () => {} });
    try {
      // On the primary; the pool's next connection tries the URL's next host, the standby, first.
      expect((await sql`SELECT pg_is_in_recovery() AS standby`)[0]!.standby).toBe(false);
      const sleeping = sql`SELECT pg_sleep(30)`.then(
        () => 'answered',
        (error: unknown) => (error as { code?: string }).code,
      );
      const [running] = await until('the statement to run', async () => {
        const rows = await admin`SELECT pid FROM pg_stat_activity WHERE application_name = 'rill:ended-session' AND state = 'active'`;
        return rows.length > 0 ? rows : undefined;
      });
      // The server sends an error (57P01) and closes: the statement fails as a connection lost.
      await admin`SELECT pg_terminate_backend(${running!.pid as number})`;
      expect(['CONNECTION_CLOSED', 'ECONNRESET']).toContain(await sleeping);
      const [after] = await sql`SELECT pg_is_in_recovery() AS standby, inet_server_port() AS port`;
      expect(after).toEqual({ standby: false, port: primary.port });
    } finally {
      await Promise.all([sql.end({ timeout: 1 }), admin.end()]);
    }
  });

  it('under load, the primary killed (SIGKILL) and the standby promoted: nothing acknowledged is lost or stored twice, and writes resume within 10 s of the promotion', {
    timeout: 120_000,
  }, async () => {
    const { primary, standby, url } = await pair();
    const server = await servers.start({
      // An append queued while there is no primary is answered (perhaps stored, retriably) after 2 s, not held until one is found.
      storage: { backend: 'postgres', postgres: { url, appendTimeoutMs: 2000 } },
      topics: { defaultPartitions: 4, keylessPartitioner: 'round-robin' },
    });
    // Closed before its databases are killed (the cleanups run last first).
    cleanups.push(() => server.close());

    const producer = await RawStompClient.session(server.stompPort);
    const acks = new Acknowledgments(producer);
    producer.send('SUBSCRIBE', { id: 'acks', destination: `/topic/acknowledgment/${TOPIC}`, receipt: 'subscribed' });
    await producer.receipt('subscribed');
    // A producer as the guarantees ask: what is refused (retriably) is sent again, under the same messageID.
    const retry: number[] = [];
    let next = 0;
    let handled = 0;
    const send = (n: number): void => producer.send('SEND', { destination: `/producer/publish/${TOPIC}` }, canonical(idOf(n), keyOf(n), `payload ${n}`));
    const pump = setInterval(() => {
      const all = acks.all;
      for (; handled < all.length; handled++) {
        const ack = all[handled]!;
        if (ack.status === 'FAILED') {
          expect(ack.retriable, `a refusal that is not retriable: ${JSON.stringify(ack)}`).toBe(true);
          retry.push(Number(ack.messageID.slice(2)));
        }
      }
      for (let i = 0; i < 40; i++) {
        const n = retry.shift() ?? (next < TOTAL ? next++ : undefined);
        if (n === undefined) return;
        send(n);
      }
    }, 5);
    try {
      await until('1,500 acknowledgments before the fail-over', () => acks.acknowledged.size >= 1500, 30_000);
      await primary.kill();
      // The load goes on against a dead primary for a moment, as it would before an operator or Patroni acts:
      // refused (the append in flight failed with its connection, or the next one got no answer in time).
      const ackedAtKill = acks.acknowledged.size;
      await until('failures while there is no primary', () => acks.all.some((ack) => ack.status === 'FAILED'), 15_000);
      standby.promote();
      const promotedAt = Date.now();
      const seenAtPromotion = acks.all.length;
      await until('an acknowledgment from the new primary', () => acks.all.slice(seenAtPromotion).some((ack) => ack.status === 'ACK'), 10_000);
      expect(Date.now() - promotedAt).toBeLessThan(10_000);
      expect(acks.acknowledged.size).toBeGreaterThan(ackedAtKill);
      await until(`all ${TOTAL} messages acknowledged`, () => acks.acknowledged.size === TOTAL, 60_000);
    } finally {
      clearInterval(pump);
    }
    producer.close();

    // Read back through the node, now on the promoted standby: every acknowledged message exactly once at its place, nothing invented.
    // A connection to the killed primary that the pool has not yet found closed fails a request once, retriably (503): asked again.
    await until('the node to describe the topic', async () => (await fetch(`${httpBase(server.httpPort)}/v1/topics/${TOPIC}`)).status === 200);
    const stored = await readTopic(server, TOPIC, 30_000);
    const offsets = (await topicOffsets(httpBase(server.httpPort), TOPIC))!;
    expectStoredExactly(acks.all, new Set(Array.from({ length: TOTAL }, (_, n) => idOf(n))), stored, offsets);
    expect(stored).toHaveLength(TOTAL);

    // The node id's advisory lock died with the old primary's session: the node holds it again on the new one.
    const promoted = postgres(`postgres://rill@127.0.0.1:${standby.port}/postgres`, { max: 1, onnotice: () => {} });
    try {
      const key = `rill-node:${server.broker.nodeId}`;
      await until(
        'the node id held on the new primary',
        async () =>
          (
            await promoted`
              SELECT 1 FROM pg_locks JOIN pg_stat_activity USING (pid)
              WHERE locktype = 'advisory' AND granted AND application_name = ${`rill:${server.broker.nodeId}`}
                AND objid::int8 = hashtextextended(${key}, 0) & 4294967295`
          ).length === 1,
      );
    } finally {
      await promoted.end();
    }
  });
});

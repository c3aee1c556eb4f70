import { describe, expect, it, vi } from 'vitest';
import { canonical, RawStompClient, WAIT } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

/*
 * GET /metrics (Prometheus text, prom-client) and GET /ready: each figure checked against what the
 * test did to the broker.
 */

/** The value of one series of the scrape (its labels exactly as given), or undefined. */
function series(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels)
    .map(([key, value]) => `${key}="${value}"`)
    .join(',');
  const line = text.split('\n').find((l) => l.startsWith(wanted === '' ? `${name} ` : `${name}{${wanted}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function scrape(server: TestServer): Promise<string> {
  const response = await fetch(`${httpBase(server.httpPort)}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return response.text();
}

describe('metrics and readiness', () => {
  const servers = useServers();

  it('counts what was stored and delivered per topic, partition offsets, group lag, connections and the process', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'metered', partitions: 2 }] } });
    const producer = await RawStompClient.session(server.stompPort);
    const bodies = Array.from({ length: 6 }, (_, i) => canonical(`m-${i}`, `k-${i}`, `message ${i}`));
    for (const [i, body] of bodies.entries()) producer.send('SEND', { destination: '/producer/publish/metered', receipt: `r-${i}` }, body);
    for (let i = 0; i < bodies.length; i++) await producer.receipt(`r-${i}`);

    // A tail reads all six; a pull consumer pulls them and commits two of one partition.
    const tail = await RawStompClient.session(server.stompPort);
    tail.send('SUBSCRIBE', { id: 't', destination: '/topic/metered', from: 'earliest' });
    await vi.waitFor(() => expect(tail.all('MESSAGE')).toHaveLength(6), WAIT);
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups/billing/members', { member: 'b-1', topics: ['metered'] });
    const pulled = await call(base, 'POST', '/v1/groups/billing/members/b-1/pull', { maxMessages: 100 });
    expect(pulled.body.records).toHaveLength(6);

    const text = await scrape(server);
    const bytesOfBodies = bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0);
    expect(series(text, 'rill_messages_in_total', { topic: 'metered' })).toBe(6);
    expect(series(text, 'rill_bytes_in_total', { topic: 'metered' })).toBeGreaterThan(bytesOfBodies);
    // Six to the tail, six to the pull.
    expect(series(text, 'rill_messages_out_total', { topic: 'metered' })).toBe(12);
    expect(series(text, 'rill_bytes_out_total', { topic: 'metered' })).toBe(2 * bytesOfBodies);
    expect(series(text, 'rill_publish_batch_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    // Under fsync durability each receipt waited for a journal fdatasync: at least one measured.
    if (server.broker.storeKind === 'embedded') {
      // The embedded store's journal (cluster mode's durability is the database's COMMIT).
      expect(series(text, 'rill_journal_fsync_duration_seconds_count')).toBeGreaterThanOrEqual(1);
      expect(series(text, 'rill_journal_fsync_duration_seconds_sum')).toBeGreaterThan(0);
    }
    const ends = [0, 1].map((p) => series(text, 'rill_partition_log_end_offset', { topic: 'metered', partition: String(p) })!);
    expect(ends[0]! + ends[1]!).toBe(6);
    const sizes = [0, 1].map((p) => series(text, 'rill_partition_size_bytes', { topic: 'metered', partition: String(p) })!);
    // Six stored batches' bytes, split over the two partitions as the messages are.
    expect(sizes[0]! + sizes[1]!).toBe(series(text, 'rill_bytes_in_total', { topic: 'metered' }));
    // Nothing committed yet: the lag is every message of each partition the group was given.
    const committed = await call(base, 'POST', '/v1/groups/billing/members/b-1/commit', {
      offsets: [0, 1].map((partition) => ({ topic: 'metered', partition, offset: ends[partition]! })),
    });
    expect(committed.status).toBe(200);
    const after = await scrape(server);
    expect(series(after, 'rill_consumer_group_lag', { group: 'billing', topic: 'metered', partition: '0' })).toBe(0);
    expect(series(after, 'rill_consumer_group_members', { group: 'billing' })).toBe(1);
    expect(series(after, 'rill_rebalances_total')).toBeGreaterThanOrEqual(1);
    expect(series(after, 'rill_connections', { transport: 'tcp' })).toBe(2);
    expect(series(after, 'rill_connections', { transport: 'websocket' })).toBe(0);
    expect(series(after, 'rill_worker_restarts_total')).toBe(0);
    expect(series(after, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(after).toContain('# TYPE rill_messages_in_total counter');
    // The broker's own writes (the commit above went to __consumer_offsets) are not counted as traffic.
    expect(after).not.toContain('topic="__consumer_offsets"');
    // Two scrapes at once each get every partition (neither empties the other's gauges half-way).
    const both = await Promise.all([scrape(server), scrape(server)]);
    for (const text of both)
      for (const p of ['0', '1']) expect(series(text, 'rill_partition_log_end_offset', { topic: 'metered', partition: p })).toBeDefined();
    producer.close();
    tail.close();
  });

  it('answers /ready once the broker serves, and keeps /metrics for those who may describe the cluster', async () => {
    const server = await servers.start({
      auth: {
        users: [{ name: 'prom', passwordHash: 'scrypt$32768$8$3$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' }],
      },
    });
    const base = httpBase(server.httpPort);
    await vi.waitFor(async () => expect((await call(base, 'GET', '/ready')).body).toEqual({ status: 'ready' }), WAIT);
    const refused = await fetch(`${base}/metrics`);
    expect(refused.status).toBe(401);
  });
});

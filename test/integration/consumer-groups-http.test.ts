import { describe, expect, it } from 'vitest';
import { canonical, connectStompJs, publishWithReceipt, waitFor } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

async function publish(server: TestServer, topic: string, messages: Array<{ id: string; key: string; message: unknown }>): Promise<void> {
  const client = await connectStompJs(server.wsUrl);
  for (const m of messages.slice(0, -1)) client.publish({ destination: `/producer/publish/${topic}`, body: canonical(m.id, m.key, m.message) });
  const last = messages[messages.length - 1];
  await publishWithReceipt(client, `/producer/publish/${topic}`, canonical(last.id, last.key, last.message));
  await client.deactivate();
}

const numbered = (prefix: string, count: number, keys = 7) =>
  Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}`, key: `k${i % keys}`, message: `${prefix} ${i}` }));

describe('consumer groups over HTTP', () => {
  const servers = useServers();

  it("runs the seed's consumer flow exactly as its script calls it, and keeps acknowledged progress across a restart", async () => {
    const dataDir = servers.tempDir();
    const server = await servers.start({ topics: { definitions: [{ name: 'seed', partitions: 1 }] } }, dataDir);
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/consumer-group/add', { consumer_group_name: 'g1' })).status).toBe(200);
    expect((await call(base, 'POST', '/consumer/register-consumer', { consumer_group_name: 'g1', consumer_name: 'c1' })).status).toBe(200);
    expect((await call(base, 'POST', '/consumer/subscribe-topic', { consumer_name: 'c1', topic_list: 'seed' })).status).toBe(200);
    await publish(server, 'seed', numbered('s', 3));

    const first = await call(base, 'POST', '/consumer/poll', { consumer_name: 'c1' });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ messageId: 's-0', key: 'k0', message: 's 0', topic: 'seed', partition: 0, offset: 0 });
    const ack = await call(base, 'POST', '/consumer/acknowledgement', { consumer_name: 'c1', message_id: first.body.messageId });
    expect(ack.status).toBe(200);
    const second = await call(base, 'POST', '/consumer/poll', { consumer_name: 'c1' });
    expect(second.body.messageId).toBe('s-1');
    await call(base, 'POST', '/consumer/acknowledgement', { consumer_name: 'c1', message_id: 's-1' });
    expect((await call(base, 'POST', '/consumer/heartbeat', { consumer_name: 'c1' })).body.assignment).toEqual([{ topic: 'seed', partition: 0 }]);

    await server.close();
    const again = await servers.start({}, dataDir);
    const base2 = httpBase(again.httpPort);
    await call(base2, 'POST', '/consumer-group/add', { consumer_group_name: 'g1' });
    await call(base2, 'POST', '/consumer/register-consumer', { consumer_group_name: 'g1', consumer_name: 'c1' });
    await call(base2, 'POST', '/consumer/subscribe-topic', { consumer_name: 'c1', topic_list: 'seed' });
    expect((await call(base2, 'POST', '/consumer/poll', { consumer_name: 'c1' })).body.messageId).toBe('s-2');
    expect((await call(base2, 'POST', '/consumer/poll', { consumer_name: 'c1' })).body).toEqual({ messageId: null });
  });

  it('answers bad requests with a code and a message', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    expect(await call(base, 'POST', '/consumer/register-consumer', { consumer_name: 'x' })).toMatchObject({ status: 400, body: { error: { code: 'invalid-request' } } });
    expect(await call(base, 'POST', '/consumer/poll', { consumer_name: 'nobody' })).toMatchObject({ status: 404, body: { error: { code: 'unknown-member' } } });
    expect(await call(base, 'POST', '/consumer-group/add', { consumer_group_name: 'bad name!' })).toMatchObject({ status: 400 });
    expect(await call(base, 'GET', '/consumer/poll')).toMatchObject({ status: 405, body: { error: { code: 'method-not-allowed' } } });
    expect(await call(base, 'GET', '/v1/groups/none')).toMatchObject({ status: 404, body: { error: { code: 'unknown-group' } } });
    const raw = await fetch(`${base}/v1/groups`, { method: 'POST', body: '{not json' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe('invalid-json');
    await call(base, 'POST', '/consumer/register-consumer', { consumer_group_name: 'a', consumer_name: 'dup' });
    expect(await call(base, 'POST', '/consumer/register-consumer', { consumer_group_name: 'b', consumer_name: 'dup' })).toMatchObject({ status: 409, body: { error: { code: 'name-taken' } } });
    expect(await call(base, 'POST', '/consumer/acknowledgement', { consumer_name: 'dup', message_id: 'never' })).toMatchObject({ status: 404, body: { error: { code: 'unknown-message' } } });
  });

  it('splits six partitions between three members, pulls batches, and fences stale generations and non-owners', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'six', partitions: 6 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups', { group: 'g', assignor: 'range' });
    for (const m of ['m1', 'm2', 'm3']) {
      expect((await call(base, 'POST', '/v1/groups/g/members', { member: m, topics: ['six'] })).status).toBe(200);
    }
    const views = await Promise.all(['m1', 'm2', 'm3'].map((m) => call(base, 'POST', `/v1/groups/g/members/${m}/heartbeat`, {})));
    const owned = views.map((v) => v.body.assignment.map((tp: { partition: number }) => tp.partition));
    expect(owned).toEqual([[0, 1], [2, 3], [4, 5]]);
    const generation = views[0].body.generation;

    await publish(server, 'six', numbered('m', 60, 60));
    const pulled = await call(base, 'POST', '/v1/groups/g/members/m1/pull', { generation, maxMessages: 1000 });
    expect(pulled.status).toBe(200);
    const records = pulled.body.records as Array<{ partition: number; offset: number; value: string; messageId: string }>;
    expect(records.length).toBeGreaterThan(0);
    expect(records.every((r) => r.partition === 0 || r.partition === 1)).toBe(true);
    expect(JSON.parse(records[0].value).messageID).toBe(records[0].messageId);

    const commit = await call(base, 'POST', '/v1/groups/g/members/m1/commit', { generation, offsets: [{ topic: 'six', partition: 0, offset: 1 }] });
    expect(commit.status).toBe(200);
    const notMine = await call(base, 'POST', '/v1/groups/g/members/m1/commit', { generation, offsets: [{ topic: 'six', partition: 4, offset: 1 }] });
    expect(notMine).toMatchObject({ status: 409, body: { error: { code: 'not-owner' } } });
    await call(base, 'POST', '/v1/groups/g/members', { member: 'm4', topics: ['six'] });
    const stale = await call(base, 'POST', '/v1/groups/g/members/m1/commit', { generation, offsets: [{ topic: 'six', partition: 0, offset: 2 }] });
    expect(stale).toMatchObject({ status: 409, body: { error: { code: 'stale-generation' } } });
    const stalePull = await call(base, 'POST', '/v1/groups/g/members/m1/pull', { generation });
    expect(stalePull.body.error.code).toBe('stale-generation');

    const described = (await call(base, 'GET', '/v1/groups/g')).body;
    const counts = described.members.map((m: { assignment: unknown[] }) => m.assignment.length).sort();
    expect(counts).toEqual([1, 1, 2, 2]);
    const allOwned = described.members.flatMap((m: { assignment: Array<{ partition: number }> }) => m.assignment.map((tp) => tp.partition)).sort();
    expect(allOwned).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('moves the partitions of a member that stops heart-beating within the session timeout', async () => {
    const server = await servers.start({ coordinator: { sessionTimeoutMs: 600 }, topics: { definitions: [{ name: 't', partitions: 4 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'alive', topics: ['t'] });
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'doomed', topics: ['t'] });
    const beat = setInterval(() => void call(base, 'POST', '/v1/groups/g/members/alive/heartbeat', {}), 150);
    const started = Date.now();
    try {
      const view = await waitFor(() => {
        const group = server.coordinator.group('g');
        return group.members.size === 1 && group.members.get('alive')!.assignment.length === 4 ? group : undefined;
      }, 5000, 'the partitions to move');
      expect(view.members.has('doomed')).toBe(false);
    } finally {
      clearInterval(beat);
    }
    expect(Date.now() - started).toBeLessThan(600 + 1000);
  });

  it('keeps partitions in place with the sticky assignor, and lets a static member come back without a rebalance', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 's', partitions: 6 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups', { group: 'st', assignor: 'sticky' });
    for (const m of ['a', 'b', 'c']) await call(base, 'POST', '/v1/groups/st/members', { member: m, topics: ['s'], instanceId: `${m}-instance` });
    const before = server.coordinator.describe('st');
    await call(base, 'DELETE', '/v1/groups/st/members/c');
    const after = server.coordinator.describe('st');
    for (const name of ['a', 'b']) {
      const was = before.members.find((m) => m.member === name)!.assignment;
      const now = after.members.find((m) => m.member === name)!.assignment;
      for (const tp of was) expect(now).toContainEqual(tp);
      expect(now.length).toBe(3);
    }
    const generation = after.generation;
    // "a" comes back under its instance id (its process restarted): same partitions, no new generation.
    const rejoined = await call(base, 'POST', '/v1/groups/st/members', { member: 'a', instanceId: 'a-instance', topics: ['s'] });
    expect(rejoined.body.generation).toBe(generation);
    expect(rejoined.body.assignment).toEqual(after.members.find((m) => m.member === 'a')!.assignment);
  });

  it('long-polls until a message arrives, and reports lag, seeks and resets', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'lp', partitions: 1 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'waiter', topics: ['lp'] });
    const started = Date.now();
    const pending = call(base, 'POST', '/v1/groups/g/members/waiter/pull', { maxWaitMs: 5000 });
    await new Promise((r) => setTimeout(r, 200));
    await publish(server, 'lp', numbered('lp', 1));
    const result = await pending;
    expect(result.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['lp-0']);
    expect(Date.now() - started).toBeLessThan(3000);
    const empty = Date.now();
    expect((await call(base, 'POST', '/v1/groups/g/members/waiter/pull', { maxWaitMs: 300 })).body.records).toEqual([]);
    expect(Date.now() - empty).toBeGreaterThanOrEqual(250);

    await publish(server, 'lp', numbered('more', 4));
    expect((await call(base, 'GET', '/v1/groups/g/lag')).body.partitions).toEqual([{ topic: 'lp', partition: 0, offset: 0, logEndOffset: 5, lag: 5 }]);
    await call(base, 'POST', '/v1/groups/g/members/waiter/commit', { offsets: [{ topic: 'lp', partition: 0, offset: 3 }] });
    expect((await call(base, 'GET', '/v1/groups/g/lag')).body.partitions[0].lag).toBe(2);
    const seek = await call(base, 'POST', '/v1/groups/g/members/waiter/seek', { topic: 'lp', partition: 0, target: { to: 'earliest' } });
    expect(seek.body.position).toBe(0);
    expect((await call(base, 'POST', '/v1/groups/g/members/waiter/pull', {})).body.records.length).toBe(5);
    expect((await call(base, 'POST', '/v1/groups/g/offsets/reset', { target: { to: 'latest' } })).body.error.code).toBe('group-not-empty');
    await call(base, 'DELETE', '/v1/groups/g/members/waiter');
    const reset = await call(base, 'POST', '/v1/groups/g/offsets/reset', { target: { to: 'offset', offset: 1 }, topic: 'lp' });
    expect(reset.body.offsets).toEqual([{ topic: 'lp', partition: 0, offset: 1 }]);
  });

  it('delivers at least once: what a dead member pulled but did not commit goes to the next owner', async () => {
    const server = await servers.start({ coordinator: { sessionTimeoutMs: 300 }, topics: { definitions: [{ name: 'alo', partitions: 1 }] } });
    const base = httpBase(server.httpPort);
    await publish(server, 'alo', numbered('a', 10));
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'first', topics: ['alo'] });
    const got = (await call(base, 'POST', '/v1/groups/g/members/first/pull', { maxMessages: 4 })).body;
    expect(got.records.length).toBe(4);
    await call(base, 'POST', '/v1/groups/g/members/first/commit', { generation: got.generation, offsets: [{ topic: 'alo', partition: 0, offset: 2 }] });
    // "first" processed 4 but committed 2, then died. "second" takes over at the committed offset.
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'second', topics: ['alo'] });
    const beat = setInterval(() => void call(base, 'POST', '/v1/groups/g/members/second/heartbeat', {}), 100);
    try {
      await waitFor(() => !server.coordinator.group('g').members.has('first') || undefined, 3000, 'first to time out');
    } finally {
      clearInterval(beat);
    }
    const next = (await call(base, 'POST', '/v1/groups/g/members/second/pull', { maxMessages: 100 })).body;
    expect(next.records.map((r: { offset: number }) => r.offset)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('rebalances when a topic gains partitions, and keeps the new count across restarts', async () => {
    const dataDir = servers.tempDir();
    const server = await servers.start({ topics: { definitions: [{ name: 'grow', partitions: 2 }] } }, dataDir);
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'only', topics: ['grow'] });
    const before = (await call(base, 'POST', '/v1/groups/g/members/only/heartbeat', {})).body;
    expect(before.assignment).toHaveLength(2);
    expect((await call(base, 'POST', '/v1/topics/grow/partitions', { partitions: 1 })).status).toBe(400);
    expect((await call(base, 'POST', '/v1/topics/nope/partitions', { partitions: 5 })).status).toBe(404);
    expect((await call(base, 'POST', '/v1/topics/grow/partitions', { partitions: 5 })).body).toEqual({ name: 'grow', partitions: 5 });
    const after = (await call(base, 'POST', '/v1/groups/g/members/only/heartbeat', {})).body;
    expect(after.generation).toBe(before.generation + 1);
    expect(after.assignment).toHaveLength(5);
    await publish(server, 'grow', numbered('g', 50, 50));
    const ends = (await call(base, 'GET', '/v1/topics/grow')).body.partitions;
    expect(ends.filter((p: { logEndOffset: number }) => p.logEndOffset > 0).length).toBeGreaterThan(2);
    await server.close();
    const again = await servers.start({}, dataDir);
    expect(again.broker.topic('grow')?.partitions).toBe(5);
  });

  it('commits positions automatically when the group has an auto-commit interval', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'auto', partitions: 1 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups', { group: 'ac', autoCommitIntervalMs: 1 });
    await call(base, 'POST', '/v1/groups/ac/members', { member: 'auto-1', topics: ['auto'] });
    await publish(server, 'auto', numbered('x', 5));
    expect((await call(base, 'POST', '/v1/groups/ac/members/auto-1/pull', { maxMessages: 3 })).body.records).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 5));
    await call(base, 'POST', '/v1/groups/ac/members/auto-1/pull', { maxMessages: 1 });
    // The second pull committed what the first handed out (at-most-once for anything not yet processed).
    expect(server.coordinator.store.committed('ac', { topic: 'auto', partition: 0 })).toBe(3);
  });
});

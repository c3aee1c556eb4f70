import { describe, expect, it, vi } from 'vitest';
import { canonical, connectStompJs, publishWithReceipt, until, WAIT } from '../helpers/clients.js';
import { call, committedOffset, describeGroup, httpBase, topicOffsets, type GroupDescription } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

async function publish(server: TestServer, topic: string, messages: Array<{ id: string; key: string; message: unknown }>): Promise<void> {
  const client = await connectStompJs(server.wsUrl);
  for (const m of messages.slice(0, -1)) client.publish({ destination: `/producer/publish/${topic}`, body: canonical(m.id, m.key, m.message) });
  const last = messages[messages.length - 1]!;
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

  it('serves names of the longest length allowed (249 characters) in every path', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    const [topic, group, member] = ['t', 'g', 'm'].map((c) => c.repeat(249)) as [string, string, string];
    expect((await call(base, 'POST', `/v1/groups/${group}/members`, { member, topics: [topic] })).status).toBe(200);
    expect((await call(base, 'GET', `/v1/topics/${topic}`)).status).toBe(200);
    expect((await call(base, 'GET', `/v1/groups/${group}`)).body.members[0].member).toBe(member);
    expect((await call(base, 'GET', `/v1/groups/${group}/lag`)).status).toBe(200);
    expect((await call(base, 'POST', `/v1/groups/${group}/members/${member}/heartbeat`, {})).body.member).toBe(member);
  });

  it('answers bad requests with a code and a message', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    expect(await call(base, 'POST', '/consumer/register-consumer', { consumer_name: 'x' })).toMatchObject({
      status: 400,
      body: { error: { code: 'invalid-request' } },
    });
    expect(await call(base, 'POST', '/consumer/poll', { consumer_name: 'nobody' })).toMatchObject({ status: 404, body: { error: { code: 'unknown-member' } } });
    expect(await call(base, 'POST', '/consumer-group/add', { consumer_group_name: 'bad name!' })).toMatchObject({ status: 400 });
    expect(await call(base, 'GET', '/consumer/poll')).toMatchObject({ status: 405, body: { error: { code: 'method-not-allowed' } } });
    expect(await call(base, 'GET', '/v1/groups/none')).toMatchObject({ status: 404, body: { error: { code: 'unknown-group' } } });
    const raw = await fetch(`${base}/v1/groups`, { method: 'POST', body: '{not json' });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: { code: string } }).error.code).toBe('invalid-json');
    await call(base, 'POST', '/consumer/register-consumer', { consumer_group_name: 'a', consumer_name: 'dup' });
    expect(await call(base, 'POST', '/consumer/register-consumer', { consumer_group_name: 'b', consumer_name: 'dup' })).toMatchObject({
      status: 409,
      body: { error: { code: 'name-taken' } },
    });
    expect(await call(base, 'POST', '/consumer/acknowledgement', { consumer_name: 'dup', message_id: 'never' })).toMatchObject({
      status: 404,
      body: { error: { code: 'unknown-message' } },
    });
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
    expect(owned).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    const generation = views[0]!.body.generation;

    await publish(server, 'six', numbered('m', 60, 60));
    const pulled = await call(base, 'POST', '/v1/groups/g/members/m1/pull', { generation, maxMessages: 1000 });
    expect(pulled.status).toBe(200);
    const records = pulled.body.records as Array<{ partition: number; offset: number; value: string; messageId: string }>;
    expect(records.length).toBeGreaterThan(0);
    expect(records.every((r) => r.partition === 0 || r.partition === 1)).toBe(true);
    expect(JSON.parse(records[0]!.value).messageID).toBe(records[0]!.messageId);

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
    // 2 s of session timeout against a heartbeat every 150 ms: only a stall of this process of
    // nearly 2 s could make "alive" miss its session too.
    const server = await servers.start({ coordinator: { sessionTimeoutMs: 2000 }, topics: { definitions: [{ name: 't', partitions: 4 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'alive', topics: ['t'] });
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'doomed', topics: ['t'] });
    expect((await describeGroup(base, 'g'))!.members.map((m) => m.assignment.length)).toEqual([2, 2]);
    const beat = setInterval(() => void call(base, 'POST', '/v1/groups/g/members/alive/heartbeat', {}), 150);
    try {
      // No upper bound on when: a loaded machine may be late; what matters is that it happens.
      await vi.waitFor(async () => {
        const group = (await describeGroup(base, 'g'))!;
        expect(group.members.map((m) => [m.member, m.assignment.length])).toEqual([['alive', 4]]);
      }, WAIT);
    } finally {
      clearInterval(beat);
    }
  });

  it('keeps partitions in place with the sticky assignor, and lets a static member come back without a rebalance', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 's', partitions: 6 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups', { group: 'st', assignor: 'sticky' });
    for (const m of ['a', 'b', 'c']) await call(base, 'POST', '/v1/groups/st/members', { member: m, topics: ['s'], instanceId: `${m}-instance` });
    const before = (await describeGroup(base, 'st'))!;
    await call(base, 'DELETE', '/v1/groups/st/members/c');
    const after = (await describeGroup(base, 'st'))!;
    const owned = (group: GroupDescription, name: string) => group.members.find((m) => m.member === name)?.assignment;
    for (const name of ['a', 'b']) {
      const now = owned(after, name)!;
      for (const tp of owned(before, name)!) expect(now).toContainEqual(tp);
      expect(now.length).toBe(3);
    }
    const generation = after.generation;
    // "a" comes back under a new name with its instance id (its process restarted and named
    // itself anew): it is the same member, with the same partitions and no new generation.
    const rejoined = await call(base, 'POST', '/v1/groups/st/members', { member: 'a-restarted', instanceId: 'a-instance', topics: ['s'] });
    expect(rejoined.status).toBe(200);
    expect(rejoined.body.generation).toBe(generation);
    expect(rejoined.body.assignment).toEqual(owned(after, 'a'));
    const back = (await describeGroup(base, 'st'))!;
    expect(back.generation).toBe(generation);
    expect(back.members.map((m) => [m.member, m.instanceId]).sort()).toEqual([
      ['a-restarted', 'a-instance'],
      ['b', 'b-instance'],
    ]);
    expect(owned(back, 'b')).toEqual(owned(after, 'b'));
    // A member without an instance id under a new name is a new member: a rebalance.
    const dynamic = await call(base, 'POST', '/v1/groups/st/members', { member: 'b-restarted', topics: ['s'] });
    expect(dynamic.body.generation).toBe(generation + 1);
    expect((await describeGroup(base, 'st'))!.members.map((m) => m.member).sort()).toEqual(['a-restarted', 'b', 'b-restarted']);
  });

  it('long-polls until a message arrives, and reports lag, seeks and resets', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'lp', partitions: 1 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups/g/members', { group: 'g', member: 'waiter', topics: ['lp'] });
    // maxWaitMs of 60 s, longer than the test may take: only the message can end this pull.
    let answered = false;
    const pending = call(base, 'POST', '/v1/groups/g/members/waiter/pull', { maxWaitMs: 60_000 }).finally(() => (answered = true));
    // A barrier before publishing: a request sent after the pull, answered (so the pull has
    // surely reached the server and found nothing: the partition is empty).
    await call(base, 'POST', '/v1/groups/g/members/waiter/heartbeat', {});
    expect(answered).toBe(false);
    await publish(server, 'lp', numbered('lp', 1));
    const result = await pending;
    expect(result.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['lp-0']);
    // With nothing to read, a pull waits its maxWaitMs out (a lower bound only: later is fine).
    const empty = Date.now();
    expect((await call(base, 'POST', '/v1/groups/g/members/waiter/pull', { maxWaitMs: 300 })).body.records).toEqual([]);
    expect(Date.now() - empty).toBeGreaterThanOrEqual(290);

    await publish(server, 'lp', numbered('more', 4));
    expect((await call(base, 'GET', '/v1/groups/g/lag')).body.partitions).toEqual([
      { topic: 'lp', partition: 0, offset: 0, committedOffset: null, logEndOffset: 5, lag: 5 },
    ]);
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
    // 1.5 s of session timeout against a heartbeat every 100 ms for "second": only a long stall
    // of this process could make "second" time out as well.
    const server = await servers.start({ coordinator: { sessionTimeoutMs: 1500 }, topics: { definitions: [{ name: 'alo', partitions: 1 }] } });
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
      await vi.waitFor(async () => expect((await describeGroup(base, 'g'))!.members.map((m) => m.member)).toEqual(['second']), WAIT);
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
    const regrown = (await topicOffsets(httpBase(again.httpPort), 'grow'))!;
    expect(regrown.map((p) => p.partition)).toEqual([0, 1, 2, 3, 4]);
    expect(regrown.reduce((sum, p) => sum + p.logEndOffset, 0)).toBe(50);
  });

  it('commits positions automatically when the group has an auto-commit interval', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'auto', partitions: 1 }] } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/groups', { group: 'ac', autoCommitIntervalMs: 1 });
    await call(base, 'POST', '/v1/groups/ac/members', { member: 'auto-1', topics: ['auto'] });
    await publish(server, 'auto', numbered('x', 5));
    expect((await call(base, 'POST', '/v1/groups/ac/members/auto-1/pull', { maxMessages: 3 })).body.records).toHaveLength(3);
    expect(await committedOffset(base, 'ac', 'auto', 0)).toBe(0);
    // The condition is the clock: the 1 ms auto-commit interval has passed since the first pull was answered.
    const pulledAt = Date.now();
    await until('the auto-commit interval to pass', () => Date.now() >= pulledAt + 2);
    await call(base, 'POST', '/v1/groups/ac/members/auto-1/pull', { maxMessages: 1 });
    // The second pull committed what the first handed out (at-most-once for anything not yet processed).
    expect(await committedOffset(base, 'ac', 'auto', 0)).toBe(3);
  });
});

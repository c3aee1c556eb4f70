import type { Client, IMessage } from '@stomp/stompjs';
import { describe, expect, it, vi } from 'vitest';
import { canonical, collect, connectStompJs, publishWithReceipt, RawStompClient, subscribeConfirmed, subscribed, until, WAIT } from '../helpers/clients.js';
import { call, committedOffset, describeGroup, httpBase, type GroupDescription } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

async function publish(server: TestServer, topic: string, count: number, keys = 5, prefix = 'm'): Promise<void> {
  const client = await connectStompJs(server.wsUrl);
  for (let i = 0; i < count - 1; i++) client.publish({ destination: `/producer/publish/${topic}`, body: canonical(`${prefix}${i}`, `k${i % keys}`, i) });
  await publishWithReceipt(client, `/producer/publish/${topic}`, canonical(`${prefix}${count - 1}`, `k${(count - 1) % keys}`, count - 1));
  await client.deactivate();
}

/** The group's members, as GET /v1/groups/<group> describes them, by name (none when there is no such group yet). */
async function members(server: TestServer, group: string): Promise<GroupDescription['members']> {
  const found = (await describeGroup(httpBase(server.httpPort), group))?.members ?? [];
  return found.sort((a, b) => a.member.localeCompare(b.member));
}

const committed = (server: TestServer, group: string, topic: string, partition: number) => committedOffset(httpBase(server.httpPort), group, topic, partition);

/** Waits until the group's committed offset in the partition is at least `offset`, and returns it. */
function committedAtLeast(server: TestServer, group: string, topic: string, partition: number, offset: number): Promise<number> {
  return vi.waitFor(async () => {
    const now = await committed(server, group, topic, partition);
    expect(now, `the commit of ${group} in ${topic}/${partition}`).toBeGreaterThanOrEqual(offset);
    return now;
  }, WAIT);
}

/**
 * The barrier for "nothing more arrived": another group reads the whole topic on the same
 * connection (ack auto, no window), from a subscription started now. A push subscription that was
 * going to send more had read the same log earlier, so it would have sent it before these.
 */
async function readAllInAnotherGroup(client: Client, topic: string, count: number): Promise<void> {
  const group = `barrier-${Math.random().toString(36).slice(2)}`;
  const all = await subscribed(client, `/group/${group}/${topic}`, { ack: 'auto' });
  await until(`the whole of ${topic} in group ${group}`, () => all.length >= count);
}

describe('consumer groups over STOMP: push subscriptions', () => {
  const servers = useServers();

  it('pushes a group member its messages within the prefetch window, and ACK commits', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'orders', partitions: 1 }] } });
    await publish(server, 'orders', 20);
    const client = await connectStompJs(server.wsUrl);
    const messages = collect(client, '/group/billing/orders', { ack: 'client-individual', 'prefetch-count': '5' });
    await until('5 messages', () => messages.length >= 5);
    await readAllInAnotherGroup(client, 'orders', 20);
    expect(messages.length).toBe(5);
    expect(messages.map((m) => m.headers.offset)).toEqual(['0', '1', '2', '3', '4']);
    expect(messages[0]!.headers.destination).toBe('/group/billing/orders');
    messages[0]!.ack();
    messages[1]!.ack();
    expect(await committedAtLeast(server, 'billing', 'orders', 0, 2)).toBe(2);
    await until('7 messages', () => messages.length >= 7);
    // Acknowledging out of order commits only up to the lowest unacknowledged message: after 4,
    // then 2, the lowest unacknowledged is 3. The ACK of 2 comes after that of 4 on the
    // connection, so once the commit shows 2 acknowledged, the ACK of 4 was handled too.
    messages[4]!.ack();
    messages[2]!.ack();
    expect(await committedAtLeast(server, 'billing', 'orders', 0, 3)).toBe(3);
    messages[3]!.ack();
    let acked = 5;
    while (acked < 20) {
      await until(`more than ${acked} messages`, () => messages.length > acked);
      for (const m of messages.slice(acked)) m.ack();
      acked = messages.length;
    }
    expect(await committedAtLeast(server, 'billing', 'orders', 0, 20)).toBe(20);
    expect(messages.map((m) => Number(m.headers.offset))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await client.deactivate();
  });

  it('redelivers a NACKed message, and dead-letters it after maxDeliveries with the reason and count', async () => {
    const server = await servers.start({ coordinator: { maxDeliveries: 3 }, topics: { definitions: [{ name: 'jobs', partitions: 1 }] } });
    await publish(server, 'jobs', 3);
    const client = await connectStompJs(server.wsUrl);
    const seen: IMessage[] = [];
    client.subscribe(
      '/group/workers/jobs',
      (message) => {
        seen.push(message);
        if (message.headers['message-id'] === 'm1') message.nack();
        else message.ack();
      },
      { ack: 'client-individual' },
    );
    const dead = collect(client, '/topic/jobs.DLQ', { from: 'earliest' });
    await until('the dead letter', () => dead.length >= 1);
    const attempts = seen.filter((m) => m.headers['message-id'] === 'm1');
    expect(attempts.length).toBe(3);
    expect(attempts[1]!.headers.redelivered).toBe('true');
    expect(attempts[2]!.headers['delivery-count']).toBe('3');
    expect(dead[0]!.headers).toMatchObject({
      'message-id': 'm1',
      'x-delivery-count': '3',
      'x-original-topic': 'jobs',
      'x-original-partition': '0',
      'x-original-offset': '1',
      'x-consumer-group': 'workers',
    });
    expect(dead[0]!.headers['x-dead-letter-reason']).toMatch(/delivered 3 times to group workers without being acknowledged/);
    expect(JSON.parse(dead[0]!.body).messageID).toBe('m1');
    // The group moved on past the dead letter.
    expect(await committedAtLeast(server, 'workers', 'jobs', 0, 3)).toBe(3);
    expect(dead).toHaveLength(1);
    await client.deactivate();
  });

  it('shares partitions inside a group and gives every group every message', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'fan', partitions: 4 }] } });
    const a = await connectStompJs(server.wsUrl);
    const b = await connectStompJs(server.wsUrl);
    const c = await connectStompJs(server.wsUrl);
    const inGroupA = await subscribed(a, '/group/one/fan');
    const inGroupB = await subscribed(b, '/group/one/fan');
    const otherGroup = await subscribed(c, '/group/two/fan');
    await vi.waitFor(async () => expect((await members(server, 'one')).map((m) => m.assignment.length)).toEqual([2, 2]), WAIT);
    await publish(server, 'fan', 40, 40);
    await until('all deliveries', () => inGroupA.length + inGroupB.length >= 40 && otherGroup.length >= 40);
    expect(inGroupA.length + inGroupB.length).toBe(40);
    expect(otherGroup.length).toBe(40);
    expect(inGroupA.length).toBeGreaterThan(0);
    expect(inGroupB.length).toBeGreaterThan(0);
    const ids = [...inGroupA, ...inGroupB].map((m) => m.headers['message-id']);
    expect(new Set(ids).size).toBe(40);
    await Promise.all([a.deactivate(), b.deactivate(), c.deactivate()]);
  });

  it("moves a dropped member's partitions to the others within the session timeout, from the last commit", async () => {
    const server = await servers.start({ coordinator: { sessionTimeoutMs: 500 }, topics: { definitions: [{ name: 'work', partitions: 2 }] } });
    await publish(server, 'work', 20, 20);
    const survivor = await connectStompJs(server.wsUrl);
    const got = await subscribed(survivor, '/group/crew/work', { ack: 'client-individual', 'consumer-name': 'survivor' });
    const victim = await RawStompClient.session(server.stompPort);
    victim.send('SUBSCRIBE', { id: 'v', destination: '/group/crew/work', ack: 'client-individual', 'consumer-name': 'victim', receipt: 'in' });
    await victim.receipt('in');
    await vi.waitFor(
      async () =>
        expect((await members(server, 'crew')).map((m) => [m.member, m.assignment.length])).toEqual([
          ['survivor', 1],
          ['victim', 1],
        ]),
      WAIT,
    );
    await until('a message at the victim', () => victim.all('MESSAGE').length > 0);
    for (const m of got) m.ack();
    victim.socket.destroy();
    // No upper bound on how long it takes: a loaded machine may be late; what matters is that it happens.
    await vi.waitFor(async () => expect((await members(server, 'crew')).map((m) => [m.member, m.assignment.length])).toEqual([['survivor', 2]]), WAIT);
    // Everything the victim never acknowledged comes to the survivor.
    await until('all 20 at the survivor', () => new Set(got.map((m) => m.headers['message-id'])).size === 20);
    for (const m of got) m.ack();
    await survivor.deactivate();
  });

  it('refuses a second live subscription under the same consumer-name, and a bad group name', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'one', partitions: 1 }] } });
    const first = await RawStompClient.session(server.stompPort);
    first.send('SUBSCRIBE', { id: 'a', destination: '/group/g/one', 'consumer-name': 'same', receipt: 'in' });
    await first.receipt('in');
    const second = await RawStompClient.session(server.stompPort);
    second.send('SUBSCRIBE', { id: 'b', destination: '/group/g/one', 'consumer-name': 'same' });
    expect((await second.next('ERROR')).headers.message).toMatch(/consumer "same" is already consuming on a live connection/);
    const badGroup = await RawStompClient.session(server.stompPort);
    badGroup.send('SUBSCRIBE', { id: 'c', destination: '/group/bad group!/one' });
    expect((await badGroup.next('ERROR')).headers.message).toMatch(/cannot join group "bad group!": invalid group name/);
    first.close();
  });

  it('removes a dropped member at once when removeOnDisconnect is set', async () => {
    const server = await servers.start({
      coordinator: { removeOnDisconnect: true, sessionTimeoutMs: 60_000 },
      topics: { definitions: [{ name: 'rd', partitions: 2 }] },
    });
    const stays = await connectStompJs(server.wsUrl);
    await subscribeConfirmed(stays, '/group/quick/rd', () => {}, { 'consumer-name': 'stays' });
    const goes = await RawStompClient.session(server.stompPort);
    goes.send('SUBSCRIBE', { id: 'x', destination: '/group/quick/rd', 'consumer-name': 'goes', receipt: 'in' });
    await goes.receipt('in');
    expect((await members(server, 'quick')).map((m) => m.member).sort()).toEqual(['goes', 'stays']);
    goes.socket.destroy();
    // Long before the session timeout of 60 s (the wait gives up after WAIT.timeout).
    await vi.waitFor(async () => expect((await members(server, 'quick')).map((m) => [m.member, m.assignment.length])).toEqual([['stays', 2]]), WAIT);
    await stays.deactivate();
  });

  it('keeps per-key order through a rebalance that happens while messages flow', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'ordered', partitions: 4 }] } });
    const base = httpBase(server.httpPort);
    const processed: Array<{ key: string; n: number; by: string }> = [];
    // The first member holds its first window of messages unacknowledged until the second member
    // has joined: so the rebalance surely happens with messages still to flow.
    let holding = true;
    const held: IMessage[] = [];
    const handle =
      (by: string) =>
      (message: IMessage): void => {
        processed.push({ key: message.headers.key ?? '(none)', n: JSON.parse(message.body).message, by });
        if (holding && by === 'first') held.push(message);
        else message.ack();
      };
    const headers = { ack: 'client-individual', 'prefetch-count': '10' };
    const first = await connectStompJs(server.wsUrl);
    await subscribeConfirmed(first, '/group/ord/ordered', handle('first'), { ...headers, 'consumer-name': 'first' });
    const before = (await describeGroup(base, 'ord'))!;
    expect(before.members.map((m) => [m.member, m.assignment.length])).toEqual([['first', 4]]);

    const producer = await connectStompJs(server.wsUrl);
    const send = (n: number) => producer.publish({ destination: '/producer/publish/ordered', body: canonical(`o${n}`, `k${n % 8}`, n) });
    for (let n = 0; n < 100; n++) send(n);
    await until('the first window at the first member', () => held.length >= 10);

    const second = await connectStompJs(server.wsUrl);
    await subscribeConfirmed(second, '/group/ord/ordered', handle('second'), { ...headers, 'consumer-name': 'second' });
    // The rebalance, as the group describes it: a new generation, two partitions each.
    const after = await vi.waitFor(async () => {
      const group = (await describeGroup(base, 'ord'))!;
      expect(group.generation).toBeGreaterThan(before.generation);
      expect(group.members.map((m) => [m.member, m.assignment.length]).sort()).toEqual([
        ['first', 2],
        ['second', 2],
      ]);
      return group;
    }, WAIT);
    // ... while messages were flowing: most of the 100 were not processed yet.
    const processedBefore = new Set(processed.map((p) => p.n)).size;
    expect(processedBefore).toBeLessThan(100);
    holding = false;
    for (const message of held) message.ack();
    for (let n = 100; n < 200; n++) send(n);
    await until('all 200 processed', () => new Set(processed.map((p) => p.n)).size === 200);
    expect((await describeGroup(base, 'ord'))!.generation).toBe(after.generation);
    // Both members took part after the rebalance.
    const afterwards = processed.slice(processedBefore);
    expect(afterwards.some((p) => p.by === 'first')).toBe(true);
    expect(afterwards.some((p) => p.by === 'second')).toBe(true);
    // At least once: a message may come twice across the rebalance, but each key's first sightings are in order.
    const byKey = new Map<string, number[]>();
    for (const { key, n } of processed) {
      const list = byKey.get(key) ?? [];
      if (!list.includes(n)) list.push(n);
      byKey.set(key, list);
    }
    expect(byKey.size).toBe(8);
    for (const numbers of byKey.values()) expect(numbers).toEqual([...numbers].sort((x, y) => x - y));
    expect([...first.errors, ...second.errors]).toEqual([]);
    await Promise.all([first.deactivate(), second.deactivate(), producer.deactivate()]);
  });

  it('gives a static member that comes back under a new name with its instance-id its partitions, without a rebalance', async () => {
    const server = await servers.start({ coordinator: { sessionTimeoutMs: 60_000 }, topics: { definitions: [{ name: 'st', partitions: 4 }] } });
    const base = httpBase(server.httpPort);
    const join = async (name: string, instanceId?: string): Promise<RawStompClient> => {
      const client = await RawStompClient.session(server.stompPort);
      const headers: Record<string, string> = { id: 'g', destination: '/group/static/st', ack: 'client-individual', 'consumer-name': name, receipt: 'joined' };
      if (instanceId !== undefined) headers['instance-id'] = instanceId;
      client.send('SUBSCRIBE', headers);
      await client.receipt('joined');
      return client;
    };
    const owned = (group: GroupDescription, name: string) => group.members.find((m) => m.member === name)?.assignment;
    const one = await join('one-v1', 'instance-1');
    const two = await join('two-v1');
    const settled = await vi.waitFor(async () => {
      const group = (await describeGroup(base, 'static'))!;
      expect(group.members.map((m) => m.assignment.length)).toEqual([2, 2]);
      return group;
    }, WAIT);

    // The static member's process dies (its connection drops) and comes back as "one-v2". The
    // server releases a member as it handles the dropped socket, which it sees (a reset) before
    // the new connection's CONNECT and SUBSCRIBE, sent after a round trip; were the instance
    // still held, the SUBSCRIBE would be refused with an ERROR and this test would say so.
    one.socket.destroy();
    const oneAgain = await join('one-v2', 'instance-1');
    const back = (await describeGroup(base, 'static'))!;
    expect(back.generation).toBe(settled.generation);
    expect(back.members.map((m) => m.member).sort()).toEqual(['one-v2', 'two-v1']);
    expect(owned(back, 'one-v2')).toEqual(owned(settled, 'one-v1'));
    expect(owned(back, 'two-v1')).toEqual(owned(settled, 'two-v1'));
    expect(back.members.find((m) => m.member === 'one-v2')!.instanceId).toBe('instance-1');

    // A dynamic member coming back under a new name is a new member: a rebalance.
    two.socket.destroy();
    const twoAgain = await join('two-v2');
    const rebalanced = (await describeGroup(base, 'static'))!;
    expect(rebalanced.generation).toBeGreaterThan(settled.generation);
    expect(rebalanced.members.map((m) => m.member).sort()).toEqual(['one-v2', 'two-v1', 'two-v2']);
    oneAgain.close();
    twoAgain.close();
  });
});

describe('consumer groups over STOMP: requests', () => {
  const servers = useServers();

  it('answers requests on the reply subscription by correlation-id, and pushes new assignments', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'req', partitions: 2 }] } });
    await publish(server, 'req', 6, 6);
    const client = await RawStompClient.session(server.stompPort);
    client.send('SUBSCRIBE', { id: 'replies', destination: '/user/replies', receipt: 'ok' });
    await client.receipt('ok');
    const request = async (operation: string, body: unknown, id: string) => {
      client.send('SEND', { destination: `/request/${operation}`, 'correlation-id': id, 'content-type': 'application/json' }, JSON.stringify(body));
      const reply = await until(`the reply to ${id}`, () => client.all('MESSAGE').find((f) => f.headers['correlation-id'] === id));
      return { status: Number(reply.headers.status), body: JSON.parse(reply.body.toString()) };
    };
    const joined = await request('join', { group: 'rq', member: 'stomp-member', topics: ['req'] }, 'c1');
    expect(joined).toMatchObject({
      status: 200,
      body: {
        group: 'rq',
        member: 'stomp-member',
        assignment: [
          { topic: 'req', partition: 0 },
          { topic: 'req', partition: 1 },
        ],
      },
    });
    const pulled = await request('pull', { member: 'stomp-member', generation: joined.body.generation, maxMessages: 100 }, 'c2');
    expect(pulled.status).toBe(200);
    expect(pulled.body.records.length).toBe(6);
    const commit = await request(
      'commit',
      { member: 'stomp-member', generation: joined.body.generation, offsets: [{ topic: 'req', partition: 0, offset: 1 }] },
      'c3',
    );
    expect(commit.status).toBe(200);
    expect((await request('pull', { member: 'nobody' }, 'c4')).body.error.code).toBe('unknown-member');
    expect((await request('pull', { member: 'stomp-member', maxMessages: -1 }, 'c5')).status).toBe(400);
    expect((await request('frobnicate', {}, 'c6')).status).toBe(404);

    // Another member joins: the first hears of its new assignment at once.
    expect((await call(httpBase(server.httpPort), 'POST', '/v1/groups/rq/members', { member: 'other', topics: ['req'] })).status).toBe(200);
    const event = await until('the assignment event', () => client.all('MESSAGE').find((f) => f.headers.event === 'assignment'));
    const pushed = JSON.parse(event.body.toString());
    expect(pushed).toMatchObject({ event: 'assignment', member: 'stomp-member', generation: joined.body.generation + 1 });
    expect(pushed.assignment).toHaveLength(1);
    client.close();
  });

  it('requires a reply subscription', async () => {
    const server = await servers.start();
    const client = await RawStompClient.session(server.stompPort);
    client.send('SEND', { destination: '/request/list-groups', receipt: 'x' }, '{}');
    const error = await client.next('ERROR');
    expect(error.headers.message).toMatch(/subscribe to \/user\/replies before sending requests/);
    expect(error.headers['receipt-id']).toBe('x');
  });
});

import type { IMessage } from '@stomp/stompjs';
import { describe, expect, it } from 'vitest';
import { canonical, collect, connectStompJs, publishWithReceipt, RawStompClient, waitFor } from '../helpers/clients.js';
import { useServers, type TestServer } from '../helpers/server.js';

async function publish(server: TestServer, topic: string, count: number, keys = 5, prefix = 'm'): Promise<void> {
  const client = await connectStompJs(server.wsUrl);
  for (let i = 0; i < count - 1; i++) client.publish({ destination: `/producer/publish/${topic}`, body: canonical(`${prefix}${i}`, `k${i % keys}`, i) });
  await publishWithReceipt(client, `/producer/publish/${topic}`, canonical(`${prefix}${count - 1}`, `k${(count - 1) % keys}`, count - 1));
  await client.deactivate();
}

function members(server: TestServer, group: string): Array<{ member: string; assignment: unknown[] }> {
  return server.coordinator.listGroups().some((g) => g.name === group) ? server.coordinator.describe(group).members : [];
}

const committed = (server: TestServer, group: string, topic: string, partition: number) =>
  server.coordinator.store.committed(group, { topic, partition });

describe('consumer groups over STOMP: push subscriptions', () => {
  const servers = useServers();

  it('pushes a group member its messages within the prefetch window, and ACK commits', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'orders', partitions: 1 }] } });
    await publish(server, 'orders', 20);
    const client = await connectStompJs(server.wsUrl);
    const messages = collect(client, '/group/billing/orders', { ack: 'client-individual', 'prefetch-count': '5' });
    await waitFor(() => messages.length === 5 || undefined);
    await new Promise((r) => setTimeout(r, 150));
    expect(messages.length).toBe(5);
    expect(messages.map((m) => m.headers.offset)).toEqual(['0', '1', '2', '3', '4']);
    expect(messages[0].headers.destination).toBe('/group/billing/orders');
    messages[0].ack();
    messages[1].ack();
    await waitFor(() => committed(server, 'billing', 'orders', 0) === 2 || undefined, 3000, 'the commit');
    await waitFor(() => messages.length === 7 || undefined);
    // Acknowledging out of order commits only up to the lowest unacknowledged message.
    messages[4].ack();
    await new Promise((r) => setTimeout(r, 100));
    expect(committed(server, 'billing', 'orders', 0)).toBe(2);
    let acked = 2;
    while (acked < 20) {
      await waitFor(() => messages.length > acked || undefined);
      for (const m of messages.slice(acked)) m.ack();
      acked = messages.length;
    }
    await waitFor(() => committed(server, 'billing', 'orders', 0) === 20 || undefined, 3000, 'everything committed');
    await client.deactivate();
  });

  it('redelivers a NACKed message, and dead-letters it after maxDeliveries with the reason and count', async () => {
    const server = await servers.start({ coordinator: { maxDeliveries: 3 }, topics: { definitions: [{ name: 'jobs', partitions: 1 }] } });
    await publish(server, 'jobs', 3);
    const client = await connectStompJs(server.wsUrl);
    const seen: IMessage[] = [];
    client.subscribe('/group/workers/jobs', (message) => {
      seen.push(message);
      if (message.headers['message-id'] === 'm1') message.nack();
      else message.ack();
    }, { ack: 'client-individual' });
    const dead = collect(client, '/topic/jobs.DLQ', { from: 'earliest' });
    await waitFor(() => dead.length === 1 || undefined, 5000, 'the dead letter');
    const attempts = seen.filter((m) => m.headers['message-id'] === 'm1');
    expect(attempts.length).toBe(3);
    expect(attempts[1].headers.redelivered).toBe('true');
    expect(attempts[2].headers['delivery-count']).toBe('3');
    expect(dead[0].headers).toMatchObject({
      'message-id': 'm1',
      'x-delivery-count': '3',
      'x-original-topic': 'jobs',
      'x-original-partition': '0',
      'x-original-offset': '1',
      'x-consumer-group': 'workers',
    });
    expect(dead[0].headers['x-dead-letter-reason']).toMatch(/rejected \(NACK\) 3 times/);
    expect(JSON.parse(dead[0].body).messageID).toBe('m1');
    // The group moved on past the dead letter.
    await waitFor(() => committed(server, 'workers', 'jobs', 0) === 3 || undefined, 3000, 'the group to move on');
    await client.deactivate();
  });

  it('shares partitions inside a group and gives every group every message', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'fan', partitions: 4 }] } });
    const a = await connectStompJs(server.wsUrl);
    const b = await connectStompJs(server.wsUrl);
    const c = await connectStompJs(server.wsUrl);
    const inGroupA = collect(a, '/group/one/fan', { receipt: 'ra' });
    const inGroupB = collect(b, '/group/one/fan');
    const otherGroup = collect(c, '/group/two/fan');
    await waitFor(() => members(server, 'one').length === 2 || undefined);
    await waitFor(() => members(server, 'one').every((m) => m.assignment.length === 2) || undefined);
    await publish(server, 'fan', 40, 40);
    await waitFor(() => inGroupA.length + inGroupB.length === 40 && otherGroup.length === 40 || undefined, 5000, 'all deliveries');
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
    const got = collect(survivor, '/group/crew/work', { ack: 'client-individual', 'consumer-name': 'survivor' });
    await waitFor(() => members(server, 'crew').length === 1 || undefined);
    const victim = await RawStompClient.session(server.stompPort);
    victim.send('SUBSCRIBE', { id: 'v', destination: '/group/crew/work', ack: 'client-individual', 'consumer-name': 'victim' });
    await waitFor(() => members(server, 'crew').length === 2 || undefined);
    await waitFor(() => victim.frames.filter((f) => f.command === 'MESSAGE').length > 0 || undefined);
    for (const m of got) m.ack();
    const dropped = Date.now();
    victim.socket.destroy();
    await waitFor(() => {
      const current = members(server, 'crew');
      return current.length === 1 && current[0].assignment.length === 2 ? current : undefined;
    }, 3000, 'the rebalance');
    expect(Date.now() - dropped).toBeLessThan(500 + 1000);
    // Everything the victim never acknowledged comes to the survivor.
    await waitFor(() => new Set(got.map((m) => m.headers['message-id'])).size === 20 || undefined, 5000, 'all 20 at the survivor');
    for (const m of got) m.ack();
    await survivor.deactivate();
  });

  it('refuses a second live subscription under the same consumer-name, and a bad group name', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'one', partitions: 1 }] } });
    const first = await RawStompClient.session(server.stompPort);
    first.send('SUBSCRIBE', { id: 'a', destination: '/group/g/one', 'consumer-name': 'same', receipt: 'in' });
    await first.next('RECEIPT');
    const second = await RawStompClient.session(server.stompPort);
    second.send('SUBSCRIBE', { id: 'b', destination: '/group/g/one', 'consumer-name': 'same' });
    expect((await second.next('ERROR')).headers.message).toMatch(/consumer "same" is already consuming on a live connection/);
    const badGroup = await RawStompClient.session(server.stompPort);
    badGroup.send('SUBSCRIBE', { id: 'c', destination: '/group/bad group!/one' });
    expect((await badGroup.next('ERROR')).headers.message).toMatch(/cannot join group "bad group!": invalid group name/);
    first.close();
  });

  it('removes a dropped member at once when removeOnDisconnect is set', async () => {
    const server = await servers.start({ coordinator: { removeOnDisconnect: true, sessionTimeoutMs: 60_000 }, topics: { definitions: [{ name: 'rd', partitions: 2 }] } });
    const stays = await connectStompJs(server.wsUrl);
    stays.subscribe('/group/quick/rd', () => {}, { 'consumer-name': 'stays' });
    const goes = await RawStompClient.session(server.stompPort);
    goes.send('SUBSCRIBE', { id: 'x', destination: '/group/quick/rd', 'consumer-name': 'goes', receipt: 'in' });
    await goes.next('RECEIPT');
    expect(members(server, 'quick').length).toBe(2);
    goes.socket.destroy();
    await waitFor(() => members(server, 'quick').length === 1 || undefined, 1000, 'the member to be removed');
    expect(members(server, 'quick')[0].assignment).toHaveLength(2);
    await stays.deactivate();
  });

  it('keeps per-key order through a rebalance', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'ordered', partitions: 4 }] } });
    const processed: Array<{ key: string; n: number }> = [];
    const handle = (message: IMessage): void => {
      processed.push({ key: message.headers.key, n: JSON.parse(message.body).message });
      message.ack();
    };
    const first = await connectStompJs(server.wsUrl);
    first.subscribe('/group/ord/ordered', handle, { ack: 'client-individual' });
    await waitFor(() => members(server, 'ord').length === 1 || undefined);
    const producer = await connectStompJs(server.wsUrl);
    const send = (n: number) => producer.publish({ destination: '/producer/publish/ordered', body: canonical(`o${n}`, `k${n % 8}`, n) });
    for (let n = 0; n < 100; n++) send(n);
    const second = await connectStompJs(server.wsUrl);
    second.subscribe('/group/ord/ordered', handle, { ack: 'client-individual' });
    for (let n = 100; n < 200; n++) send(n);
    await waitFor(() => new Set(processed.map((p) => p.n)).size === 200 || undefined, 10_000, 'all 200 processed');
    expect(members(server, 'ord').length).toBe(2);
    // At least once: a message may come twice across the rebalance, but each key's first sightings are in order.
    const byKey = new Map<string, number[]>();
    for (const { key, n } of processed) {
      const list = byKey.get(key) ?? [];
      if (!list.includes(n)) list.push(n);
      byKey.set(key, list);
    }
    for (const numbers of byKey.values()) expect(numbers).toEqual([...numbers].sort((x, y) => x - y));
    await Promise.all([first.deactivate(), second.deactivate(), producer.deactivate()]);
  });
});

describe('consumer groups over STOMP: requests', () => {
  const servers = useServers();

  it('answers requests on the reply subscription by correlation-id, and pushes new assignments', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'req', partitions: 2 }] } });
    await publish(server, 'req', 6, 6);
    const client = await RawStompClient.session(server.stompPort);
    client.send('SUBSCRIBE', { id: 'replies', destination: '/user/replies', receipt: 'ok' });
    await client.next('RECEIPT');
    const request = async (operation: string, body: unknown, id: string) => {
      client.send('SEND', { destination: `/request/${operation}`, 'correlation-id': id, 'content-type': 'application/json' }, JSON.stringify(body));
      const reply = await waitFor(() => client.frames.find((f) => f.command === 'MESSAGE' && f.headers['correlation-id'] === id));
      return { status: Number(reply.headers.status), body: JSON.parse(reply.body.toString()) };
    };
    const joined = await request('join', { group: 'rq', member: 'stomp-member', topics: ['req'] }, 'c1');
    expect(joined).toMatchObject({ status: 200, body: { group: 'rq', member: 'stomp-member', assignment: [{ topic: 'req', partition: 0 }, { topic: 'req', partition: 1 }] } });
    const pulled = await request('pull', { member: 'stomp-member', generation: joined.body.generation, maxMessages: 100 }, 'c2');
    expect(pulled.status).toBe(200);
    expect(pulled.body.records.length).toBe(6);
    const commit = await request('commit', { member: 'stomp-member', generation: joined.body.generation, offsets: [{ topic: 'req', partition: 0, offset: 1 }] }, 'c3');
    expect(commit.status).toBe(200);
    expect((await request('pull', { member: 'nobody' }, 'c4')).body.error.code).toBe('unknown-member');
    expect((await request('pull', { member: 'stomp-member', maxMessages: -1 }, 'c5')).status).toBe(400);
    expect((await request('frobnicate', {}, 'c6')).status).toBe(404);

    // Another member joins: the first hears of its new assignment at once.
    await server.coordinator.join('rq', 'other', { topics: ['req'] });
    const event = await waitFor(() => client.frames.find((f) => f.headers.event === 'assignment'));
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

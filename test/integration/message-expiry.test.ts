import { describe, expect, it, vi } from 'vitest';
import { canonical, WAIT, RawStompClient, until } from '../helpers/clients.js';
import { call, committedOffset, httpBase, storedCount } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

/** Publishes with a receipt and waits for it. */
async function publish(client: RawStompClient, topic: string, id: string, headers: Record<string, string> = {}): Promise<void> {
  client.send('SEND', { destination: `/producer/publish/${topic}`, receipt: `r-${id}`, ...headers }, canonical(id, 'k', `body of ${id}`));
  await client.receipt(`r-${id}`);
}

/**
 * Three messages in one partition: one without expiry, one that expires in an hour, and last one
 * that expired before it was sent (last: a group must move past it with nothing after it to ACK).
 */
async function publishThree(server: TestServer, topic: string): Promise<number> {
  const client = await RawStompClient.session(server.stompPort);
  await publish(client, topic, 'kept', {});
  const sent = Date.now();
  await publish(client, topic, 'later', { ttl: '3600000' });
  await publish(client, topic, 'gone', { expires: '1' });
  client.close();
  return sent;
}

describe('message time-to-live (expires and ttl headers, topics.ttlMs)', () => {
  const servers = useServers();

  it('stores an expired message but delivers it to no tail, pushes it to no group member, and moves the group past it', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 1 } });
    const sent = await publishThree(server, 'ttl');
    expect(await storedCount(httpBase(server.httpPort), 'ttl')).toBe(3);

    const reader = await RawStompClient.session(server.stompPort);
    reader.send('SUBSCRIBE', { id: 'tail', destination: '/topic/ttl', from: 'earliest' });
    reader.send('SUBSCRIBE', { id: 'group', destination: '/group/g/ttl', ack: 'client-individual', receipt: 'subscribed' });
    await reader.receipt('subscribed');
    await until('two messages on each subscription', () => reader.all('MESSAGE').length >= 4);
    const bySubscription = (id: string) => reader.all('MESSAGE').filter((frame) => frame.headers.subscription === id);
    expect(bySubscription('tail').map((frame) => frame.headers['message-id'])).toEqual(['kept', 'later']);
    const pushed = bySubscription('group');
    expect(pushed.map((frame) => frame.headers['message-id'])).toEqual(['kept', 'later']);
    // The expiry travels with the message, as an absolute time.
    const expires = Number(pushed[1]!.headers.expires);
    expect(expires).toBeGreaterThanOrEqual(sent + 3_600_000);
    expect(expires).toBeLessThan(Date.now() + 3_600_000 + 1);

    for (const frame of pushed) reader.send('ACK', { id: frame.headers.ack! });
    await vi.waitFor(async () => expect(await committedOffset(httpBase(server.httpPort), 'g', 'ttl', 0)).toBe(3), { timeout: 15_000, interval: 20 });
    reader.close();
  });

  it('passes expired messages over in a pull, and the position moves past them', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 1 } });
    await publishThree(server, 'pulled');
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/groups/p/members', { member: 'm', topics: ['pulled'] })).status).toBe(200);
    const pulled = await call(base, 'POST', '/v1/groups/p/members/m/pull', { maxMessages: 10 });
    expect(pulled.status).toBe(200);
    expect(pulled.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['kept', 'later']);
    const again = await call(base, 'POST', '/v1/groups/p/members/m/pull', { maxMessages: 10 });
    expect(again.body.records).toEqual([]);
  });

  it('gives messages the topic’s ttlMs unless they name their own (ttl:0 for never)', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'short', partitions: 1, ttlMs: 50 }] } });
    const client = await RawStompClient.session(server.stompPort);
    await publish(client, 'short', 'brief', {});
    await publish(client, 'short', 'forever', { ttl: '0' });
    const sent = Date.now();
    await until('the topic’s 50 ms to pass', () => Date.now() > sent + 60);
    client.send('SUBSCRIBE', { id: 'tail', destination: '/topic/short', from: 'earliest' });
    // A barrier that never expires: once it arrives, everything before it was passed over or delivered.
    await publish(client, 'short', 'barrier', { ttl: '0' });
    await until('the barrier', () => client.all('MESSAGE').some((frame) => frame.headers['message-id'] === 'barrier'));
    expect(client.all('MESSAGE').map((frame) => frame.headers['message-id'])).toEqual(['forever', 'barrier']);
    client.close();
  });

  it('refuses a ttl or expires header that is not whole milliseconds, with the reason, and stores nothing', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 1 } });
    const producer = await RawStompClient.session(server.stompPort);
    producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/bad', receipt: 'subscribed' });
    await producer.receipt('subscribed');
    producer.send('SEND', { destination: '/producer/publish/bad', expires: '-5' }, canonical('e', 'k', 1));
    producer.send('SEND', { destination: '/producer/publish/bad', ttl: '1.5' }, canonical('t', 'k', 1));
    await until('two acknowledgments', () => producer.all('MESSAGE').length === 2);
    const acks = producer.all('MESSAGE').map((frame) => JSON.parse(frame.body.toString()));
    expect(acks[0]).toMatchObject({ messageID: 'e', status: 'FAILED', code: 'invalid-message', retriable: false });
    expect(acks[0].reason).toContain('expires header "-5"');
    expect(acks[1].reason).toContain('ttl header "1.5"');

    const plain = await RawStompClient.session(server.stompPort);
    plain.send('SEND', { destination: '/producer/publish/bad', ttl: 'soon', receipt: 'x' }, canonical('s', 'k', 1));
    const error = await plain.next('ERROR');
    expect(error.headers.message).toContain('ttl header "soon" is not a whole number of milliseconds');
    await plain.closedByServer();
    expect(await storedCount(httpBase(server.httpPort), 'bad')).toBe(0);
    producer.close();
  });

  it('dead-letters an expired message, with reason expired, for a group that asks for it (push and pull), once per group', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 1 } });
    const base = httpBase(server.httpPort);
    for (const group of ['pushed', 'pulled']) expect((await call(base, 'POST', '/v1/groups', { group, deadLetterExpired: true })).status).toBe(200);
    await publishThree(server, 'ttl');

    const consumer = await RawStompClient.session(server.stompPort);
    consumer.send('SUBSCRIBE', { id: 'g', destination: '/group/pushed/ttl', ack: 'client-individual' });
    await until('two messages', () => consumer.all('MESSAGE').length >= 2);
    for (const frame of consumer.all('MESSAGE')) consumer.send('ACK', { id: frame.headers.ack });
    await vi.waitFor(async () => expect(await committedOffset(base, 'pushed', 'ttl', 0)).toBe(3), WAIT);
    expect((await call(base, 'POST', '/v1/groups/pulled/members', { member: 'm', topics: ['ttl'] })).status).toBe(200);
    const pulled = await call(base, 'POST', '/v1/groups/pulled/members/m/pull', { maxWaitMs: 2000 });
    expect(pulled.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['kept', 'later']);
    // A group that did not ask passes it over, and dead-letters nothing.
    const plain = await RawStompClient.session(server.stompPort);
    plain.send('SUBSCRIBE', { id: 'g', destination: '/group/plain/ttl', ack: 'client-individual' });
    await until('two messages', () => plain.all('MESSAGE').length >= 2);

    await vi.waitFor(async () => expect(await storedCount(base, 'ttl.DLQ')).toBe(2), WAIT);
    const reader = await RawStompClient.session(server.stompPort);
    reader.send('SUBSCRIBE', { id: 'dlq', destination: '/topic/ttl.DLQ', from: 'earliest' });
    await until('two dead letters', () => reader.all('MESSAGE').length >= 2);
    const dead = reader.all('MESSAGE');
    expect(dead.map((f) => f.headers['message-id'])).toEqual(['gone', 'gone']);
    expect(dead.map((f) => f.headers['x-dead-letter-reason']).sort()).toEqual([
      'expired before group pulled consumed it',
      'expired before group pushed consumed it',
    ]);
    // A dead letter does not expire in its turn: readable there.
    expect(dead.every((f) => f.headers.expires === undefined)).toBe(true);
    for (const client of [consumer, plain, reader]) client.close();
  });
});

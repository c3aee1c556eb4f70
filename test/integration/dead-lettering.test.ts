import { describe, expect, it, vi } from 'vitest';
import { canonical, WAIT, RawStompClient, readTopic } from '../helpers/clients.js';
import { call, committedOffset, describeGroup, httpBase, storedCount } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

/** Publishes messages with receipts to a topic of one partition. */
async function publish(server: TestServer, topic: string, ids: string[]): Promise<void> {
  const producer = await RawStompClient.session(server.stompPort);
  for (const id of ids) producer.send('SEND', { destination: `/producer/publish/${topic}`, receipt: id }, canonical(id, 'k', `body of ${id}`));
  for (const id of ids) await producer.receipt(id);
  producer.close();
}

/** A consumer that gets the group's next message and crashes on it: its connection drops, no ACK, no NACK. */
async function crashOnNext(server: TestServer): Promise<Record<string, string>> {
  const consumer = await RawStompClient.session(server.stompPort);
  consumer.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual', 'prefetch-count': '1' });
  const message = await consumer.next('MESSAGE');
  consumer.close();
  return message.headers;
}

const settings = {
  topics: { definitions: [{ name: 'jobs', partitions: 1 }] },
  // A dropped member leaves at once, so the next consumer gets the partition without waiting.
  coordinator: { maxDeliveries: 3, removeOnDisconnect: true },
};

describe('dead-lettering that cannot loop: durable delivery counts', () => {
  const servers = useServers();

  it('counts only the oldest unsettled message of a dropped connection, not the healthy ones in its credit window', async () => {
    const server = await servers.start(settings);
    await publish(server, 'jobs', ['poison', 'fine-1', 'fine-2']);
    for (let crash = 1; crash <= 3; crash++) {
      const consumer = await RawStompClient.session(server.stompPort);
      consumer.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual', 'prefetch-count': '10' });
      const window = [await consumer.next('MESSAGE'), await consumer.next('MESSAGE'), await consumer.next('MESSAGE')];
      expect(window.map((m) => [m.headers['message-id'], m.headers['delivery-count']])).toEqual([
        ['poison', crash === 1 ? undefined : String(crash)],
        ['fine-1', undefined],
        ['fine-2', undefined],
      ]);
      consumer.close();
      await vi.waitFor(async () => expect((await describeGroup(httpBase(server.httpPort), 'workers'))!.members).toEqual([]), WAIT);
    }
    const survivor = await RawStompClient.session(server.stompPort);
    survivor.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual', 'prefetch-count': '10' });
    const healthy = [await survivor.next('MESSAGE'), await survivor.next('MESSAGE')];
    expect(healthy.map((m) => [m.headers['message-id'], m.headers['delivery-count']])).toEqual([
      ['fine-1', undefined],
      ['fine-2', undefined],
    ]);
    expect((await readTopic(server, 'jobs.DLQ')).map((m) => m.messageId)).toEqual(['poison']);
    survivor.close();
  });

  it('counts nothing for a clean UNSUBSCRIBE, nor for a broker that shuts down with the message unsettled', async () => {
    const server = await servers.start(settings);
    await publish(server, 'jobs', ['m']);
    const leaving = await RawStompClient.session(server.stompPort);
    leaving.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual' });
    await leaving.next('MESSAGE');
    leaving.send('UNSUBSCRIBE', { id: 's', receipt: 'gone' });
    await leaving.receipt('gone');
    const holding = await RawStompClient.session(server.stompPort);
    holding.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual' });
    expect((await holding.next('MESSAGE')).headers['delivery-count']).toBeUndefined();
    // The broker stops while the message is out: the consumer did not fail.
    const { dataDir } = server;
    await server.close();
    await holding.closedByServer();
    const restarted = await servers.start(settings, dataDir);
    const next = await RawStompClient.session(restarted.stompPort);
    next.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual' });
    expect((await next.next('MESSAGE')).headers['delivery-count']).toBeUndefined();
    next.close();
  });

  it('dead-letters a message whose consumers crash on it maxDeliveries times without a NACK, and goes on with the next', async () => {
    const server = await servers.start(settings);
    await publish(server, 'jobs', ['poison', 'fine']);
    const seen: Array<[string | undefined, string | undefined]> = [];
    for (let crash = 1; crash <= 3; crash++) {
      const headers = await crashOnNext(server);
      seen.push([headers['message-id'], headers['delivery-count']]);
    }
    // Counted across connections and members: 1 (no header), 2, 3.
    expect(seen).toEqual([
      ['poison', undefined],
      ['poison', '2'],
      ['poison', '3'],
    ]);
    const survivor = await RawStompClient.session(server.stompPort);
    survivor.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual' });
    const next = await survivor.next('MESSAGE');
    expect(next.headers['message-id']).toBe('fine');
    survivor.send('ACK', { id: next.headers.ack, receipt: 'acked' });
    await survivor.receipt('acked');
    const [dead] = await readTopic(server, 'jobs.DLQ');
    expect(dead!.messageId).toBe('poison');
    expect(JSON.parse(dead!.body.toString()).message).toBe('body of poison');
    // The group is past both: nothing is lost, and the poison is not delivered again.
    await vi.waitFor(async () => expect(await committedOffset(httpBase(server.httpPort), 'workers', 'jobs', 0)).toBe(2), WAIT);
    expect(survivor.all('MESSAGE')).toHaveLength(1);
    survivor.close();
  });

  it('keeps the counts across a broker restart', async () => {
    const server = await servers.start(settings);
    await publish(server, 'jobs', ['poison']);
    expect((await crashOnNext(server))['delivery-count']).toBeUndefined();
    expect((await crashOnNext(server))['delivery-count']).toBe('2');
    // The broker saw the crash (the member is gone) before it stops.
    await vi.waitFor(async () => expect((await describeGroup(httpBase(server.httpPort), 'workers'))!.members).toEqual([]), WAIT);
    const { dataDir } = server;
    await server.close();
    const restarted = await servers.start(settings, dataDir);
    expect((await crashOnNext(restarted))['delivery-count']).toBe('3');
    const survivor = await RawStompClient.session(restarted.stompPort);
    survivor.send('SUBSCRIBE', { id: 's', destination: '/group/workers/jobs', ack: 'client-individual' });
    await vi.waitFor(async () => expect(await storedCount(httpBase(restarted.httpPort), 'jobs.DLQ')).toBe(1), WAIT);
    expect(survivor.all('MESSAGE')).toEqual([]);
    expect((await readTopic(restarted, 'jobs.DLQ')).map((m) => m.messageId)).toEqual(['poison']);
    survivor.close();
  });

  it('counts pulls of a member that is lost before it commits, hands each pull its delivery count, and dead-letters after maxDeliveries', async () => {
    const server = await servers.start({ ...settings, coordinator: { maxDeliveries: 2, sessionTimeoutMs: 200 } });
    const base = httpBase(server.httpPort);
    await publish(server, 'jobs', ['poison', 'fine']);
    expect((await call(base, 'POST', '/v1/groups', { group: 'pullers', resetPolicy: 'earliest' })).status).toBe(200);
    const counts: number[] = [];
    for (let life = 1; life <= 2; life++) {
      const member = `m${life}`;
      expect((await call(base, 'POST', '/v1/groups/pullers/members', { member, topics: ['jobs'] })).status).toBe(200);
      const pulled = await call(base, 'POST', `/v1/groups/pullers/members/${member}/pull`, { maxMessages: 1, maxWaitMs: 2000 });
      expect(pulled.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['poison']);
      counts.push(pulled.body.records[0].deliveryCount);
      // It crashes: no commit, no heartbeat; the session times out (describing the group is no heartbeat).
      await vi.waitFor(async () => expect((await describeGroup(base, 'pullers'))!.members.map((m) => m.member)).not.toContain(member), {
        timeout: 5000,
        interval: 50,
      });
    }
    expect(counts).toEqual([1, 2]);
    expect((await call(base, 'POST', '/v1/groups/pullers/members', { member: 'm3', topics: ['jobs'] })).status).toBe(200);
    const pulled = await call(base, 'POST', '/v1/groups/pullers/members/m3/pull', { maxWaitMs: 2000 });
    expect(pulled.body.records.map((r: { messageId: string; deliveryCount: number }) => [r.messageId, r.deliveryCount])).toEqual([['fine', 1]]);
    const [dead] = await readTopic(server, 'jobs.DLQ');
    expect(dead!.messageId).toBe('poison');
  });

  it('dead-letters a message a pull consumer rejects, at once, and no member of the group is handed it again', async () => {
    const server = await servers.start(settings);
    const base = httpBase(server.httpPort);
    await publish(server, 'jobs', ['bad', 'good']);
    expect((await call(base, 'POST', '/v1/groups', { group: 'pullers', resetPolicy: 'earliest' })).status).toBe(200);
    expect((await call(base, 'POST', '/v1/groups/pullers/members', { member: 'm1', topics: ['jobs'] })).status).toBe(200);
    const pulled = await call(base, 'POST', '/v1/groups/pullers/members/m1/pull', { maxWaitMs: 2000 });
    expect(pulled.body.records).toHaveLength(2);

    const notOwned = await call(base, 'POST', '/v1/groups/pullers/members/m1/reject', { topic: 'jobs', partition: 5, offset: 0 });
    expect(notOwned.status).toBe(409);
    expect(notOwned.body.error.code).toBe('not-owner');
    // An offset the member was not handed (one past the last, as a commit would name it): nothing is dead-lettered.
    const notHanded = await call(base, 'POST', '/v1/groups/pullers/members/m1/reject', { topic: 'jobs', partition: 0, offset: 2 });
    expect(notHanded.status).toBe(404);
    expect(notHanded.body.error.code).toBe('unknown-message');
    const nothingThere = await call(base, 'POST', '/v1/groups/pullers/members/m1/reject', { topic: 'jobs', partition: 0, offset: 99 });
    expect(nothingThere.status).toBe(404);
    expect(nothingThere.body.error.code).toBe('unknown-message');
    expect(await storedCount(base, 'jobs.DLQ')).toBe(0);

    // Two rejects of one message at once: one dead letter.
    const reject = () => call(base, 'POST', '/v1/groups/pullers/members/m1/reject', { topic: 'jobs', partition: 0, offset: 0 });
    const both = await Promise.all([reject(), reject()]);
    expect(both.map((answer) => answer.status)).toEqual([200, 200]);
    const rejected = both.find((answer) => answer.body.deadLetter !== null)!;
    expect(rejected.body).toEqual({ topic: 'jobs', partition: 0, offset: 0, deadLetter: { topic: 'jobs.DLQ', partition: expect.any(Number), offset: 0 } });
    expect(both.filter((answer) => answer.body.deadLetter === null)).toHaveLength(1);
    // Sent again (a retry): dead-lettered once.
    const resent = await call(base, 'POST', '/v1/groups/pullers/members/m1/reject', { topic: 'jobs', partition: 0, offset: 0 });
    expect(resent.body.deadLetter).toBeNull();
    const [dead] = await readTopic(server, 'jobs.DLQ');
    expect(dead!.messageId).toBe('bad');
    expect(await storedCount(base, 'jobs.DLQ')).toBe(1);

    // m1 leaves without committing: the next member starts at offset 0 again, and passes over the rejected one.
    expect((await call(base, 'DELETE', '/v1/groups/pullers/members/m1')).status).toBe(200);
    expect((await call(base, 'POST', '/v1/groups/pullers/members', { member: 'm2', topics: ['jobs'] })).status).toBe(200);
    const again = await call(base, 'POST', '/v1/groups/pullers/members/m2/pull', { maxWaitMs: 2000 });
    expect(again.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['good']);
    expect(await storedCount(base, 'jobs.DLQ')).toBe(1);
  });
});

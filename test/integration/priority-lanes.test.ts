import { describe, expect, it } from 'vitest';
import { canonical, RawStompClient } from '../helpers/clients.js';
import { call, describeGroup, httpBase, storedCount, topicOffsets } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

/** A topic of 2 key slots in 2 priority lanes: 4 partitions. */
const settings = { topics: { definitions: [{ name: 'jobs', partitions: 2, priorityLanes: 2 }] } };

/** Five low-priority messages, then five high-priority ones, all of one key. */
async function publishMixed(server: TestServer): Promise<void> {
  const producer = await RawStompClient.session(server.stompPort);
  for (let i = 0; i < 5; i++) producer.send('SEND', { destination: '/producer/publish/jobs', priority: 1, receipt: `low-${i}` }, canonical(`low-${i}`, 'k', i));
  for (let i = 0; i < 5; i++)
    producer.send('SEND', { destination: '/producer/publish/jobs', priority: 9, receipt: `high-${i}` }, canonical(`high-${i}`, 'k', i));
  for (let i = 0; i < 10; i++) await producer.next('RECEIPT');
  producer.close();
}

describe('priority lanes', () => {
  const servers = useServers();

  it('stores a key in the same slot of each lane, its priority picking the lane', async () => {
    const server = await servers.start(settings);
    await publishMixed(server);
    const partitions = (await topicOffsets(httpBase(server.httpPort), 'jobs'))!;
    expect(partitions).toHaveLength(4);
    // One slot of the low lane (partitions 0-1) and the same slot of the high lane (2-3) hold five each.
    const counts = partitions.map((p) => p.logEndOffset);
    const slot = counts[0] === 5 ? 0 : 1;
    expect(counts[slot]).toBe(5);
    expect(counts[slot + 2]).toBe(5);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(10);
  });

  it('pushes a group member the higher lane first, each lane in its order', async () => {
    const server = await servers.start(settings);
    await publishMixed(server);
    const consumer = await RawStompClient.session(server.stompPort);
    consumer.send('SUBSCRIBE', { id: 'g', destination: '/group/workers/jobs', ack: 'client-individual', 'prefetch-count': '1' });
    const order: string[] = [];
    for (let i = 0; i < 10; i++) {
      const message = await consumer.next('MESSAGE');
      order.push(message.headers['message-id']!);
      consumer.send('ACK', { id: message.headers.ack });
    }
    expect(order).toEqual([...Array.from({ length: 5 }, (_, i) => `high-${i}`), ...Array.from({ length: 5 }, (_, i) => `low-${i}`)]);
    consumer.close();
  });

  it('gives a pull the higher lane first', async () => {
    const server = await servers.start(settings);
    await publishMixed(server);
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/groups', { group: 'pullers', resetPolicy: 'earliest' })).status).toBe(200);
    expect((await call(base, 'POST', '/v1/groups/pullers/members', { member: 'm', topics: ['jobs'] })).status).toBe(200);
    const first = await call(base, 'POST', '/v1/groups/pullers/members/m/pull', { maxMessages: 5, maxWaitMs: 2000 });
    expect(first.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(Array.from({ length: 5 }, (_, i) => `high-${i}`));
  });

  it('gives each member of a group a key slot in every lane', async () => {
    const server = await servers.start(settings);
    const base = httpBase(server.httpPort);
    for (const member of ['a', 'b']) expect((await call(base, 'POST', '/v1/groups/workers/members', { member, topics: ['jobs'] })).status).toBe(200);
    const { members } = (await describeGroup(base, 'workers'))!;
    const owned = members.map((m) => m.assignment.map((tp) => tp.partition).sort());
    expect(owned.sort()).toEqual([
      [0, 2],
      [1, 3],
    ]);
  });

  it('refuses a priority that is not 0 to 9 with invalid-message, storing nothing; grows no laned topic', async () => {
    const server = await servers.start(settings);
    for (const [priority, partition] of [
      ['10', undefined],
      ['high', undefined],
      ['-1', undefined],
      ['high', '0'],
    ] as const) {
      const producer = await RawStompClient.session(server.stompPort);
      producer.send('SEND', { destination: '/producer/publish/jobs', priority, partition, receipt: 'r' }, canonical('bad', 'k', 'x'));
      const error = await producer.next('ERROR');
      expect(error.headers.code).toBe('invalid-message');
      expect(error.headers.message).toContain('priority');
      producer.close();
    }
    const base = httpBase(server.httpPort);
    expect(await storedCount(base, 'jobs')).toBe(0);
    const grow = await call(base, 'POST', '/v1/topics/jobs/partitions', { partitions: 8 });
    expect(grow.status).toBe(400);
    expect(grow.body.error.message).toContain('priority lanes');
  });
});

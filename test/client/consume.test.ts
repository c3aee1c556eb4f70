import { describe, expect, it, vi } from 'vitest';
import type { GroupMessage, Message, PulledRecord } from '../../src/client/index.js';
import { until, WAIT } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';
import { committedTotal, createTopic, dropConnection, watchedClient } from './client-helpers.js';

const servers = useServers();

describe('rill/client consuming', () => {
  it('a group member gets every message once, ACKs it, and after a lost connection comes back as itself, resuming at the committed offsets', async () => {
    const server = await servers.start();
    await createTopic(server, 'events', 3);
    const producer = await watchedClient(server);
    // Every partition gets messages, so that a member that lost any of them would miss some.
    const publish = (from: number, count: number) =>
      Promise.all(Array.from({ length: count }, (_, i) => producer.client.publish('events', from + i, { partition: (from + i) % 3 })));
    const first = await publish(0, 12);

    const consumer = await watchedClient(server);
    const received: GroupMessage[] = [];
    await consumer.client.subscribe({
      group: 'billing',
      topic: 'events',
      prefetch: 4,
      onMessage: (message) => {
        received.push(message);
        expect(message.ack()).toBe(true);
      },
    });
    await until('the first messages', () => received.length === 12);
    await vi.waitFor(async () => expect(await committedTotal(server, 'billing', 'events')).toBe(12), WAIT);

    // The broker sees the connection lost, not closed: the member stays until its session times out, holding its partitions.
    await dropConnection(server, consumer, 'network');
    const second = await publish(12, 6);
    await until('the messages published after the reconnect', () => received.length >= 18);
    await vi.waitFor(async () => expect(await committedTotal(server, 'billing', 'events')).toBe(18), WAIT);

    // Nothing ACKed was delivered again, and nothing was skipped.
    const ids = received.map((m) => m.messageID);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids)).toEqual(new Set([...first, ...second].map((r) => r.messageID)));
    expect(received.map((m) => m.value<number>()).sort((a, b) => a - b)).toEqual(Array.from({ length: 18 }, (_, i) => i));
    expect(received.every((m) => !m.redelivered && m.deliveryCount === 1)).toBe(true);
    expect(consumer.errors).toEqual([]);
    await Promise.all([producer.client.disconnect(), consumer.client.disconnect()]);
  });

  it('does not ACK a message of a dropped connection on the next one: the broker delivers it again and that copy is ACKed', async () => {
    const server = await servers.start();
    const producer = await watchedClient(server);
    await producer.client.publish('jobs', 'job-1');

    const consumer = await watchedClient(server);
    const received: GroupMessage[] = [];
    await consumer.client.subscribe({ group: 'workers', topic: 'jobs', onMessage: (message) => void received.push(message) });
    await until('the message', () => received.length === 1);

    await dropConnection(server, consumer);
    await until('the message again', () => received.length === 2);
    const [stale, again] = received as [GroupMessage, GroupMessage];
    expect(again.messageID).toBe(stale.messageID);
    // Its ACK id is the old connection's numbering: on the new one it would name the redelivered copy.
    expect(stale.ack()).toBe(false);
    expect(again.ack()).toBe(true);
    expect(again.ack()).toBe(false);
    await vi.waitFor(async () => expect(await committedTotal(server, 'workers', 'jobs')).toBe(1), WAIT);
    // An ACK the broker did not know would have been an ERROR, and the connection would have closed.
    await producer.client.publish('jobs', 'job-2');
    await until('the next message', () => received.length === 3);
    expect(consumer.disconnects).toHaveLength(1);
    expect(consumer.errors).toEqual([]);
    await Promise.all([producer.client.disconnect(), consumer.client.disconnect()]);
  });

  it('NACKs a message whose handler throws, reports it, and gets it again', async () => {
    const server = await servers.start();
    const watched = await watchedClient(server);
    await watched.client.publish('fragile', 'boom');
    const received: GroupMessage[] = [];
    await watched.client.subscribe({
      group: 'careful',
      topic: 'fragile',
      onMessage: async (message) => {
        received.push(message);
        if (received.length === 1) throw new Error('could not handle it');
        message.ack();
      },
    });
    await until('the message again', () => received.length === 2);
    expect(received[1]).toMatchObject({ messageID: received[0]!.messageID, redelivered: true, deliveryCount: 2 });
    expect(watched.errors).toMatchObject([{ code: 'handler-failed', message: expect.stringContaining('could not handle it') }]);
    await vi.waitFor(async () => expect(await committedTotal(server, 'careful', 'fragile')).toBe(1), WAIT);
    await watched.client.disconnect();
  });

  it('pulls records and commits them; the group resumes after the committed offsets', async () => {
    const server = await servers.start();
    await createTopic(server, 'tasks', 2);
    const { client } = await watchedClient(server);
    const published = await Promise.all(Array.from({ length: 6 }, (_, i) => client.publish('tasks', { task: i }, { key: `t${i}` })));

    const first = client.pullConsumer({ group: 'pullers', member: 'puller-1', topics: ['tasks'] });
    const pulled: PulledRecord[] = [];
    for (let round = 0; round < 20 && pulled.length < 6; round++) pulled.push(...(await first.pull({ maxMessages: 4, maxWaitMs: 500 })));
    expect(pulled.map((r) => r.messageID).sort()).toEqual(published.map((r) => r.messageID).sort());
    expect(pulled.map((r) => r.value<{ task: number }>().task).sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(pulled.every((r) => r.deliveryCount === 1 && r.generation === first.membership?.generation)).toBe(true);
    await first.commit();
    expect(await committedTotal(server, 'pullers', 'tasks')).toBe(6);
    await first.leave();

    const second = client.pullConsumer({ group: 'pullers', member: 'puller-2', topics: ['tasks'] });
    expect(await second.pull({ maxWaitMs: 100 })).toEqual([]);
    const next = await client.publish('tasks', { task: 6 });
    const after = await second.pull({ maxWaitMs: 5000 });
    expect(after.map((r) => r.messageID)).toEqual([next.messageID]);
    await second.commit([{ topic: 'tasks', partition: next.partition, offset: next.offset + 1 }]);
    expect(await committedTotal(server, 'pullers', 'tasks')).toBe(7);
    await client.disconnect();
  });

  it('a tail resumes after a reconnect right after the last message it handed on, in every partition it had read', async () => {
    const server = await servers.start();
    await createTopic(server, 'log', 2);
    const producer = await watchedClient(server);
    const publish = (values: number[]) => Promise.all(values.map((n) => producer.client.publish('log', n, { partition: n % 2 })));
    const watched = await watchedClient(server);
    const read: Message[] = [];
    // From `latest`: starting over as it started would miss what was stored while it was away.
    await watched.client.tail('log', { onMessage: (m) => void read.push(m) });
    await publish([0, 1, 2, 3]);
    await until('the first messages', () => read.length === 4);

    watched.offline = true;
    watched.sockets.at(-1)!.terminate();
    await until('the client to notice', () => watched.disconnects.length === 1);
    await publish([4, 5, 6, 7]);
    watched.offline = false;
    await until('the messages stored while it was away', () => read.length >= 8);
    await publish([8, 9]);
    await until('the messages stored after', () => read.length >= 10);
    expect(read.map((m) => m.value<number>()).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await Promise.all([producer.client.disconnect(), watched.client.disconnect()]);
  });
});

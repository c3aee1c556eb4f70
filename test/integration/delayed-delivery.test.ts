import { describe, expect, it } from 'vitest';
import { canonical, RawStompClient, readTopic } from '../helpers/clients.js';
import { call, httpBase, storedCount } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

const DELAY_MS = 1500;

/** Publishes `later` with a delay, then `now` with the same key; returns when the delayed one is due. */
async function publishDelayed(server: TestServer): Promise<number> {
  const producer = await RawStompClient.session(server.stompPort);
  const dueAt = Date.now() + DELAY_MS;
  producer.send('SEND', { destination: '/producer/publish/jobs', 'deliver-at': dueAt, receipt: 'later' }, canonical('later', 'k', 'delayed'));
  producer.send('SEND', { destination: '/producer/publish/jobs', receipt: 'now' }, canonical('now', 'k', 'at once'));
  await producer.receipt('later');
  await producer.receipt('now');
  producer.close();
  return dueAt;
}

describe('delayed delivery', () => {
  const servers = useServers();

  it('stores a delayed message at once, tails read it at once, and a group gets it at its time, the partition’s later messages after it', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'jobs', partitions: 1 }] } });
    const consumer = await RawStompClient.session(server.stompPort);
    consumer.send('SUBSCRIBE', { id: 'g', destination: '/group/workers/jobs', ack: 'client-individual', receipt: 'joined' });
    await consumer.receipt('joined');
    const dueAt = await publishDelayed(server);
    // Stored, and in the log for tails, at once.
    expect((await readTopic(server, 'jobs')).map((m) => m.messageId)).toEqual(['later', 'now']);
    expect(Date.now()).toBeLessThan(dueAt);
    expect(consumer.all('MESSAGE')).toEqual([]);

    const first = await consumer.next('MESSAGE');
    expect(Date.now()).toBeGreaterThanOrEqual(dueAt);
    expect(first.headers['message-id']).toBe('later');
    expect((await consumer.next('MESSAGE')).headers['message-id']).toBe('now');
    consumer.close();
  });

  it('makes a pull wait for a delayed message’s time (the long poll wakes then), the partition’s later messages after it', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'jobs', partitions: 1 }] } });
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/groups', { group: 'pullers', resetPolicy: 'earliest' })).status).toBe(200);
    expect((await call(base, 'POST', '/v1/groups/pullers/members', { member: 'm', topics: ['jobs'] })).status).toBe(200);
    const dueAt = await publishDelayed(server);
    expect((await call(base, 'POST', '/v1/groups/pullers/members/m/pull', {})).body.records).toEqual([]);
    const pulled = await call(base, 'POST', '/v1/groups/pullers/members/m/pull', { maxWaitMs: 10_000 });
    // Woken at the message's time, not at the end of the wait.
    expect(Date.now()).toBeGreaterThanOrEqual(dueAt);
    expect(Date.now()).toBeLessThan(dueAt + 3000);
    expect(pulled.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['later', 'now']);
  });

  it('refuses a malformed deliver-at or delay, one past limits.maxDelayMs, or one the message would expire before, storing nothing', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'jobs', partitions: 1 }] }, limits: { maxDelayMs: 60_000 } });
    const cases: Array<Record<string, string>> = [
      { 'deliver-at': 'tomorrow' },
      { delay: '-5' },
      { delay: '1.5' },
      { 'deliver-at': String(Date.now() + 10_000), delay: 'soon' },
      { delay: '61000' },
      { 'deliver-at': '9999999999999999' },
      { delay: '5000', ttl: '1000' },
    ];
    for (const headers of cases) {
      const producer = await RawStompClient.session(server.stompPort);
      producer.send('SEND', { destination: '/producer/publish/jobs', receipt: 'r', ...headers }, canonical('bad', 'k', 'x'));
      const error = await producer.next('ERROR');
      expect(error.headers.code).toBe('invalid-message');
      expect(error.headers.message).toMatch(/deliver-at|delay|expire/);
      producer.close();
    }
    expect(await storedCount(httpBase(server.httpPort), 'jobs')).toBe(0);
  });
});

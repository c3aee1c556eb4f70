import { beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/config/index.js';
import { hashPassword } from '../../src/security/index.js';
import { canonical, RawStompClient, WAIT } from '../helpers/clients.js';
import { storedMessages, useServers, type TestServer } from '../helpers/server.js';

/*
 * Per-principal quotas (auth.quotas): connections and subscriptions refused past their limit with
 * a retriable ERROR; a publish rate over its limit throttles the principal's connections by
 * reading more slowly, never by dropping, while other principals go on at full speed.
 */

describe('quotas', () => {
  const servers = useServers();
  let users: Array<{ name: string; passwordHash: string; roles: string[] }>;

  beforeAll(async () => {
    const passwordHash = await hashPassword('pw');
    users = ['slow', 'fast', 'few'].map((name) => ({ name, passwordHash, roles: name === 'fast' ? ['unlimited'] : [] }));
  }, 30_000);

  const start = (quotas: Record<string, unknown>) =>
    servers.start({ auth: { users, acls: [{ principal: '*', resource: 'topic:*', operations: ['all'] }], quotas } as never });

  const session = (server: TestServer, login: string) => RawStompClient.session(server.stompPort, { login, passcode: 'pw' });

  it('refuses a connection past the principal quota, retriably, and admits one again once another closes', async () => {
    const server = await start({ principals: [{ principal: 'user:few', connections: 2 }] });
    const first = await session(server, 'few');
    await session(server, 'few');
    const third = await RawStompClient.connect(server.stompPort);
    third.send('CONNECT', { 'accept-version': '1.2', host: 'rill', login: 'few', passcode: 'pw' });
    const error = await third.next('ERROR');
    expect(error.headers).toMatchObject({ code: 'quota-exceeded', retriable: 'true' });
    expect(error.headers.message).toBe('user "few" has 2 connections open, its quota (auth.quotas.connections)');
    // Another user is not held to it.
    await session(server, 'slow');
    // A reload applies to principals with connections open: a third is admitted at once.
    const raised = parseConfig({ auth: { users, quotas: { principals: [{ principal: 'user:few', connections: 3 }] } } }).auth;
    server.reload({ auth: raised, tls: undefined });
    await session(server, 'few');
    first.close();
    await vi.waitFor(async () => {
      const again = await RawStompClient.connect(server.stompPort);
      again.send('CONNECT', { 'accept-version': '1.2', host: 'rill', login: 'few', passcode: 'pw' });
      await vi.waitFor(() => expect(again.all('CONNECTED').length + again.all('ERROR').length).toBe(1), WAIT);
      expect(again.all('CONNECTED')).toHaveLength(1);
    }, WAIT);
  });

  it('refuses a subscription past the quota, and counts the ones closed', async () => {
    const server = await start({ subscriptions: 2 });
    const client = await session(server, 'few');
    client.send('SUBSCRIBE', { id: 'a', destination: '/topic/q', receipt: 'a' });
    client.send('SUBSCRIBE', { id: 'b', destination: '/topic/q', receipt: 'b' });
    await client.receipt('a');
    await client.receipt('b');
    client.send('UNSUBSCRIBE', { id: 'a', receipt: 'u' });
    await client.receipt('u');
    client.send('SUBSCRIBE', { id: 'c', destination: '/topic/q', receipt: 'c' });
    await client.receipt('c');
    client.send('SUBSCRIBE', { id: 'd', destination: '/topic/q', receipt: 'd' });
    const error = await client.next('ERROR');
    expect(error.headers).toMatchObject({ code: 'quota-exceeded', 'receipt-id': 'd' });
    expect(error.headers.message).toContain('2 subscriptions open');
  });

  it('throttles a principal over its publish rate by reading more slowly: every message stored once, others unaffected', async () => {
    // 25 messages a second, one second of burst: 200 messages of 1 KiB take some seven seconds at
    // least, time enough for the other principal's 200 even on a loaded machine. (Reads are charged
    // a chunk at a time, so the messages must span several reads.)
    const server = await start({ publishMessagesPerSecond: 25, principals: [{ principal: 'role:unlimited', publishMessagesPerSecond: -1 }] });
    const slow = await session(server, 'slow');
    const fast = await session(server, 'fast');
    const count = 200;
    const text = 'x'.repeat(1024);
    for (let i = 0; i < count; i++) slow.send('SEND', { destination: '/producer/publish/throttled', receipt: `s-${i}` }, canonical(`s-${i}`, `k${i}`, text));
    // The slow producer's connection stops being read for its quota...
    await vi.waitFor(() => {
      const view = server.gateway.connections().find((c) => c.readingPausedFor.includes('quota'));
      expect(view).toBeDefined();
    }, WAIT);
    // A connection the throttled principal makes now reads nothing until it is back under its rate
    // (asked while it is surely over it: its first connection was just paused).
    const another = await session(server, 'slow');
    expect(server.gateway.connections().filter((c) => c.readingPausedFor.includes('quota')).length).toBeGreaterThanOrEqual(2);
    another.close();
    // ...while the other principal publishes all of its messages meanwhile.
    for (let i = 0; i < count; i++) fast.send('SEND', { destination: '/producer/publish/free', receipt: `f-${i}` }, canonical(`f-${i}`, `k${i}`, text));
    await vi.waitFor(() => expect(fast.all('RECEIPT')).toHaveLength(count), WAIT);
    expect(slow.all('RECEIPT').length).toBeLessThan(count);
    // Nothing is dropped: the slow producer gets every RECEIPT in the end, and each message is stored once.
    await vi.waitFor(() => expect(slow.all('RECEIPT')).toHaveLength(count), WAIT);
    expect(slow.all('ERROR')).toHaveLength(0);
    expect(await storedMessages(server, 'throttled')).toBe(count);
    expect(await storedMessages(server, 'free')).toBe(count);
  });
});

import { describe, expect, it } from 'vitest';
import { partitionForKey } from '../../src/broker/index.js';
import { answers } from '../../src/coordinator/index.js';
import { canonical, connectStompJs, publishWithReceipt } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';

/** Every consumer-group answer, and an error, checked against the documented schemas. */
describe('consumer API answers match their schemas', () => {
  const servers = useServers();

  it('for every operation over HTTP', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'contract', partitions: 2 }] } });
    const client = await connectStompJs(server.wsUrl);
    await publishWithReceipt(client, '/producer/publish/contract', canonical('c1', 'k', 'v'));
    await client.deactivate();
    const base = httpBase(server.httpPort);
    const check = async (name: keyof typeof answers, method: string, path: string, body?: unknown): Promise<void> => {
      const answer = await call(base, method, path, body);
      const result = answers[name].safeParse(answer.body);
      expect(result.success, `${name}: ${JSON.stringify(answer.body)}`).toBe(true);
    };
    await check('create-group', 'POST', '/v1/groups', { group: 'c', assignor: 'sticky' });
    await check('join', 'POST', '/v1/groups/c/members', { member: 'm', topics: ['contract'] });
    await check('subscribe', 'POST', '/v1/groups/c/members/m/subscription', { topics: ['contract'] });
    await check('heartbeat', 'POST', '/v1/groups/c/members/m/heartbeat', {});
    await check('pull', 'POST', '/v1/groups/c/members/m/pull', { maxMessages: 10 });
    await check('reject', 'POST', '/v1/groups/c/members/m/reject', { topic: 'contract', partition: partitionForKey('k', 2), offset: 0 });
    await check('commit', 'POST', '/v1/groups/c/members/m/commit', { offsets: [{ topic: 'contract', partition: 0, offset: 0 }] });
    await check('seek', 'POST', '/v1/groups/c/members/m/seek', { topic: 'contract', partition: 0, target: { to: 'latest' } });
    await check('list-groups', 'GET', '/v1/groups');
    await check('describe-group', 'GET', '/v1/groups/c');
    await check('lag', 'GET', '/v1/groups/c/lag');
    await check('error', 'POST', '/v1/groups/c/offsets/reset', { target: { to: 'earliest' } });
    await check('leave', 'DELETE', '/v1/groups/c/members/m');
    await check('reset-offsets', 'POST', '/v1/groups/c/offsets/reset', { target: { to: 'earliest' } });
  });
});

describe('operator endpoints', () => {
  const servers = useServers();

  it('reports health and process stats', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    expect((await call(base, 'GET', '/health')).body).toEqual({ status: 'ok' });
    const stats = (await call(base, 'GET', '/v1/stats')).body;
    expect(stats.memory.rss).toBeGreaterThan(0);
    expect(stats.inflightBytes).toBe(0);
    expect((await call(base, 'GET', '/nothing/here')).status).toBe(404);
  });
});

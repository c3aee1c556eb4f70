import { describe, expect, it } from 'vitest';
import { RawStompClient } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';

/* The operator's HTTP endpoints: creating topics, and listing and closing connections. */

describe('admin API', () => {
  const servers = useServers();

  it('creates a topic with the partitions asked for, refuses one that exists or an invalid name', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    const created = await call(base, 'POST', '/v1/topics', { name: 'orders', partitions: 8 });
    expect(created).toMatchObject({ status: 201, body: { name: 'orders', partitions: 8, priorityLanes: 1, overrides: {} } });
    expect((await call(base, 'GET', '/v1/topics/orders')).body.partitions).toHaveLength(8);
    const again = await call(base, 'POST', '/v1/topics', { name: 'orders', partitions: 2 });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'name-taken', message: 'topic "orders" exists already' });
    expect(server.broker.topics.get('orders')!.partitions).toBe(8);
    const laned = await call(base, 'POST', '/v1/topics', { name: 'jobs', partitions: 2, priorityLanes: 3 });
    expect(laned.body).toMatchObject({ name: 'jobs', partitions: 6, priorityLanes: 3 });
    expect((await call(base, 'POST', '/v1/topics', { name: 'bad name' })).body.error.code).toBe('invalid-request');
    expect((await call(base, 'POST', '/v1/topics', { name: 'defaulted' })).body.partitions).toBe(4);
    const reserved = await call(base, 'POST', '/v1/topics', { name: '__consumer_offsets' });
    expect(reserved.status).toBe(400);
    expect(reserved.body.error.message).toContain('reserved for Rill');
    // A request without a name is the client's mistake (400), not a refusal of a topic named "undefined".
    expect((await call(base, 'POST', '/v1/topics', { partitions: 2 })).status).toBe(400);
  });

  it('lists the STOMP connections with what they do, and closes one with an ERROR that says an operator did', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    const client = await RawStompClient.session(server.stompPort);
    client.send('SUBSCRIBE', { id: 'watch', destination: '/topic/orders', receipt: 's' });
    await client.receipt('s');
    const listed = await call(base, 'GET', '/v1/connections');
    expect(listed.status).toBe(200);
    const [connection] = listed.body.connections;
    expect(connection).toMatchObject({ transport: 'tcp', state: 'connected', principal: 'anonymous', subscriptions: ['watch'] });
    expect(connection.bytesIn).toBeGreaterThan(0);
    expect(connection.bytesOut).toBeGreaterThan(0);
    expect(connection.remote).toMatch(/^127\.0\.0\.1:\d+$/);

    const closed = await call(base, 'DELETE', `/v1/connections/${connection.session}`);
    expect(closed.body).toEqual({ session: connection.session, closed: true });
    const error = await client.next('ERROR');
    expect(error.headers).toMatchObject({ code: 'closed-by-operator', message: 'closed by an operator', retriable: 'true' });
    await client.closedByServer();
    expect((await call(base, 'DELETE', `/v1/connections/${connection.session}`)).status).toBe(404);
  });

  it('serves the browser example at /examples as at /examples/, its modules by absolute paths', async () => {
    const server = await servers.start();
    for (const path of ['/examples', '/examples/']) {
      const page = await fetch(`${httpBase(server.httpPort)}${path}`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('"rill/client": "/ui/vendor/rill-client/index.js"');
    }
  });
});

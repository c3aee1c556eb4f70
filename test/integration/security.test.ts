import net from 'node:net';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig, type RillConfigInput } from '../../src/config/index.js';
import { pino } from 'pino';
import { hashPassword } from '../../src/security/index.js';
import { startServer } from '../../src/server/index.js';
import { canonical, connectStompJs, publishWithReceipt, RawStompClient, WAIT } from '../helpers/clients.js';
import { httpBase } from '../helpers/http.js';
import { storedMessages, useServers, type TestServer } from '../helpers/server.js';

/*
 * Security against a running broker, with real clients: who may connect (passwords, tokens), what
 * each principal may do (ACLs on STOMP and HTTP), internal topics, origins, reloads and the
 * failed-login throttle. Every refusal is checked with what it must not have done: nothing stored,
 * nothing delivered.
 */

const SECRET = 'a-test-hmac-secret-of-at-least-32-characters';
const PASSWORDS = { alice: 'alice-password', bob: 'bob-password', root: 'root-password' } as const;

let auth: NonNullable<RillConfigInput['auth']>;

beforeAll(async () => {
  auth = {
    users: [
      { name: 'alice', passwordHash: await hashPassword(PASSWORDS.alice), roles: ['producer'] },
      { name: 'bob', passwordHash: await hashPassword(PASSWORDS.bob), roles: ['consumer'] },
      { name: 'root', passwordHash: await hashPassword(PASSWORDS.root), roles: ['admin'] },
      { name: 'carol', passwordHash: await hashPassword('carol-password'), roles: [] },
    ],
    tokens: { secret: SECRET, audience: 'rill', issuer: 'https://issuer.test' },
    acls: [
      { principal: 'role:producer', resource: 'topic:orders.*', operations: ['produce', 'create', 'describe'] },
      { principal: 'role:consumer', resource: 'topic:orders.*', operations: ['consume', 'describe'] },
      { principal: 'role:consumer', resource: 'group:billing', operations: ['join', 'describe'] },
      { principal: 'role:admin', resource: 'topic:*', operations: ['all'] },
      { principal: 'role:admin', resource: 'group:*', operations: ['all'] },
      { principal: 'role:admin', resource: 'cluster', operations: ['all'] },
      { effect: 'deny', principal: 'user:alice', resource: 'topic:orders.secret', operations: ['all'] },
    ],
  };
}, 30_000);

const basic = (user: keyof typeof PASSWORDS): string => `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}`;

function token(claims: Record<string, unknown>, options: { expiresIn?: string | number; audience?: string; secret?: string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setIssuer('https://issuer.test')
    .setAudience(options.audience ?? 'rill')
    .setExpirationTime(options.expiresIn ?? '1h')
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
}

async function request(server: TestServer, method: string, path: string, options: { authorization?: string; body?: unknown; origin?: string } = {}) {
  const headers: Record<string, string> = {};
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.origin !== undefined) headers.origin = options.origin;
  const response = await fetch(`${httpBase(server.httpPort)}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field
  return { status: response.status, headers: response.headers, body: (text.length > 0 ? JSON.parse(text) : null) as any };
}

/** A raw TCP client's CONNECT, answered by CONNECTED or ERROR. */
async function rawConnect(server: TestServer, headers: Record<string, string>, then?: (client: RawStompClient) => void): Promise<RawStompClient> {
  const client = await RawStompClient.connect(server.stompPort);
  client.send('CONNECT', { 'accept-version': '1.2', host: 'rill', ...headers });
  then?.(client);
  await vi.waitFor(() => expect(client.all('CONNECTED').length + client.all('ERROR').length).toBeGreaterThan(0), WAIT);
  return client;
}

describe('security', () => {
  const servers = useServers();
  const start = (extra: RillConfigInput = {}) => servers.start({ ...extra, auth: { ...auth, ...extra.auth } } as never);

  describe('who is connecting', () => {
    it('refuses a CONNECT without credentials or with a wrong password, and handles nothing sent after it', async () => {
      const server = await start();
      for (const headers of [{}, { login: 'alice', passcode: 'wrong' }, { login: 'nobody', passcode: 'x' }] as Array<Record<string, string>>) {
        // A SEND pipelined right behind the CONNECT must not be stored while the credentials are checked.
        const client = await rawConnect(server, headers, (c) =>
          c.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'sneaky' }, canonical('m-1', 'k', 'x')),
        );
        const error = await client.next('ERROR');
        expect(error.headers.code).toBe('unauthenticated');
        // Never why beyond "bad credentials": no telling an unknown user from a wrong password.
        if (Object.keys(headers).length > 0) expect(error.headers.message).toBe('bad credentials');
        else expect(error.headers.message).toMatch(/authentication required/);
        await client.closedByServer();
        expect(client.all('CONNECTED')).toHaveLength(0);
        expect(client.all('RECEIPT')).toHaveLength(0);
      }
      expect(await storedMessages(server, 'orders.eu')).toBe(0);
      expect(server.broker.topics.get('orders.eu')).toBeUndefined();
    });

    it('connects with a password, and the SENDs pipelined behind the CONNECT are handled once it is checked', async () => {
      const server = await start();
      const client = await rawConnect(server, { login: 'alice', passcode: PASSWORDS.alice }, (c) => {
        for (let i = 0; i < 3; i++) c.send('SEND', { destination: '/producer/publish/orders.eu', receipt: `r-${i}` }, canonical(`m-${i}`, 'k', i));
      });
      expect(client.all('ERROR')).toHaveLength(0);
      for (let i = 0; i < 3; i++) await client.receipt(`r-${i}`);
      expect(await storedMessages(server, 'orders.eu')).toBe(3);
      client.close();
    });

    it('connects with a JSON Web Token as the passcode, and refuses expired, wrongly signed and wrong-audience tokens', async () => {
      const server = await start();
      const good = await connectStompJs(server.wsUrl, { passcode: await token({ sub: 'tok-user', roles: ['producer'] }) });
      await publishWithReceipt(good, '/producer/publish/orders.tok', canonical('t-1', 'k', 'x'));
      expect(await storedMessages(server, 'orders.tok')).toBe(1);
      await good.deactivate();

      const refused = [
        [await token({ sub: 'tok-user', roles: ['producer'] }, { expiresIn: Math.floor(Date.now() / 1000) - 60 }), 'token expired'],
        [await token({ sub: 'tok-user', roles: ['producer'] }, { secret: 'another-secret-that-is-also-32-characters' }), 'token signature is not valid'],
        [await token({ sub: 'tok-user', roles: ['producer'] }, { audience: 'someone-else' }), 'token claim "aud" is not accepted'],
      ] as const;
      for (const [jwt, reason] of refused) {
        const client = await rawConnect(server, { passcode: jwt }, (c) =>
          c.send('SEND', { destination: '/producer/publish/orders.tok', receipt: 'r' }, canonical('t-2', 'k', 'x')),
        );
        const error = await client.next('ERROR');
        expect(error.headers.code).toBe('unauthenticated');
        expect(error.headers.message).toContain(reason);
        await client.closedByServer();
      }
      expect(await storedMessages(server, 'orders.tok')).toBe(1);
    });

    it('verifies tokens against public keys from a JWKS file and from a JWKS URL, refusing a key it does not list', async () => {
      const { publicKey, privateKey } = await generateKeyPair('RS256');
      const stranger = await generateKeyPair('RS256');
      const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] };
      const jwksFile = path.join(servers.tempDir(), 'jwks.json');
      fs.writeFileSync(jwksFile, JSON.stringify(jwks));
      const jwksServer = http.createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)));
      await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
      const signed = (key: Parameters<SignJWT['sign']>[0]) =>
        new SignJWT({ sub: 'rsa-user', roles: ['producer'] }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setExpirationTime('1h').sign(key);
      try {
        const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as net.AddressInfo).port}/jwks.json`;
        for (const tokens of [{ jwksFile }, { jwksUrl }]) {
          const server = await start({ auth: { tokens } });
          const good = await rawConnect(server, { passcode: await signed(privateKey) });
          expect(good.all('CONNECTED')).toHaveLength(1);
          good.send('SEND', { destination: '/producer/publish/orders.rsa', receipt: 'r' }, canonical(`rsa-${Object.keys(tokens)[0]}`, 'k', 'x'));
          await good.receipt('r');
          good.close();
          const forged = await rawConnect(server, { passcode: await signed(stranger.privateKey) });
          expect((await forged.next('ERROR')).headers.message).toBe('token signature is not valid');
          // An HMAC token is not accepted where public keys are configured.
          const hmac = await rawConnect(server, { passcode: await token({ sub: 'rsa-user' }) });
          expect((await hmac.next('ERROR')).headers.code).toBe('unauthenticated');
          expect(await storedMessages(server, 'orders.rsa')).toBe(1);
        }
      } finally {
        jwksServer.close();
      }
    });

    it('ends a token connection with an ERROR when its token expires, unless a fresh one for the same user came first', async () => {
      const server = await start();
      const soon = () => token({ sub: 'tok-user', roles: ['producer'] }, { expiresIn: Math.floor(Date.now() / 1000) + 2 });
      const expiring = await rawConnect(server, { passcode: await soon() });
      const refreshed = await rawConnect(server, { passcode: await soon() });
      expect(expiring.all('CONNECTED')).toHaveLength(1);
      refreshed.send('SEND', { destination: '/session/token', receipt: 'fresh' }, await token({ sub: 'tok-user', roles: ['producer'] }));
      await refreshed.receipt('fresh');

      const error = await expiring.next('ERROR', 10_000);
      expect(error.headers.code).toBe('unauthenticated');
      expect(error.headers.message).toMatch(/token expired at .*\/session\/token/);
      await expiring.closedByServer();
      // The refreshed connection outlives the first token, and still publishes.
      refreshed.send('SEND', { destination: '/producer/publish/orders.tok', receipt: 'after' }, canonical('t-3', 'k', 'x'));
      await refreshed.receipt('after');
      expect(refreshed.closed).toBe(false);
      expect(await storedMessages(server, 'orders.tok')).toBe(1);

      // A fresh token must name the same user.
      refreshed.send('SEND', { destination: '/session/token', receipt: 'swap' }, await token({ sub: 'someone-else', roles: ['admin'] }));
      const swap = await refreshed.next('ERROR');
      expect(swap.headers.code).toBe('forbidden');
      expect(swap.headers.message).toContain('tok-user');
      await refreshed.closedByServer();
    });

    it('throttles failed logins per address: past the limit refused at once, while a client from another address is served', async () => {
      const server = await start({ auth: { failedLoginsPerMinute: 5 } });
      const fromOtherAddress = async (headers: Record<string, string>) => {
        const socket = net.connect({ port: server.stompPort, host: '127.0.0.1', localAddress: '127.0.0.2' });
        const frames: string[] = [];
        socket.on('data', (chunk) => frames.push(chunk.toString('utf8')));
        socket.on('error', () => {});
        await new Promise((resolve) => socket.once('connect', resolve));
        socket.write(`CONNECT\naccept-version:1.2\nhost:rill\nlogin:${headers.login}\npasscode:${headers.passcode}\n\n\0`);
        await vi.waitFor(() => expect(frames.join('')).toMatch(/^(ERROR|CONNECTED)/), WAIT);
        socket.destroy();
        return frames.join('');
      };
      const answers = await Promise.all(Array.from({ length: 20 }, () => fromOtherAddress({ login: 'alice', passcode: 'guess' })));
      const throttled = answers.filter((a) => a.includes('code:rate-limited')).length;
      expect(answers.every((a) => a.startsWith('ERROR'))).toBe(true);
      // Each login being checked holds one of the address's five: the other fifteen, though sent at
      // the same time, are refused before any hashing (one more may pass if the minute's refill comes in).
      expect(throttled).toBeGreaterThanOrEqual(14);
      // Even the right password is refused from that address for now...
      expect(await fromOtherAddress({ login: 'alice', passcode: PASSWORDS.alice })).toMatch(/code:rate-limited/);
      // ...while a client from another address logs in.
      const good = await rawConnect(server, { login: 'alice', passcode: PASSWORDS.alice });
      expect(good.all('CONNECTED')).toHaveLength(1);
      good.close();
    });
  });

  describe('what each principal may do, over STOMP', () => {
    it('lets a producer publish where its rules allow, and refuses elsewhere with a FAILED acknowledgment, storing nothing', async () => {
      const server = await start();
      const alice = await RawStompClient.session(server.stompPort, { login: 'alice', passcode: PASSWORDS.alice });
      alice.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders.eu', receipt: 'sub' });
      await alice.receipt('sub');
      alice.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'ok' }, canonical('ok-1', 'k', 'x'));
      await alice.receipt('ok');
      // A denied topic (the deny rule beats the role's allow) with an acknowledgment subscription: FAILED, and the connection goes on.
      alice.send('SUBSCRIBE', { id: 'acks-secret', destination: '/topic/acknowledgment/orders.secret', receipt: 'sub2' });
      const subscribeError = await alice.next('ERROR');
      expect(subscribeError.headers.code).toBe('forbidden');
      expect(subscribeError.headers.message).toBe('user "alice" may not produce topic "orders.secret"');
      await alice.closedByServer();

      const again = await RawStompClient.session(server.stompPort, { login: 'alice', passcode: PASSWORDS.alice });
      again.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders.eu', receipt: 'sub' });
      await again.receipt('sub');
      again.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'ok2' }, canonical('ok-2', 'k', 'x'));
      await again.receipt('ok2');
      expect(await storedMessages(server, 'orders.eu')).toBe(2);
      // No acknowledgment subscription for payments: STOMP's rule, an ERROR naming the operation and the resource.
      again.send('SEND', { destination: '/producer/publish/payments', receipt: 'denied' }, canonical('p-1', 'k', 'x'));
      const error = await again.next('ERROR');
      expect(error.headers.code).toBe('forbidden');
      expect(error.headers.message).toContain('user "alice" may not produce topic "payments"');
      await again.closedByServer();
      expect(server.broker.topics.get('payments')).toBeUndefined();
      expect(await storedMessages(server, 'orders.eu')).toBe(2);
    });

    it('answers a refused SEND on an acknowledged topic with a FAILED acknowledgment and keeps the connection', async () => {
      // The producer may publish to orders.eu but not create it: once it exists, the same producer publishes.
      const server = await start({
        auth: { acls: [{ principal: 'user:alice', resource: 'topic:orders.*', operations: ['produce'] }, ...(auth.acls ?? []).slice(3)] },
      });
      const alice = await RawStompClient.session(server.stompPort, { login: 'alice', passcode: PASSWORDS.alice });
      alice.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders.new', receipt: 'sub' });
      await alice.receipt('sub');
      alice.send('SEND', { destination: '/producer/publish/orders.new', receipt: 'r1' }, canonical('n-1', 'k', 'x'));
      await alice.receipt('r1');
      const failed = await alice.next('MESSAGE');
      expect(JSON.parse(failed.body.toString())).toMatchObject({ messageID: 'n-1', status: 'FAILED', code: 'forbidden' });
      expect(server.broker.topics.get('orders.new')).toBeUndefined();
      // An admin creates it; the producer's next SEND is stored.
      const root = await RawStompClient.session(server.stompPort, { login: 'root', passcode: PASSWORDS.root });
      root.send('SEND', { destination: '/producer/publish/orders.new', receipt: 'c' }, canonical('n-0', 'k', 'x'));
      await root.receipt('c');
      alice.send('SEND', { destination: '/producer/publish/orders.new', receipt: 'r2' }, canonical('n-2', 'k', 'x'));
      await alice.receipt('r2');
      const acked = await alice.next('MESSAGE');
      expect(JSON.parse(acked.body.toString())).toMatchObject({ messageID: 'n-2', status: 'ACK' });
      expect(await storedMessages(server, 'orders.new')).toBe(2);
      alice.close();
      root.close();
    });

    it('lets a consumer join its group and tail its topics, and refuses other groups and topics, delivering nothing', async () => {
      const server = await start();
      const root = await RawStompClient.session(server.stompPort, { login: 'root', passcode: PASSWORDS.root });
      for (const topic of ['orders.eu', 'payments']) {
        root.send('SEND', { destination: `/producer/publish/${topic}`, receipt: topic }, canonical(`${topic}-1`, 'k', 'x'));
        await root.receipt(topic);
      }
      const bob = await RawStompClient.session(server.stompPort, { login: 'bob', passcode: PASSWORDS.bob });
      bob.send('SUBSCRIBE', { id: 'g', destination: '/group/billing/orders.eu', receipt: 'g' });
      await bob.receipt('g');
      const message = await bob.next('MESSAGE');
      expect(message.headers['message-id']).toBe('orders.eu-1');
      bob.close();

      for (const destination of ['/group/other/orders.eu', '/group/billing/payments', '/topic/payments']) {
        const denied = await RawStompClient.session(server.stompPort, { login: 'bob', passcode: PASSWORDS.bob });
        denied.send('SUBSCRIBE', { id: 's', destination, from: 'earliest', receipt: 's' });
        const error = await denied.next('ERROR');
        expect(error.headers.code).toBe('forbidden');
        expect(error.headers.message).toMatch(/user "bob" may not (join group "other"|consume topic "payments")/);
        await denied.closedByServer();
        expect(denied.all('MESSAGE')).toHaveLength(0);
      }
      // The refused join left no member behind.
      expect(server.coordinator.listGroups().map((g) => g.name)).not.toContain('other');
      root.close();
    });

    it('keeps internal topics out of reach, even of an administrator', async () => {
      const server = await start();
      const root = await RawStompClient.session(server.stompPort, { login: 'root', passcode: PASSWORDS.root });
      root.send('SUBSCRIBE', { id: 'x', destination: '/topic/__consumer_offsets', from: 'earliest', receipt: 'x' });
      const error = await root.next('ERROR');
      expect(error.headers.code).toMatch(/forbidden|invalid-destination/);
      await root.closedByServer();
      expect(root.all('MESSAGE')).toHaveLength(0);
    });

    it('answers a STOMP request the principal may not make with a 403 reply, and goes on', async () => {
      const server = await start();
      const bob = await RawStompClient.session(server.stompPort, { login: 'bob', passcode: PASSWORDS.bob });
      bob.send('SUBSCRIBE', { id: 'r', destination: '/user/replies', receipt: 'r' });
      await bob.receipt('r');
      bob.send('SEND', { destination: '/request/reset-offsets', 'correlation-id': 'c1' }, JSON.stringify({ group: 'billing', target: { to: 'latest' } }));
      const reply = await bob.next('MESSAGE');
      expect(reply.headers.status).toBe('403');
      expect(JSON.parse(reply.body.toString()).error).toMatchObject({ code: 'forbidden', message: 'user "bob" may not reset group "billing"' });
      bob.send('SEND', { destination: '/request/describe-group', 'correlation-id': 'c2' }, JSON.stringify({ group: 'billing' }));
      expect((await bob.next('MESSAGE')).headers.status).toMatch(/200|404/);
      expect(bob.closed).toBe(false);
      bob.close();
    });
  });

  describe('what each principal may do, over HTTP', () => {
    it('asks for credentials (401 with WWW-Authenticate) and refuses bad ones', async () => {
      const server = await start();
      const none = await request(server, 'GET', '/v1/topics');
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm="rill"/);
      expect(none.body.error.code).toBe('unauthenticated');
      const wrong = await request(server, 'GET', '/v1/topics', { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.message).toBe('bad credentials');
      // Health stays public, for load balancers.
      expect((await request(server, 'GET', '/health')).status).toBe(200);
      const bearer = await request(server, 'GET', '/v1/topics', { authorization: `Bearer ${await token({ sub: 'svc', roles: ['admin'] })}` });
      expect(bearer.status).toBe(200);
    });

    it('checks each endpoint against the rules: the attacks of the issue are refused and change nothing', async () => {
      const server = await start();
      const root = await RawStompClient.session(server.stompPort, { login: 'root', passcode: PASSWORDS.root });
      root.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'a' }, canonical('v-1', 'k', 'x'));
      await root.receipt('a');
      root.close();
      const bob = basic('bob');
      // A consumer joins its own group...
      const joined = await request(server, 'POST', '/v1/groups/billing/members', { authorization: bob, body: { member: 'bob-1', topics: ['orders.eu'] } });
      expect(joined.status).toBe(200);
      // ...but may not reset it, grow a topic, or act in another group.
      const reset = await request(server, 'POST', '/v1/groups/billing/offsets/reset', { authorization: bob, body: { target: { to: 'latest' } } });
      expect(reset.status).toBe(403);
      expect(reset.body.error).toMatchObject({ code: 'forbidden', message: 'user "bob" may not reset group "billing"' });
      const grow = await request(server, 'POST', '/v1/topics/orders.eu/partitions', { authorization: bob, body: { partitions: 64 } });
      expect(grow.status).toBe(403);
      expect(server.broker.topics.get('orders.eu')!.partitions).toBe(4);
      const victim = await request(server, 'POST', '/v1/groups/victim/members', { authorization: bob, body: { member: 'x', topics: ['orders.eu'] } });
      expect(victim.status).toBe(403);
      expect(server.coordinator.listGroups().map((g) => g.name)).not.toContain('victim');
      // Another principal cannot evict bob's member: alice has no right in group billing.
      const evict = await request(server, 'DELETE', '/v1/groups/billing/members/bob-1', { authorization: basic('alice') });
      expect(evict.status).toBe(403);
      expect(server.coordinator.group('billing').members.has('bob-1')).toBe(true);
      // The seed's endpoints too.
      const seed = await request(server, 'POST', '/consumer/register-consumer', {
        authorization: basic('alice'),
        body: { consumer_group_name: 'billing', consumer_name: 'alice-1' },
      });
      expect(seed.status).toBe(403);
      // Lists show only what the caller may describe.
      expect((await request(server, 'GET', '/v1/groups', { authorization: basic('alice') })).body.groups).toEqual([]);
      expect((await request(server, 'GET', '/v1/groups', { authorization: bob })).body.groups.map((g: { group: string }) => g.group)).toEqual(['billing']);
      const pulled = await request(server, 'POST', '/v1/groups/billing/members/bob-1/pull', { authorization: bob, body: { maxMessages: 10 } });
      expect(pulled.status).toBe(200);
      expect(pulled.body.records.map((r: { messageId: string }) => r.messageId)).toEqual(['v-1']);
      // A pull consumer's transaction publishes: each topic it publishes to needs produce, and nothing is stored without it.
      const transaction = await request(server, 'POST', '/v1/groups/billing/members/bob-1/transaction', {
        authorization: bob,
        body: { publishes: [{ topic: 'orders.eu', body: canonical('t-out', 'k', 'x') }] },
      });
      expect(transaction.status).toBe(403);
      expect(transaction.body.error.message).toContain('user "bob" may not produce topic "orders.eu"');
      expect(await storedMessages(server, 'orders.eu')).toBe(1);
      // Naming a topic that does not exist would create it: consume alone is not enough.
      const creating = await request(server, 'POST', '/v1/groups/billing/members/bob-1/subscription', { authorization: bob, body: { topics: ['orders.new'] } });
      expect(creating.status).toBe(403);
      expect(creating.body.error.message).toBe('user "bob" may not create topic "orders.new"');
      expect(server.broker.topics.get('orders.new')).toBeUndefined();
      // Settings for a group that exists change it: join alone is not enough.
      const settings = await request(server, 'POST', '/v1/groups', { authorization: bob, body: { group: 'billing', sessionTimeoutMs: 100 } });
      expect(settings.status).toBe(403);
      expect(settings.body.error.message).toBe('user "bob" may not alter group "billing"');
      expect(server.coordinator.group('billing').settings.sessionTimeoutMs).not.toBe(100);
    });

    it('serves internal topics to no client but an administrator describing them', async () => {
      const server = await start();
      // Cluster mode keeps committed offsets in a table, not in this topic: made here, so that there is an internal topic to describe.
      server.broker.topics.internal('__consumer_offsets', 1);
      expect((await request(server, 'GET', '/v1/topics/__consumer_offsets', { authorization: basic('bob') })).status).toBe(403);
      expect((await request(server, 'GET', '/v1/topics/__consumer_offsets', { authorization: basic('root') })).status).toBe(200);
      // Joining with an internal topic would pull every group's offsets: refused, even to an administrator.
      const join = await request(server, 'POST', '/v1/groups/spy/members', {
        authorization: basic('root'),
        body: { member: 'spy-1', topics: ['__consumer_offsets'] },
      });
      expect(join.status).toBe(403);
      expect(join.body.error.message).toBe('user "root" may not consume topic "__consumer_offsets"');
      expect(server.coordinator.groupOfMember('spy-1')).toBeUndefined();
    });
  });

  describe('the audit log', () => {
    it('has one structured line per failed login, per refusal (once per connection and resource), and per administrative operation', async () => {
      const lines: Array<Record<string, unknown>> = [];
      const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
      const config = parseConfig({
        server: { host: '127.0.0.1', httpPort: 0, stompPort: 0 },
        storage: { dataDir: servers.tempDir() },
        brokers: { workers: 1 },
        auth,
      });
      const server = await startServer(config, logger);
      try {
        const audit = () => lines.filter((line) => line.component === 'audit');
        const wrong = await rawConnect(server as TestServer, { login: 'alice', passcode: 'wrong' });
        await wrong.closedByServer();
        const alice = await RawStompClient.session(server.stompPort, { login: 'alice', passcode: PASSWORDS.alice });
        alice.send('SUBSCRIBE', { id: 'a', destination: '/topic/acknowledgment/payments', receipt: 'a' });
        await alice.next('ERROR');
        await request(server as TestServer, 'POST', '/v1/groups', { authorization: basic('root'), body: { group: 'billing' } });
        const reset = await request(server as TestServer, 'POST', '/v1/groups/billing/offsets/reset', {
          authorization: basic('root'),
          body: { target: { to: 'earliest' } },
        });
        expect(reset.status).toBe(200);
        await vi.waitFor(() => expect(audit()).toHaveLength(3), WAIT);
        expect(audit()[0]).toMatchObject({
          msg: 'authentication failed',
          login: 'alice',
          reason: 'wrong user or password',
          remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        });
        expect(audit()[1]).toMatchObject({ msg: 'access denied', principal: 'alice', operation: 'produce', resource: 'topic "payments"' });
        expect(audit()[2]).toMatchObject({ msg: 'administrative operation', principal: 'root', operations: ['reset group "billing"'] });
      } finally {
        await server.close();
      }
    });
  });

  describe('origins', () => {
    const upgrade = (server: TestServer, origin?: string, host?: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(server.wsUrl, ['v12.stomp'], {
          ...(origin === undefined ? {} : { origin }),
          ...(host === undefined ? {} : { headers: { host } }),
        });
        socket.on('open', () => {
          socket.close();
          resolve(101);
        });
        socket.on('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        socket.on('error', () => {});
      });

    it('refuses WebSockets and HTTP requests from pages of foreign origins, and allows the listed ones with CORS', async () => {
      const server = await start({ server: { allowedOrigins: ['https://app.example.com'] } });
      expect(await upgrade(server, 'http://evil.example')).toBe(403);
      expect(await upgrade(server)).toBe(101);
      expect(await upgrade(server, `http://127.0.0.1:${server.httpPort}`)).toBe(101);
      expect(await upgrade(server, 'https://app.example.com')).toBe(101);
      // DNS rebinding: a page of a domain pointed at the broker's address names that domain in both Origin and Host.
      expect(await upgrade(server, `http://rebound.example:${server.httpPort}`, `rebound.example:${server.httpPort}`)).toBe(403);

      const evil = await request(server, 'GET', '/v1/topics', { authorization: basic('root'), origin: 'http://evil.example' });
      expect(evil.status).toBe(403);
      expect(evil.headers.get('access-control-allow-origin')).toBeNull();
      const app = await request(server, 'GET', '/v1/topics', { authorization: basic('root'), origin: 'https://app.example.com' });
      expect(app.status).toBe(200);
      expect(app.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      const preflight = await fetch(`${httpBase(server.httpPort)}/v1/topics`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com' } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
    });
  });

  describe('reloading users and rules', () => {
    it('takes away at once what a connection may no longer do, and ends connections of removed users', async () => {
      const server = await start();
      const root = await RawStompClient.session(server.stompPort, { login: 'root', passcode: PASSWORDS.root });
      root.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'created' }, canonical('r-0', 'k', 'x'));
      await root.receipt('created');
      const bob = await RawStompClient.session(server.stompPort, { login: 'bob', passcode: PASSWORDS.bob });
      bob.send('SUBSCRIBE', { id: 'g', destination: '/group/billing/orders.eu', receipt: 'g' });
      await bob.receipt('g');
      const alice = await RawStompClient.session(server.stompPort, { login: 'alice', passcode: PASSWORDS.alice });

      const carol = await RawStompClient.session(server.stompPort, { login: 'carol', passcode: 'carol-password' });
      // The consumer role loses the group; alice is removed; carol's password is changed; root keeps everything.
      const acls = (auth.acls ?? []).filter((rule) => rule.resource !== 'group:billing');
      const users = [
        ...(auth.users ?? []).filter((user) => user.name !== 'alice' && user.name !== 'carol'),
        { name: 'carol', passwordHash: await hashPassword('carol-new-password') },
      ];
      server.reload({ auth: parseAuth({ ...auth, users, acls }), tls: undefined });

      const revoked = await bob.next('ERROR');
      expect(revoked.headers.code).toBe('forbidden');
      expect(revoked.headers.message).toContain('access revoked: user "bob" may not join group "billing"');
      const removed = await alice.next('ERROR');
      expect(removed.headers.code).toBe('unauthenticated');
      expect((await carol.next('ERROR')).headers.message).toBe('user "carol" may no longer connect');
      await Promise.all([bob.closedByServer(), alice.closedByServer(), carol.closedByServer()]);
      root.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'still' }, canonical('r-1', 'k', 'x'));
      await root.receipt('still');
      expect(root.closed).toBe(false);
      root.close();
      // The removed user can no longer connect.
      const again = await rawConnect(server, { login: 'alice', passcode: PASSWORDS.alice });
      expect((await again.next('ERROR')).headers.message).toBe('bad credentials');
    });

    it('refuses the next SEND of a producer whose right to the topic was removed, though it published there a moment before', async () => {
      const server = await start();
      const alice = await RawStompClient.session(server.stompPort, { login: 'alice', passcode: PASSWORDS.alice });
      for (const receipt of ['one', 'two']) {
        alice.send('SEND', { destination: '/producer/publish/orders.eu', receipt }, canonical(`a-${receipt}`, 'k', 'x'));
        await alice.receipt(receipt);
      }
      server.reload({ auth: parseAuth({ ...auth, acls: (auth.acls ?? []).filter((rule) => rule.principal !== 'role:producer') }), tls: undefined });
      alice.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'three' }, canonical('a-three', 'k', 'x'));
      const error = await alice.next('ERROR');
      expect(error.headers.message).toContain('user "alice" may not produce topic "orders.eu"');
      expect(await storedMessages(server, 'orders.eu')).toBe(2);
    });

    it('ends connections made with tokens whose keys were replaced (a rotation after a leak), and keeps the others', async () => {
      const server = await start();
      const byToken = await rawConnect(server, { passcode: await token({ sub: 'svc', roles: ['producer'] }) });
      const byPassword = await rawConnect(server, { login: 'alice', passcode: PASSWORDS.alice });
      // A reload that leaves the token settings as they were keeps token connections.
      server.reload({ auth: parseAuth(auth), tls: undefined });
      byToken.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'kept' }, canonical('k-1', 'k', 'x'));
      await byToken.receipt('kept');
      server.reload({ auth: parseAuth({ ...auth, tokens: { secret: 'a-brand-new-secret-after-the-old-one-leaked', audience: 'rill' } }), tls: undefined });
      expect((await byToken.next('ERROR')).headers.message).toBe('user "svc" may no longer connect');
      await byToken.closedByServer();
      byPassword.send('SEND', { destination: '/producer/publish/orders.eu', receipt: 'still' }, canonical('k-2', 'k', 'x'));
      await byPassword.receipt('still');
      byPassword.close();
    });

    it('refuses a reload that would leave a broker other machines reach without users, and changes nothing', async () => {
      const server = await start({ server: { host: '0.0.0.0' } });
      expect(() => server.reload({ auth: parseAuth({}), tls: undefined })).toThrow(
        /listens on 0.0.0.0, which other machines reach, and the reloaded config has no users: nothing was reloaded/,
      );
      const anonymous = await rawConnect(server, {});
      expect((await anonymous.next('ERROR')).headers.code).toBe('unauthenticated');
    });
  });
});

/** The auth section as the server checks it at start-up. */
function parseAuth(input: NonNullable<RillConfigInput['auth']>) {
  return parseConfig({ auth: input }).auth;
}

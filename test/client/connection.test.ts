import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { connect, RillClient, RillError } from '../../src/client/index.js';
import { storedMessages, useServers } from '../helpers/server.js';
import { watchedClient } from './client-helpers.js';

const SECRET = 'a-test-hmac-secret-of-at-least-32-characters';

const servers = useServers();

function token(subject: string, expiresIn: string | number = '1h', roles = ['admin']): Promise<string> {
  return new SignJWT({ sub: subject, roles })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setAudience('rill')
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(SECRET));
}

const tokenAuth = {
  auth: {
    tokens: { secret: SECRET, audience: 'rill' },
    acls: [
      { principal: 'role:admin', resource: 'topic:*', operations: ['all' as const] },
      { principal: 'role:admin', resource: 'group:*', operations: ['all' as const] },
    ],
  },
};

describe('rill/client connections', () => {
  it('fails connect() with the refusal when the broker turns the credentials down, and does not keep trying', async () => {
    const server = await servers.start(tokenAuth);
    const client = new RillClient({ url: server.wsUrl, WebSocket, token: await token('svc', Math.floor(Date.now() / 1000) - 60), reconnectDelayMs: 50 });
    const refusal = await client.connect().catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(RillError);
    expect(refusal).toMatchObject({ code: 'unauthenticated', retriable: false });
    expect(client.state).toBe('closed');
    await expect(client.publish('t', 1)).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(client.tail('t', { onMessage: () => {} })).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('fails connect() with connection-lost when nothing answers', async () => {
    await expect(connect({ url: 'ws://127.0.0.1:1/stomp', WebSocket })).rejects.toMatchObject({ code: 'connection-lost', retriable: true });
  });

  it("logs in with a token, takes a fresh one for the same user, and keeps the one it had when the broker refuses another user's", async () => {
    const server = await servers.start(tokenAuth);
    const watched = await watchedClient(server, { token: await token('svc') });
    await watched.client.publish('secured', 1);
    await watched.client.updateToken(await token('svc'));
    // Had the client taken it, its next connection would be the intruder's, who may not publish.
    await expect(watched.client.updateToken(await token('intruder', '1h', []))).rejects.toMatchObject({ code: 'forbidden' });
    // The refusal closed the connection: the client is back, logged in with the token the broker took.
    await watched.client.publish('secured', 2);
    expect(watched.sessions).toHaveLength(2);
    expect(await storedMessages(server, 'secured')).toBe(2);
    await watched.client.disconnect();
  });
});

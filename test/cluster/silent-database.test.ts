import { afterEach, describe, expect, it } from 'vitest';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { createDatabase } from '../helpers/postgres.js';
import { useServers } from '../helpers/server.js';
import { SilentProxy } from '../helpers/silent-proxy.js';

/* A database that stops answering without closing its connections (its host died, or a network cut it off). */

const TIMEOUT_MS = 1000;

describe('cluster mode: a database that stops answering', () => {
  const servers = useServers();
  const proxies: SilentProxy[] = [];
  afterEach(async () => {
    for (const proxy of proxies.splice(0)) await proxy.close();
  });

  it('publishes get a retriable refusal within the statement timeout, health says so, and once it answers again resends are stored exactly once', async () => {
    const url = await createDatabase();
    const target = new URL(url);
    const proxy = await SilentProxy.start(Number(target.port), target.hostname);
    proxies.push(proxy);
    const proxied = new URL(url);
    proxied.port = String(proxy.port);
    const config = { storage: { backend: 'postgres', postgres: { url: proxied.toString(), statementTimeoutMs: TIMEOUT_MS } } } as const;
    const node = await servers.start(config);
    const health = async () => (await fetch(`http://127.0.0.1:${node.httpPort}/health`)).status;
    const send = (client: RawStompClient, from: number, to: number) => {
      for (let i = from; i < to; i++)
        client.send('SEND', { destination: '/producer/publish/orders', receipt: `m-${i}` }, canonical(`m-${i}`, `key-${i % 5}`, i));
    };

    const before = await RawStompClient.session(node.stompPort);
    send(before, 0, 20);
    await until('20 receipts', () => before.all('RECEIPT').length === 20);
    before.close();

    // The SENDs reach the database (and may commit there), the answers never come back.
    proxy.silence();
    const silencedAt = performance.now();
    const during = await RawStompClient.session(node.stompPort);
    send(during, 20, 30);
    const refusal = await during.next('ERROR');
    const waited = performance.now() - silencedAt;
    expect(refusal.headers.code).toBe('unavailable');
    expect(refusal.headers.retriable).toBe('true');
    // The timeout, the watch's interval (a quarter of it) and some slack; the kernel would have waited minutes.
    expect(waited).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(waited).toBeLessThan(TIMEOUT_MS + 3000);
    expect(during.all('RECEIPT')).toEqual([]);
    await until('health to say the database is unreachable', async () => (await health()) === 503);

    proxy.restore();
    await until('health to be ok again', async () => (await health()) === 200);
    // The producer resends what had no receipt, as a producer does after a retriable refusal (the node
    // refuses the resends of what was in doubt until it has read back whether it was stored): what
    // the database committed meanwhile is answered as a duplicate, the rest is stored.
    const unanswered = new Set(Array.from({ length: 10 }, (_, i) => 20 + i));
    for (let attempt = 0; unanswered.size > 0; attempt++) {
      expect(attempt).toBeLessThan(50);
      const client = await RawStompClient.session(node.stompPort);
      for (const i of unanswered) client.send('SEND', { destination: '/producer/publish/orders', receipt: `m-${i}` }, canonical(`m-${i}`, `key-${i % 5}`, i));
      await until('every receipt or an ERROR', () => client.all('RECEIPT').length === unanswered.size || client.all('ERROR').length > 0);
      for (const receipt of client.all('RECEIPT')) unanswered.delete(Number(receipt.headers['receipt-id']!.slice(2)));
      for (const error of client.all('ERROR')) expect(error.headers).toMatchObject({ code: 'unavailable', retriable: 'true' });
      client.close();
      if (unanswered.size > 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }

    // Read by a node straight on the database: every acknowledged message once, nothing else.
    const reader = await servers.start({ storage: { backend: 'postgres', postgres: { url } } });
    const stored = await readTopic(reader, 'orders');
    expect(stored.map((m) => m.messageId).sort()).toEqual(Array.from({ length: 30 }, (_, i) => `m-${i}`).sort());
  });
});

import { describe, expect, it } from 'vitest';
import { RawStompClient, until } from '../helpers/clients.js';
import { call, httpBase, storedCount } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';

describe('bounded memory', () => {
  const servers = useServers();

  it('stops reading from producers while storage is behind, and stores everything once it catches up', { timeout: 60_000 }, async () => {
    const server = await servers.start({ limits: { maxInflightBytes: 1024 * 1024 }, topics: { definitions: [{ name: 'flood', partitions: 2 }] } });
    const producer = await RawStompClient.session(server.stompPort);
    const value = 'v'.repeat(2000);
    const total = 10_000;
    let chunk = '';
    for (let i = 0; i < total; i++) {
      chunk += `SEND\ndestination:/producer/publish/flood\nkey:k${i}\n\n${value}\0`;
      if (chunk.length > 256 * 1024) {
        producer.write(chunk);
        chunk = '';
      }
    }
    producer.send('DISCONNECT', { receipt: 'all-sent' });
    producer.write(chunk);
    await producer.receipt('all-sent', 50_000);
    expect(server.gateway.pauses).toBeGreaterThan(0);
    const base = httpBase(server.httpPort);
    expect((await call(base, 'GET', '/v1/stats')).body.inflightBytes).toBe(0);
    expect(await storedCount(base, 'flood')).toBe(total);
  });

  it('holds back a live-tail subscriber that does not read, instead of buffering for it', { timeout: 60_000 }, async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'slow', partitions: 1 }] } });
    const reader = await RawStompClient.session(server.stompPort);
    reader.send('SUBSCRIBE', { id: 'tail', destination: '/topic/slow', receipt: 'subscribed' });
    await reader.receipt('subscribed');
    reader.socket.pause();
    const producer = await RawStompClient.session(server.stompPort);
    const value = 'w'.repeat(4000);
    for (let i = 0; i < 5000; i++) producer.send('SEND', { destination: '/producer/publish/slow', key: 'k' }, value);
    producer.send('DISCONNECT', { receipt: 'stored' });
    await producer.receipt('stored', 50_000);
    // The barrier: a reader that does read gets the whole topic. The held-back subscriber's feed
    // was told of every append before that, so it had every chance to buffer all of it by now.
    const other = await RawStompClient.session(server.stompPort);
    other.send('SUBSCRIBE', { id: 'all', destination: '/topic/slow', from: 'earliest' });
    await until('every message at the reader that reads', () => other.all('MESSAGE').length >= 5000, 50_000);
    other.close();
    const connection = server.gateway.connections().find((c) => c.subscriptions.includes('tail'))!;
    // 20 MB were published; the subscriber's socket holds about the high-water mark, not all of it.
    expect(connection.bufferedBytes).toBeLessThan(2 * 1024 * 1024);
    reader.socket.resume();
    await until('every message', () => reader.all('MESSAGE').length >= 5000, 50_000);
    const offsets = reader.all('MESSAGE').map((f) => Number(f.headers.offset));
    expect(offsets).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    reader.close();
  });
});

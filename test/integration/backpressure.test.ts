import { describe, expect, it } from 'vitest';
import { canonical, RawStompClient, waitFor } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

describe('bounded memory', () => {
  const servers = useServers();

  it('stops reading from producers while storage is behind, and stores everything once it catches up', async () => {
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
    await waitFor(() => producer.frames.find((f) => f.command === 'RECEIPT'), 30_000, 'every publish to be stored');
    expect(server.gateway.pauses).toBeGreaterThan(0);
    expect(server.broker.inflightBytes).toBe(0);
    const topic = server.broker.topic('flood')!;
    const ends = await Promise.all([0, 1].map((p) => server.broker.offsets(topic, p)));
    expect(ends[0].logEndOffset + ends[1].logEndOffset).toBe(total);
  });

  it('holds back a live-tail subscriber that does not read, instead of buffering for it', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'slow', partitions: 1 }] } });
    const reader = await RawStompClient.session(server.stompPort);
    reader.send('SUBSCRIBE', { id: 'tail', destination: '/topic/slow', receipt: 'subscribed' });
    await reader.next('RECEIPT');
    reader.socket.pause();
    const producer = await RawStompClient.session(server.stompPort);
    const value = 'w'.repeat(4000);
    for (let i = 0; i < 5000; i++) producer.send('SEND', { destination: '/producer/publish/slow', key: 'k' }, value);
    producer.send('DISCONNECT', { receipt: 'stored' });
    await producer.next('RECEIPT', 30_000);
    await new Promise((r) => setTimeout(r, 300));
    const connection = server.gateway.connections().find((c) => c.subscriptions.includes('tail'))!;
    // 20 MB were published; the subscriber's socket holds about the high-water mark, not all of it.
    expect(connection.bufferedBytes).toBeLessThan(2 * 1024 * 1024);
    reader.socket.resume();
    await waitFor(() => reader.frames.filter((f) => f.command === 'MESSAGE').length === 5000 || undefined, 30_000, 'every message');
    const offsets = reader.frames.filter((f) => f.command === 'MESSAGE').map((f) => Number(f.headers.offset));
    expect(offsets).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    reader.close();
  });
});

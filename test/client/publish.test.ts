import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { type Message, type PublishResult, RillError, type WebSocketLike } from '../../src/client/index.js';
import { until, WAIT } from '../helpers/clients.js';
import { storedMessages, useServers } from '../helpers/server.js';
import { createTopic, dropConnection, watchedClient } from './client-helpers.js';

const servers = useServers();

describe('rill/client publishing', () => {
  it('resolves each publish with the partition and offset it is stored at, keeping each key in order', async () => {
    const server = await servers.start();
    await createTopic(server, 'orders', 3);
    const { client } = await watchedClient(server);
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: keys[i % keys.length]!, value: { n: i } }));
    // All at once: the acknowledgments of three partitions come back interleaved.
    const results = await Promise.all(sent.map(({ key, value }) => client.publish('orders', value, { key })));

    const read = new Map<string, Message>();
    const tail = await client.tail('orders', { from: 'earliest', onMessage: (m) => void read.set(`${m.partition}@${m.offset}`, m) });
    await until('every message read back', () => read.size === sent.length);
    await tail.unsubscribe();

    results.forEach((result, i) => {
      const stored = read.get(`${result.partition}@${result.offset}`);
      expect(stored?.messageID).toBe(result.messageID);
      expect(stored?.key).toBe(sent[i]!.key);
      expect(stored?.value()).toEqual(sent[i]!.value);
      expect(result).toMatchObject({ topic: 'orders', duplicate: false });
    });
    for (const key of keys) {
      const ofKey = results.filter((_, i) => sent[i]!.key === key);
      expect(new Set(ofKey.map((r) => r.partition)).size).toBe(1);
      const offsets = ofKey.map((r) => r.offset);
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    }
    await client.disconnect();
  });

  it('sends a publish whose acknowledgment the dropped connection lost again, under the same messageID, and it is stored once', async () => {
    const server = await servers.start();
    // The first connection goes deaf after it connects: the broker stores the message, but its acknowledgment never arrives.
    const sockets: WebSocket[] = [];
    let deaf = false;
    const webSocketFactory = (url: string, protocols: string[]): WebSocketLike => {
      const socket = new WebSocket(url, protocols);
      sockets.push(socket);
      const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
      Object.defineProperty(socket, 'onmessage', {
        get: () => onmessage.get!.call(socket),
        set: (handler: ((event: unknown) => void) | null) =>
          onmessage.set!.call(socket, (event: unknown) => {
            if (!(deaf && socket === sockets[0])) handler?.(event);
          }),
      });
      return socket as unknown as WebSocketLike;
    };
    const watched = await watchedClient(server, { webSocketFactory });
    deaf = true;
    let result: PublishResult | undefined;
    const publishing = watched.client.publish('once', 'exactly once', { key: 'k' }).then((r) => (result = r));
    await vi.waitFor(async () => expect(await storedMessages(server, 'once')).toBe(1), WAIT);
    expect(result).toBeUndefined();

    await dropConnection(server, watched);
    await until('the publish to be acknowledged', () => result);
    await publishing;
    expect(result).toMatchObject({ topic: 'once', duplicate: true });
    expect(await storedMessages(server, 'once')).toBe(1);
    const stored: Message[] = [];
    await watched.client.tail('once', { from: 'earliest', onMessage: (m) => void stored.push(m) });
    await until('the stored message', () => stored.length === 1);
    expect(stored[0]).toMatchObject({ messageID: result!.messageID, partition: result!.partition, offset: result!.offset });
    await watched.client.disconnect();
  });

  it('stores every publish of a window exactly once across a connection the broker closes mid-way', async () => {
    const server = await servers.start();
    const watched = await watchedClient(server, { maxInFlight: 50 });
    const total = 300;
    let acknowledged = 0;
    const publishing = Array.from({ length: total }, (_, i) => watched.client.publish('bulk', i, { key: `k${i % 7}` }).then(() => acknowledged++));
    await until('some acknowledgments', () => acknowledged >= 20);
    await dropConnection(server, watched);
    const results = await Promise.all(publishing);
    expect(results).toHaveLength(total);
    expect(watched.disconnects.map((reason) => reason.code)).toEqual(['closed-by-operator']);
    expect(await storedMessages(server, 'bulk')).toBe(total);
    await watched.client.disconnect();
  });

  it('rejects a message the broker refuses for good with a typed error, stores nothing, and stays connected', async () => {
    const server = await servers.start();
    await createTopic(server, 'small', 1, { maxMessageBytes: 10 });
    const watched = await watchedClient(server);
    const refusal = await watched.client.publish('small', 'a message far over ten bytes').catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(RillError);
    expect(refusal).toMatchObject({ code: 'too-large', retriable: false });
    expect(await storedMessages(server, 'small')).toBe(0);
    // A FAILED acknowledgment, not an ERROR: the connection goes on.
    expect(watched.disconnects).toEqual([]);
    expect(watched.client.state).toBe('connected');
    await watched.client.disconnect();
  });

  it('sends no more than maxInFlight publishes before their acknowledgments, and fails later ones with client-closed once disconnected', async () => {
    const server = await servers.start();
    let sends = 0;
    const webSocketFactory = (url: string, protocols: string[]): WebSocketLike => {
      const socket = new WebSocket(url, protocols);
      const send = socket.send.bind(socket);
      socket.send = ((data: string) => {
        if (String(data).startsWith('SEND')) sends++;
        send(data);
      }) as typeof socket.send;
      return socket as unknown as WebSocketLike;
    };
    const { client } = await watchedClient(server, { maxInFlight: 2, webSocketFactory });
    const publishing = [1, 2, 3, 4, 5].map((n) => client.publish('window', n));
    // Acknowledgments cannot have come yet: only the window's worth went out.
    expect(sends).toBe(2);
    const stored = await Promise.all(publishing);
    expect(new Set(stored.map((r) => `${r.partition}@${r.offset}`)).size).toBe(5);
    expect(sends).toBe(5);
    await client.disconnect();
    await expect(client.publish('window', 6)).rejects.toMatchObject({ code: 'client-closed' });
    await expect(client.publish('window', 7, { headers: { key: 'k' } })).rejects.toMatchObject({ code: 'invalid-argument' });
  });
});

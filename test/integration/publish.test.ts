import { describe, expect, it } from 'vitest';
import { partitionForKey } from '../../src/broker/index.js';
import { canonical, collect, connectStompJs, publishWithReceipt, waitFor } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

describe('publishing over WebSocket with @stomp/stompjs', () => {
  const servers = useServers();

  it('acknowledges a publish with a RECEIPT and an acknowledgment carrying partition and offset', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 6 } });
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/orders');
    await publishWithReceipt(client, '/producer/publish/orders', canonical('m-1', 'customer-42', 'hello'));
    const ack = JSON.parse((await waitFor(() => acks[0])).body);
    expect(ack).toMatchObject({ messageID: 'm-1', status: 'ACK', topic: 'orders', partition: partitionForKey('customer-42', 6), offset: 0 });
    expect(typeof ack.timestamp).toBe('number');
    await client.deactivate();
  });

  it('sends every key to one partition, with acknowledgments in publish order and dense offsets', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 4 } });
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgement/events');
    const keys = ['a', 'b', 'c', 'd', 'e'];
    for (let i = 0; i < 100; i++) {
      client.publish({ destination: '/producer/publish/events', body: canonical(`id-${i}`, keys[i % 5], `value ${i}`) });
    }
    await waitFor(() => acks.length === 100 || undefined, 10_000, '100 acknowledgments');
    const parsed = acks.map((m) => JSON.parse(m.body));
    for (const key of keys) {
      const mine = parsed.filter((a) => Number(a.messageID.slice(3)) % 5 === keys.indexOf(key));
      expect(new Set(mine.map((a) => a.partition))).toEqual(new Set([partitionForKey(key, 4)]));
    }
    for (let partition = 0; partition < 4; partition++) {
      const inPartition = parsed.filter((a) => a.partition === partition);
      const ids = inPartition.map((a) => Number(a.messageID.slice(3)));
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      const offsets = inPartition.map((a) => a.offset).sort((x, y) => x - y);
      expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i));
    }
    await client.deactivate();
  });

  it('shows a producer only its own acknowledgments', async () => {
    const server = await servers.start();
    const alice = await connectStompJs(server.wsUrl);
    const bob = await connectStompJs(server.wsUrl);
    const aliceAcks = collect(alice, '/topic/acknowledgment/shared');
    const bobAcks = collect(bob, '/topic/acknowledgment/shared');
    await publishWithReceipt(alice, '/producer/publish/shared', canonical('from-alice', 'k', 1));
    await publishWithReceipt(bob, '/producer/publish/shared', canonical('from-bob', 'k', 2));
    await waitFor(() => aliceAcks.length === 1 && bobAcks.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(aliceAcks.map((m) => JSON.parse(m.body).messageID)).toEqual(['from-alice']);
    expect(bobAcks.map((m) => JSON.parse(m.body).messageID)).toEqual(['from-bob']);
    await Promise.all([alice.deactivate(), bob.deactivate()]);
  });

  it('stores the body byte for byte, with key, id, timestamp and user headers, for JSON and raw bodies', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 1 } });
    const client = await connectStompJs(server.wsUrl);
    const json = canonical('j-1', 'k1', { nested: [1, 2, 3] }, 1_700_000_000_000);
    await publishWithReceipt(client, '/producer/publish/raw', json, { 'x-trace': 'abc', 'content-type': 'application/json' });
    const binary = new Uint8Array([0, 1, 2, 255, 0, 10, 13, 0]);
    await publishWithReceipt(client, '/producer/publish/raw', binary, { key: 'k2', 'message-id': 'b-1' });
    await publishWithReceipt(client, '/topic/raw', 'plain text, not JSON', { key: 'k3' });

    const messages = collect(client, '/topic/raw', { from: 'earliest' });
    await waitFor(() => messages.length === 3 || undefined);
    const [first, second, third] = messages;
    expect(first.body).toBe(json);
    expect(first.headers).toMatchObject({ topic: 'raw', partition: '0', offset: '0', key: 'k1', 'message-id': 'j-1', timestamp: '1700000000000', 'x-trace': 'abc', 'content-type': 'application/json' });
    expect([...second.binaryBody]).toEqual([...binary]);
    expect(second.headers).toMatchObject({ offset: '1', key: 'k2', 'message-id': 'b-1' });
    expect(third.body).toBe('plain text, not JSON');
    expect(third.headers.key).toBe('k3');
    await client.deactivate();
  });

  it('honours a valid partition header and spreads keyless messages round-robin', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 3 } });
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/spread');
    client.publish({ destination: '/producer/publish/spread', body: canonical('pinned', 'any-key', 'x'), headers: { partition: '2' } });
    for (let i = 0; i < 6; i++) client.publish({ destination: '/producer/publish/spread', body: JSON.stringify({ messageID: `n-${i}`, message: i }) });
    await waitFor(() => acks.length === 7 || undefined);
    const parsed = acks.map((m) => JSON.parse(m.body));
    expect(parsed.find((a) => a.messageID === 'pinned').partition).toBe(2);
    const keyless = parsed.filter((a) => a.messageID.startsWith('n-')).map((a) => a.partition);
    expect(keyless.sort()).toEqual([0, 0, 1, 1, 2, 2]);
    await client.deactivate();
  });

  it('accepts a message field of any JSON type and a missing messageID', async () => {
    const server = await servers.start();
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/any');
    for (const message of ['text', 42, null, [1], { a: 1 }, true]) {
      client.publish({ destination: '/producer/publish/any', body: JSON.stringify({ key: 'k', message }) });
    }
    await waitFor(() => acks.length === 6 || undefined);
    const parsed = acks.map((m) => JSON.parse(m.body));
    expect(parsed.every((a) => a.status === 'ACK' && typeof a.messageID === 'string')).toBe(true);
    expect(new Set(parsed.map((a) => a.messageID)).size).toBe(6);
    await client.deactivate();
  });

  it('creates topics with the configured partition count and keeps them across restarts', async () => {
    const dataDir = servers.tempDir();
    const first = await servers.start({ topics: { defaultPartitions: 5, definitions: [{ name: 'declared', partitions: 2 }] } }, dataDir);
    const client = await connectStompJs(first.wsUrl);
    await publishWithReceipt(client, '/producer/publish/auto', canonical('1', 'k', 'v'));
    await client.deactivate();
    expect(first.broker.topic('auto')?.partitions).toBe(5);
    expect(first.broker.topic('declared')?.partitions).toBe(2);
    await first.close();
    const second = await servers.start({ topics: { defaultPartitions: 9 } }, dataDir);
    expect(second.broker.topic('auto')?.partitions).toBe(5);
    const again = await connectStompJs(second.wsUrl);
    const acks = collect(again, '/topic/acknowledgment/auto');
    await publishWithReceipt(again, '/producer/publish/auto', canonical('2', 'k', 'v'));
    const ack = JSON.parse((await waitFor(() => acks[0])).body);
    expect(ack.offset).toBe(1);
    await again.deactivate();
  });

  it('serves the seed endpoint /producer and the v10/v11/v12 subprotocols', async () => {
    const server = await servers.start();
    const client = await connectStompJs(`ws://127.0.0.1:${server.httpPort}/producer`);
    await publishWithReceipt(client, '/producer/publish/seed', canonical('s', 'k', 'v'));
    await client.deactivate();
  });
});

describe('durability policies', () => {
  const servers = useServers();

  for (const mode of ['fsync', 'interval', 'os'] as const) {
    it(`stores and acknowledges under the ${mode} policy, and keeps the data across a restart`, async () => {
      const dataDir = servers.tempDir();
      const first = await servers.start({ storage: { durability: { mode, intervalMs: 50 } }, topics: { defaultPartitions: 2 } }, dataDir);
      const client = await connectStompJs(first.wsUrl);
      const acks = collect(client, '/topic/acknowledgment/policy');
      for (let i = 0; i < 50; i++) client.publish({ destination: '/producer/publish/policy', body: canonical(`p${i}`, `k${i}`, i) });
      await waitFor(() => acks.length === 50 || undefined);
      await client.deactivate();
      await first.close();
      const second = await servers.start({ storage: { durability: { mode } } }, dataDir);
      const topic = second.broker.topic('policy')!;
      const ends = await Promise.all([0, 1].map((p) => second.broker.offsets(topic, p)));
      expect(ends[0].logEndOffset + ends[1].logEndOffset).toBe(50);
    });
  }
});

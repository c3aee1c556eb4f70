import fs from 'node:fs';
import path from 'node:path';
import type { IMessage } from '@stomp/stompjs';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { partitionForKey } from '../../src/broker/index.js';
import { encodeFrame, FrameParser, type Frame } from '../../src/protocol/stomp/index.js';
import { exited, useChildServers, type ChildServer } from '../helpers/child-server.js';
import { canonical, collect, connectStompJs, publishWithReceipt, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { httpBase, storedCount } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

describe('publishing over WebSocket with @stomp/stompjs', () => {
  const servers = useServers();

  it('acknowledges a publish with a RECEIPT and an acknowledgment carrying partition and offset', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 6 } });
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/orders');
    await publishWithReceipt(client, '/producer/publish/orders', canonical('m-1', 'customer-42', 'hello'));
    const ack = JSON.parse((await until('the acknowledgment', () => acks[0])).body);
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
      client.publish({ destination: '/producer/publish/events', body: canonical(`id-${i}`, keys[i % 5]!, `value ${i}`) });
    }
    await until('100 acknowledgments', () => acks.length === 100);
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
    await until('one acknowledgment each', () => aliceAcks.length >= 1 && bobAcks.length >= 1);
    // The barrier: each publishes once more. The other's message was stored before that, so an
    // acknowledgment of it sent to the wrong connection would have come before this one.
    await publishWithReceipt(alice, '/producer/publish/shared', canonical('alice-again', 'k', 3));
    await publishWithReceipt(bob, '/producer/publish/shared', canonical('bob-again', 'k', 4));
    await until('the second acknowledgments', () => aliceAcks.length >= 2 && bobAcks.length >= 2);
    expect(aliceAcks.map((m) => JSON.parse(m.body).messageID)).toEqual(['from-alice', 'alice-again']);
    expect(bobAcks.map((m) => JSON.parse(m.body).messageID)).toEqual(['from-bob', 'bob-again']);
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
    await until('3 messages', () => messages.length === 3);
    const [first, second, third] = messages as [IMessage, IMessage, IMessage];
    expect(first.body).toBe(json);
    expect(first.headers).toMatchObject({
      topic: 'raw',
      partition: '0',
      offset: '0',
      key: 'k1',
      'message-id': 'j-1',
      timestamp: '1700000000000',
      'x-trace': 'abc',
      'content-type': 'application/json',
    });
    expect([...second.binaryBody]).toEqual([...binary]);
    expect(second.headers).toMatchObject({ offset: '1', key: 'k2', 'message-id': 'b-1' });
    expect(third.body).toBe('plain text, not JSON');
    expect(third.headers.key).toBe('k3');
    await client.deactivate();
  });

  it('honours a valid partition header and spreads keyless messages round-robin when so configured', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 3, keylessPartitioner: 'round-robin' } });
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/spread');
    client.publish({ destination: '/producer/publish/spread', body: canonical('pinned', 'any-key', 'x'), headers: { partition: '2' } });
    for (let i = 0; i < 6; i++) client.publish({ destination: '/producer/publish/spread', body: JSON.stringify({ messageID: `n-${i}`, message: i }) });
    await until('7 acknowledgments', () => acks.length === 7);
    const parsed = acks.map((m) => JSON.parse(m.body));
    expect(parsed.find((a) => a.messageID === 'pinned').partition).toBe(2);
    const keyless = parsed.filter((a) => a.messageID.startsWith('n-')).map((a) => a.partition);
    expect(keyless.sort()).toEqual([0, 0, 1, 1, 2, 2]);
    await client.deactivate();
  });

  it('keeps keyless messages that arrive together on one partition and sends the next ones to the next partition (sticky, the default, as Kafka)', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 3 } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/sticky', receipt: 'subscribed' });
    await client.receipt('subscribed');
    const frame = (id: string, receipt?: string): Buffer =>
      encodeFrame(
        'SEND',
        { destination: '/producer/publish/sticky', ...(receipt === undefined ? {} : { receipt }) },
        JSON.stringify({ messageID: id, message: 1 }),
      );
    for (let round = 0; round < 3; round++) {
      // Five SENDs in one write: the server reads them in one turn.
      client.write(Buffer.concat([0, 1, 2, 3, 4].map((i) => frame(`s-${round}-${i}`, i === 4 ? `r-${round}` : undefined))));
      await client.receipt(`r-${round}`);
    }
    await until('15 acknowledgments', () => client.all('MESSAGE').length === 15);
    const acks = client.all('MESSAGE').map((m) => JSON.parse(m.body.toString()) as { messageID: string; partition: number });
    const partitionsOf = (round: number) => new Set(acks.filter((a) => a.messageID.startsWith(`s-${round}-`)).map((a) => a.partition));
    expect([0, 1, 2].map((round) => partitionsOf(round).size)).toEqual([1, 1, 1]);
    expect(new Set([0, 1, 2].map((round) => [...partitionsOf(round)][0])).size).toBe(3);
    client.close();
  });

  it('accepts a message field of any JSON type and a missing messageID', async () => {
    const server = await servers.start();
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/any');
    for (const message of ['text', 42, null, [1], { a: 1 }, true]) {
      client.publish({ destination: '/producer/publish/any', body: JSON.stringify({ key: 'k', message }) });
    }
    await until('6 acknowledgments', () => acks.length === 6);
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
    const ack = JSON.parse((await until('the acknowledgment', () => acks[0])).body);
    expect(ack.offset).toBe(1);
    await again.deactivate();
  });

  it('serves the seed endpoint /producer and the v10/v11/v12 subprotocols', async () => {
    const server = await servers.start();
    const offers: Array<{ versions: string[]; subprotocol: string; version: string }> = [
      { versions: ['1.2', '1.1', '1.0'], subprotocol: 'v12.stomp', version: '1.2' },
      { versions: ['1.1', '1.0'], subprotocol: 'v11.stomp', version: '1.1' },
      { versions: ['1.0'], subprotocol: 'v10.stomp', version: '1.0' },
      // The highest offered wins, whatever order the client lists them in.
      { versions: ['1.0', '1.2'], subprotocol: 'v12.stomp', version: '1.2' },
    ];
    for (const path of ['/stomp', '/producer']) {
      for (const offer of offers) {
        // stompjs offers the versions both as WebSocket subprotocols and in accept-version.
        const client = await connectStompJs(`ws://127.0.0.1:${server.httpPort}${path}`, {}, { versions: offer.versions });
        const what = `${path} offering ${offer.versions.join(',')}`;
        expect(client.socket.protocol, what).toBe(offer.subprotocol);
        expect(client.connectedFrame.headers.version, what).toBe(offer.version);
        expect(client.connectedVersion, what).toBe(offer.version);
        await publishWithReceipt(client, '/producer/publish/seed', canonical(`s-${path}-${offer.versions.join('')}`, 'k', 'v'));
        await client.deactivate();
      }
    }
    expect(await storedCount(httpBase(server.httpPort), 'seed')).toBe(2 * offers.length);
  });

  it('accepts a WebSocket that offers no subprotocol', async () => {
    const server = await servers.start();
    const socket = new WebSocket(`ws://127.0.0.1:${server.httpPort}/stomp`);
    const frames: Frame[] = [];
    const parser = new FrameParser((frame) => frames.push(frame));
    socket.on('message', (data: Buffer) => parser.push(Buffer.from(data)));
    await new Promise<void>((resolve, reject) => socket.once('open', () => resolve()).once('error', reject));
    expect(socket.protocol).toBe('');
    socket.send(encodeFrame('CONNECT', { 'accept-version': '1.1,1.2', host: 'localhost' }));
    const connected = await until('CONNECTED', () => frames.find((f) => f.command === 'CONNECTED'));
    expect(connected.headers.version).toBe('1.2');
    socket.close();
  });
});

describe('durability policies', () => {
  const startChild = useChildServers();
  const servers = useServers();

  /** A child server (a real process, so it can be killed) with this durability mode and, optionally, failpoints. */
  function startWithMode(dataDir: string, mode: 'fsync' | 'interval' | 'os', env: Record<string, string> = {}): Promise<ChildServer> {
    const configFile = path.join(servers.tempDir(), 'rill.json');
    // intervalMs of an hour: under "interval" no periodic fsync happens during a test.
    fs.writeFileSync(configFile, JSON.stringify({ storage: { durability: { mode, intervalMs: 3_600_000 } }, topics: { defaultPartitions: 2 } }));
    return startChild(dataDir, { args: ['--config', configFile], env });
  }

  interface Ack {
    messageID: string;
    status: 'ACK' | 'FAILED';
    partition: number | null;
    offset?: number;
    reason?: string;
    retriable?: boolean;
  }
  const acksOf = (client: RawStompClient): Ack[] => client.all('MESSAGE').map((f) => JSON.parse(f.body.toString()) as Ack);

  // Every fsync fails (RILL_FAILPOINTS=fsync=error, inherited by the broker worker threads): a
  // mode that acknowledges only after an fsync can then acknowledge nothing.
  const FAILING_FSYNC = { RILL_FAILPOINTS: 'fsync=error' };

  // A failing fsync of the journal: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'under fsync, does not acknowledge a message whose fsync failed: ERROR instead of RECEIPT, or a FAILED acknowledgment',
    async () => {
      const dataDir = servers.tempDir();
      const child = await startWithMode(dataDir, 'fsync', FAILING_FSYNC);
      const base = httpBase(child.httpPort);

      // No acknowledgment subscription: an ERROR answering the receipt, and the connection closes.
      const plain = await RawStompClient.session(child.stompPort);
      plain.send('SEND', { destination: '/producer/publish/synced', receipt: 'r-1' }, canonical('unsynced-1', 'k', 'v'));
      const error = await plain.next('ERROR');
      expect(error.headers['receipt-id']).toBe('r-1');
      expect(error.headers.message).toMatch(/^message "unsynced-1" was not stored: fsync failed: EIO/);
      await plain.closedByServer();
      expect(plain.all('RECEIPT')).toEqual([]);

      // With an acknowledgment subscription: FAILED, and the connection goes on.
      const subscribed = await RawStompClient.session(child.stompPort);
      subscribed.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/synced', receipt: 'subscribed' });
      await subscribed.receipt('subscribed');
      subscribed.send('SEND', { destination: '/producer/publish/synced', receipt: 'r-2' }, canonical('unsynced-2', 'k', 'v'));
      const failed = JSON.parse((await subscribed.next('MESSAGE')).body.toString()) as Ack;
      expect(failed).toMatchObject({ messageID: 'unsynced-2', status: 'FAILED' });
      expect(failed.reason).toMatch(/fsync failed: EIO/);
      expect(acksOf(subscribed).filter((a) => a.status === 'ACK')).toEqual([]);
      // Readers see only what is durable: nothing.
      expect(await storedCount(base, 'synced')).toBe(0);
      subscribed.close();

      // And what was reported as not stored never comes back: after a crash and a start with a
      // healthy disk, the log holds neither message (the partition was cut back to its durable end).
      child.process.kill('SIGKILL');
      await exited(child.process);
      const healthy = await startWithMode(dataDir, 'fsync');
      expect(await storedCount(httpBase(healthy.httpPort), 'synced')).toBe(0);
    },
  );

  for (const mode of ['os', 'interval'] as const) {
    it(`under ${mode}, acknowledges after the write, without waiting for an fsync`, async () => {
      const child = await startWithMode(servers.tempDir(), mode, FAILING_FSYNC);

      // No acknowledgment subscription (where a RECEIPT would come even for a failed publish): the RECEIPT.
      const plain = await RawStompClient.session(child.stompPort);
      plain.send('SEND', { destination: '/producer/publish/unsynced', receipt: 'r-1' }, canonical('written-1', 'k', 'v'));
      await plain.receipt('r-1');
      expect(plain.all('ERROR')).toEqual([]);

      // With one: an ACK with its place.
      const subscribed = await RawStompClient.session(child.stompPort);
      subscribed.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/unsynced', receipt: 'subscribed' });
      await subscribed.receipt('subscribed');
      subscribed.send('SEND', { destination: '/producer/publish/unsynced' }, canonical('written-2', 'k', 'v'));
      const ack = JSON.parse((await subscribed.next('MESSAGE')).body.toString()) as Ack;
      expect(ack).toMatchObject({ messageID: 'written-2', status: 'ACK', offset: 1 });
      expect(await storedCount(httpBase(child.httpPort), 'unsynced')).toBe(2);
      expect(plain.closed).toBe(false);
      plain.close();
      subscribed.close();
    });
  }

  for (const mode of ['fsync', 'interval', 'os'] as const) {
    it(`keeps what it acknowledged under ${mode} across kill -9 and a restart`, async () => {
      const dataDir = servers.tempDir();
      const child = await startWithMode(dataDir, mode);
      const producer = await RawStompClient.session(child.stompPort);
      producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/policy', receipt: 'subscribed' });
      await producer.receipt('subscribed');
      for (let i = 0; i < 50; i++) producer.send('SEND', { destination: '/producer/publish/policy' }, canonical(`p${i}`, `k${i}`, i));
      await until('50 acknowledgments', () => acksOf(producer).length === 50);
      // A crash of the process, not a graceful stop (which would fsync under every mode). Under
      // os and interval the writes are in the OS's cache, which outlives the process.
      child.process.kill('SIGKILL');
      await exited(child.process);
      producer.close();
      const acks = acksOf(producer);
      expect(acks.every((a) => a.status === 'ACK')).toBe(true);

      const restarted = await servers.start({ storage: { durability: { mode } } }, dataDir);
      const stored = await readTopic(restarted, 'policy');
      const place = (m: { partition: number | null; offset?: number }) => `${m.partition}/${m.offset}`;
      expect(new Map(stored.map((m) => [m.messageId, place(m)]))).toEqual(new Map(acks.map((a) => [a.messageID, place(a)])));
      expect(stored).toHaveLength(50);
    });
  }
});

import { describe, expect, it } from 'vitest';
import { encodeFrame, type HeaderInput } from '../../src/protocol/stomp/index.js';
import { RawStompClient, until } from '../helpers/clients.js';
import { httpBase, storedCount } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';

/**
 * A keyless topic spreads its messages round-robin over its partitions (topics.keylessPartitioner), and with 2 broker workers
 * neighbouring partitions live on different workers: storage answers a burst of SENDs worker by
 * worker, not in the order they were sent. The RECEIPTs must still come in the frames' order.
 */
const TOPIC = 'ordered';
const PARTITIONS = 4;

function send(i: number, headers: HeaderInput = {}): Buffer {
  return encodeFrame('SEND', { destination: `/producer/publish/${TOPIC}`, receipt: `r-${i}`, ...headers }, JSON.stringify({ messageID: `m-${i}`, message: i }));
}

function receiptIds(client: RawStompClient): string[] {
  return client.all('RECEIPT').map((f) => f.headers['receipt-id'] ?? '');
}

describe('receipts in frame order', () => {
  const servers = useServers();
  // Round-robin: neighbouring messages go to neighbouring partitions, on different workers (the
  // default, sticky, may put a whole burst on one partition, whose acknowledgments are in order).
  const start = () =>
    servers.start({ brokers: { workers: 2 }, topics: { keylessPartitioner: 'round-robin', definitions: [{ name: TOPIC, partitions: PARTITIONS }] } });

  it('answers SENDs stored out of order, across partitions on two workers, in the order they were sent', { timeout: 60_000 }, async () => {
    const server = await start();
    const client = await RawStompClient.session(server.stompPort);
    client.send('SUBSCRIBE', { id: 'acks', destination: `/topic/acknowledgment/${TOPIC}`, receipt: 'acks' });
    await client.receipt('acks');

    // One socket write of 2,000 SENDs, then five bursts of 500 written without waiting.
    const expected: string[] = [];
    const frames: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      frames.push(send(i));
      expected.push(`r-${i}`);
    }
    client.write(Buffer.concat(frames));
    for (let burst = 0; burst < 5; burst++) {
      const chunk: Buffer[] = [];
      for (let i = 2000 + burst * 500; i < 2500 + burst * 500; i++) {
        chunk.push(send(i));
        expected.push(`r-${i}`);
      }
      client.write(Buffer.concat(chunk));
    }
    await until('every RECEIPT', () => client.all('RECEIPT').length >= expected.length + 1, 50_000);
    expect(client.all('ERROR')).toEqual([]);
    expect(receiptIds(client)).toEqual(['acks', ...expected]);

    // Storage did answer out of frame order: the acknowledgments, which are not held back, show it
    // (in order within each partition, interleaved otherwise).
    await until('every acknowledgment', () => client.all('MESSAGE').length >= expected.length, 50_000);
    const acks = client.all('MESSAGE').map((f) => JSON.parse(f.body.toString()) as { messageID: string; partition: number; offset: number });
    const ackOrder = acks.map((a) => Number(a.messageID.slice(2)));
    expect(ackOrder).not.toEqual([...ackOrder].sort((a, b) => a - b));
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const offsets = acks.filter((a) => a.partition === partition).map((a) => a.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
    expect(await storedCount(httpBase(server.httpPort), TOPIC)).toBe(expected.length);
    client.close();
  });

  it('keeps frame order across SENDs, a tail SUBSCRIBE, a group SUBSCRIBE, a transaction and DISCONNECT', { timeout: 60_000 }, async () => {
    const server = await start();
    const client = await RawStompClient.session(server.stompPort);
    const frames: Buffer[] = [];
    const expected: string[] = [];
    let next = 0;
    const sends = (count: number): void => {
      for (let i = 0; i < count; i++, next++) {
        frames.push(send(next));
        expected.push(`r-${next}`);
      }
    };
    const frame = (command: string, headers: HeaderInput, body?: string): void => {
      frames.push(encodeFrame(command, headers, body));
      if (headers.receipt !== undefined) expected.push(String(headers.receipt));
    };
    sends(300);
    // A tail from the earliest offset: its RECEIPT waits for every partition's offsets from the workers.
    frame('SUBSCRIBE', { id: 'tail', destination: `/topic/${TOPIC}`, from: 'earliest', receipt: 'tail' });
    sends(100);
    frame('BEGIN', { transaction: 'tx', receipt: 'begin' });
    frame('SEND', { destination: `/producer/publish/${TOPIC}`, transaction: 'tx', receipt: 'held' }, JSON.stringify({ messageID: 'tx-1', message: 1 }));
    frame('SEND', { destination: `/producer/publish/${TOPIC}`, transaction: 'tx' }, JSON.stringify({ messageID: 'tx-2', message: 2 }));
    sends(100);
    // Its RECEIPT waits until both messages are stored.
    frame('COMMIT', { transaction: 'tx', receipt: 'commit' });
    // A group member: its RECEIPT waits for the join.
    frame('SUBSCRIBE', { id: 'member', destination: `/group/readers/${TOPIC}`, ack: 'client-individual', receipt: 'group' });
    sends(100);
    frame('UNSUBSCRIBE', { id: 'tail', receipt: 'unsubscribed' });
    sends(50);
    frame('DISCONNECT', { receipt: 'bye' });
    client.write(Buffer.concat(frames));

    await client.closedByServer(50_000);
    expect(client.all('ERROR')).toEqual([]);
    expect(receiptIds(client)).toEqual(expected);
    expect(await storedCount(httpBase(server.httpPort), TOPIC)).toBe(next + 2);
  });

  it('sends the ERROR a frame causes after the RECEIPTs of the frames before it, and handles nothing after it', { timeout: 60_000 }, async () => {
    const server = await start();
    const client = await RawStompClient.session(server.stompPort);
    const frames: Buffer[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 500; i++) {
      frames.push(send(i));
      expected.push(`r-${i}`);
    }
    // Refused on the spot, while the 500 SENDs before it are still being stored.
    frames.push(encodeFrame('SEND', { destination: '/group/g/nowhere', receipt: 'bad' }, 'x'));
    for (let i = 500; i < 600; i++) frames.push(send(i));
    client.write(Buffer.concat(frames));

    const error = await client.next('ERROR', 50_000);
    expect(error.headers['receipt-id']).toBe('bad');
    expect(error.headers.code).toBe('invalid-destination');
    await client.closedByServer();
    // Every frame before the bad one was answered, in order, before the ERROR; nothing after it.
    expect(receiptIds(client)).toEqual(expected);
    expect(client.frames.at(-1)?.command).toBe('ERROR');
    // The frames after the bad one were not published: a barrier on the same topic sees 500 before it.
    const barrier = await RawStompClient.session(server.stompPort);
    barrier.send('SEND', { destination: `/producer/publish/${TOPIC}`, receipt: 'barrier' }, JSON.stringify({ messageID: 'barrier', message: 0 }));
    await barrier.receipt('barrier');
    expect(await storedCount(httpBase(server.httpPort), TOPIC)).toBe(501);
    barrier.close();
  });
});

import stompit from 'stompit';
import { describe, expect, it } from 'vitest';
import type { Client } from '@stomp/stompjs';
import { canonical, collect, connectStompJs, publishWithReceipt, RawStompClient, readTopic, subscribed, until } from '../helpers/clients.js';
import { httpBase, storedCount } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

/** Publishes one message from a new connection and waits for its RECEIPT. */
async function publishOne(server: TestServer, topic: string, messageID: string, key = 'k'): Promise<void> {
  const client = await RawStompClient.session(server.stompPort);
  client.send('SEND', { destination: `/producer/publish/${topic}`, receipt: 'stored' }, canonical(messageID, key, messageID));
  await client.receipt('stored');
  client.close();
}

function connectStompit(port: number): Promise<stompit.Client> {
  return new Promise((resolve, reject) =>
    stompit.connect({ host: '127.0.0.1', port, connectHeaders: { host: '/', 'accept-version': '1.2' } }, (error, client) =>
      error ? reject(error) : resolve(client),
    ),
  );
}

describe('STOMP over TCP with stompit', () => {
  const servers = useServers();

  it('publishes with receipts and reads back through a tail subscription', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 2 } });
    const client = await connectStompit(server.stompPort);
    client.on('error', () => {});
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const frame = client.send({ destination: '/producer/publish/tcp', receipt: 'unused' }, { onReceipt: resolve, onError: reject });
        frame.write(canonical(`tcp-${i}`, 'same-key', `payload ${i}`));
        frame.end();
      });
    }
    const bodies: string[] = [];
    client.subscribe({ destination: '/topic/tcp', id: 'tail', ack: 'client-individual', from: 'earliest' }, (_error, message) => {
      message.readString('utf-8', (_e, body) => {
        bodies.push(body!);
        client.ack(message);
      });
    });
    await until('5 messages', () => bodies.length === 5);
    expect(bodies.map((b) => JSON.parse(b).messageID)).toEqual(['tcp-0', 'tcp-1', 'tcp-2', 'tcp-3', 'tcp-4']);
    await new Promise<void>((resolve) => client.disconnect(() => resolve()));
  });
});

describe('transactions', () => {
  const servers = useServers();

  it('publishes nothing before COMMIT and everything at COMMIT', async () => {
    // One partition: the log holds everything in the order it was stored.
    const server = await servers.start({ topics: { definitions: [{ name: 'tx', partitions: 1 }] } });
    const producer = await connectStompJs(server.wsUrl);
    const watcher = await connectStompJs(server.wsUrl);
    const seen = await subscribed(watcher, '/topic/tx');
    const tx = producer.begin('tx-1');
    for (let i = 0; i < 10; i++)
      producer.publish({ destination: '/producer/publish/tx', body: canonical(`t${i}`, `k${i}`, i), headers: { transaction: tx.id } });
    // The barrier: a publish outside the transaction, after its SENDs on the same connection. Had
    // they been published at once, they would be in the log before it.
    await publishWithReceipt(producer, '/producer/publish/tx', canonical('outside', 'k', 'x'));
    await until('the message outside the transaction', () => seen.length >= 1);
    expect(seen.map((m) => m.headers['message-id'])).toEqual(['outside']);
    expect(await storedCount(httpBase(server.httpPort), 'tx')).toBe(1);
    producer.commit(tx.id);
    await until('the committed messages', () => seen.length >= 11);
    expect(seen.map((m) => m.headers['message-id'])).toEqual(['outside', ...Array.from({ length: 10 }, (_, i) => `t${i}`)]);
    await Promise.all([producer.deactivate(), watcher.deactivate()]);
  });

  it('sends the COMMIT receipt only after every message is stored, and ABORT discards', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 3 } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('BEGIN', { transaction: 'a' });
    client.send('SEND', { destination: '/producer/publish/txr', transaction: 'a' }, canonical('x1', 'k1', 1));
    client.send('SEND', { destination: '/producer/publish/txr', transaction: 'a' }, canonical('x2', 'k2', 2));
    client.send('ABORT', { transaction: 'a', receipt: 'aborted' });
    await client.receipt('aborted');
    client.send('BEGIN', { transaction: 'b' });
    for (let i = 0; i < 6; i++) client.send('SEND', { destination: '/producer/publish/txr', transaction: 'b' }, canonical(`y${i}`, `k${i}`, i));
    client.send('COMMIT', { transaction: 'b', receipt: 'committed' });
    await client.receipt('committed');
    // Read at once after the receipt: every message is stored by then; the aborted ones never are.
    const stored = await readTopic(server, 'txr');
    expect(stored.map((m) => m.messageId).sort()).toEqual(['y0', 'y1', 'y2', 'y3', 'y4', 'y5']);
    client.close();
  });

  it('publishes nothing from a transaction with one bad message', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'atomic', partitions: 1 }] } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('BEGIN', { transaction: 'c' });
    client.send('SEND', { destination: '/producer/publish/atomic', transaction: 'c' }, canonical('good', 'k', 1));
    client.send('SEND', { destination: '/producer/publish/atomic', transaction: 'c' }, '{"messageID":"bad"');
    client.send('COMMIT', { transaction: 'c', receipt: 'c1' });
    const error = await client.next('ERROR');
    expect(error.headers.message).toMatch(/transaction "c" was not committed, nothing was published/);
    expect(error.headers['receipt-id']).toBe('c1');
    // The barrier: a later publish to the same (one-partition) topic is the only message stored.
    await publishOne(server, 'atomic', 'later');
    expect((await readTopic(server, 'atomic')).map((m) => m.messageId)).toEqual(['later']);
  });

  it('discards an open transaction when the client disconnects', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'gone', partitions: 1 }] } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('BEGIN', { transaction: 'd' });
    client.send('SEND', { destination: '/producer/publish/gone', transaction: 'd' }, canonical('lost', 'k', 1));
    client.send('DISCONNECT', { receipt: 'bye' });
    await client.receipt('bye');
    await client.closedByServer();
    await publishOne(server, 'gone', 'later');
    expect((await readTopic(server, 'gone')).map((m) => m.messageId)).toEqual(['later']);
  });
});

describe('DISCONNECT', () => {
  const servers = useServers();

  it('sends its receipt after every earlier publish is stored', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'd', partitions: 2 }] } });
    const client = await RawStompClient.session(server.stompPort);
    for (let i = 0; i < 200; i++) client.send('SEND', { destination: '/producer/publish/d' }, canonical(`m${i}`, `k${i}`, i));
    client.send('DISCONNECT', { receipt: 'done' });
    await client.receipt('done');
    // Asked at once after the receipt, not waited for.
    expect(await storedCount(httpBase(server.httpPort), 'd')).toBe(200);
    await client.closedByServer();
  });
});

describe('live tail subscriptions on /topic/<topic>', () => {
  const servers = useServers();

  /**
   * The barrier for "nothing more arrived": another subscription on the same connection, started
   * now, reads the whole topic (auto ack, no window). A subscription that was going to send more
   * had read the same log earlier, so it would have sent it on this connection before these.
   */
  async function readEverythingAgain(client: Client, topic: string, count: number): Promise<void> {
    const again = collect(client, `/topic/${topic}`, { from: 'earliest', id: `again-${Math.random().toString(36).slice(2)}` });
    await until(`the whole of ${topic} again`, () => again.length >= count);
  }

  async function seed(url: string, topic: string, count: number): Promise<void> {
    const client = await connectStompJs(url);
    for (let i = 0; i < count - 1; i++) client.publish({ destination: `/producer/publish/${topic}`, body: canonical(`m${i}`, 'k', i, 1000 + i) });
    await publishWithReceipt(client, `/producer/publish/${topic}`, canonical(`m${count - 1}`, 'k', count - 1, 1000 + count - 1));
    await client.deactivate();
  }

  it('streams from now by default, to every subscriber (fan-out)', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'live', partitions: 1 }] } });
    await seed(server.wsUrl, 'live', 3);
    const a = await connectStompJs(server.wsUrl);
    const b = await connectStompJs(server.wsUrl);
    // The RECEIPT comes once the start offsets are known: from then on, what is published arrives.
    const aMessages = await subscribed(a, '/topic/live');
    const bMessages = await subscribed(b, '/topic/live');
    const producer = await connectStompJs(server.wsUrl);
    await publishWithReceipt(producer, '/producer/publish/live', canonical('new-1', 'x', 'fresh'));
    await until('new-1 at both', () => aMessages.length >= 1 && bMessages.length >= 1);
    // One partition: the three seeded messages would have come before new-1.
    expect(aMessages.map((m) => m.headers['message-id'])).toEqual(['new-1']);
    expect(bMessages.map((m) => m.headers['message-id'])).toEqual(['new-1']);
    expect(aMessages[0]!.headers.offset).toBe('3');
    await Promise.all([a.deactivate(), b.deactivate(), producer.deactivate()]);
  });

  it('starts from earliest, an offset, or a timestamp, and narrows to one partition', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'replay', partitions: 1 }] } });
    await seed(server.wsUrl, 'replay', 10);
    const client = await connectStompJs(server.wsUrl);
    const all = collect(client, '/topic/replay', { from: 'earliest' });
    const fromOffset = collect(client, '/topic/replay', { from: 'offset:7' });
    const fromTime = collect(client, '/topic/replay', { from: 'timestamp:1004', partition: '0' });
    await until('every subscription to reach the end', () => all.length >= 10 && fromOffset.length >= 3 && fromTime.length >= 6);
    expect([all.length, fromOffset.length, fromTime.length]).toEqual([10, 3, 6]);
    expect(all.map((m) => Number(m.headers.offset))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(fromOffset.map((m) => m.headers.offset)).toEqual(['7', '8', '9']);
    expect(fromTime[0]!.headers.offset).toBe('4');
    await client.deactivate();
  });

  it('stops at prefetch-count unacknowledged messages in client-individual mode, and goes on after ACKs', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'window', partitions: 1 }] } });
    await seed(server.wsUrl, 'window', 20);
    const client = await connectStompJs(server.wsUrl);
    const messages = collect(client, '/topic/window', { from: 'earliest', ack: 'client-individual', 'prefetch-count': '5' });
    await until('5 messages', () => messages.length >= 5);
    await readEverythingAgain(client, 'window', 20);
    expect(messages.length).toBe(5);
    messages[0]!.ack();
    messages[1]!.ack();
    await until('7 messages', () => messages.length >= 7);
    await readEverythingAgain(client, 'window', 20);
    expect(messages.map((m) => Number(m.headers.offset))).toEqual([0, 1, 2, 3, 4, 5, 6]);
    await client.deactivate();
  });

  it('acknowledges cumulatively in client mode', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'cumulative', partitions: 1 }] } });
    await seed(server.wsUrl, 'cumulative', 12);
    const client = await connectStompJs(server.wsUrl);
    const messages = collect(client, '/topic/cumulative', { from: 'earliest', ack: 'client', 'prefetch-count': '4' });
    await until('4 messages', () => messages.length >= 4);
    await readEverythingAgain(client, 'cumulative', 12);
    expect(messages.length).toBe(4);
    // One ACK of the fourth covers the first three too: the window opens by four.
    messages[3]!.ack();
    await until('8 messages', () => messages.length >= 8);
    await readEverythingAgain(client, 'cumulative', 12);
    expect(messages.length).toBe(8);
    messages[7]!.nack();
    await until('12 messages', () => messages.length >= 12);
    expect(messages.map((m) => Number(m.headers.offset))).toEqual(Array.from({ length: 12 }, (_, i) => i));
    await client.deactivate();
  });

  it('stops delivering after UNSUBSCRIBE', async () => {
    // A raw client: stompjs itself drops frames for a subscription it has unsubscribed, which
    // would hide frames the server should not have sent.
    const server = await servers.start({ topics: { definitions: [{ name: 'unsub', partitions: 1 }] } });
    const client = await RawStompClient.session(server.stompPort);
    const delivered = (id: string) =>
      client
        .all('MESSAGE')
        .filter((f) => f.headers.subscription === id)
        .map((f) => f.headers['message-id']);
    client.send('SUBSCRIBE', { id: 'tail', destination: '/topic/unsub', receipt: 'sub' });
    await client.receipt('sub');
    await publishOne(server, 'unsub', 'one');
    await until('"one"', () => delivered('tail').length >= 1);
    client.send('UNSUBSCRIBE', { id: 'tail', receipt: 'unsub' });
    await client.receipt('unsub');
    await publishOne(server, 'unsub', 'two');
    // The barrier: a new subscription on the same connection, after "two" was stored, reads it.
    client.send('SUBSCRIBE', { id: 'again', destination: '/topic/unsub', from: 'earliest' });
    await until('"two" on the new subscription', () => delivered('again').length >= 2);
    expect(delivered('again')).toEqual(['one', 'two']);
    expect(delivered('tail')).toEqual(['one']);
    client.close();
  });

  it('sends stompjs an ERROR it can read before the WebSocket closes', async () => {
    const server = await servers.start({ stomp: { maxFrameBytes: 2048 } });
    const client = await connectStompJs(server.wsUrl);
    client.publish({ destination: '/producer/publish/t', body: 'z'.repeat(5000), headers: { key: 'k' } });
    const error = await until('the ERROR', () => client.errors[0]);
    expect(error.headers.message).toMatch(/exceeds the limit of 2048 \(stomp.maxFrameBytes\)/);
    await client.deactivate();
  });
});

import stompit from 'stompit';
import { describe, expect, it } from 'vitest';
import { canonical, collect, connectStompJs, publishWithReceipt, RawStompClient, waitFor } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

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
    client.subscribe({ destination: '/topic/tcp', id: 'tail', ack: 'client-individual', from: 'earliest' }, (error, message) => {
      message.readString('utf-8', (_e, body) => {
        bodies.push(body!);
        client.ack(message);
      });
    });
    await waitFor(() => bodies.length === 5 || undefined);
    expect(bodies.map((b) => JSON.parse(b).messageID)).toEqual(['tcp-0', 'tcp-1', 'tcp-2', 'tcp-3', 'tcp-4']);
    await new Promise<void>((resolve) => client.disconnect(() => resolve()));
  });
});

describe('transactions', () => {
  const servers = useServers();

  it('publishes nothing before COMMIT and everything at COMMIT', async () => {
    const server = await servers.start();
    const producer = await connectStompJs(server.wsUrl);
    const watcher = await connectStompJs(server.wsUrl);
    const seen = collect(watcher, '/topic/tx');
    await waitFor(() => server.broker.topic('tx'));
    const tx = producer.begin('tx-1');
    for (let i = 0; i < 10; i++) producer.publish({ destination: '/producer/publish/tx', body: canonical(`t${i}`, `k${i}`, i), headers: { transaction: tx.id } });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBe(0);
    producer.commit(tx.id);
    await waitFor(() => seen.length === 10 || undefined);
    expect(seen.map((m) => m.headers['message-id']).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `t${i}`).sort());
    await Promise.all([producer.deactivate(), watcher.deactivate()]);
  });

  it('sends the COMMIT receipt only after every message is stored, and ABORT discards', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 3 } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('BEGIN', { transaction: 'a' });
    client.send('SEND', { destination: '/producer/publish/txr', transaction: 'a' }, canonical('x1', 'k1', 1));
    client.send('SEND', { destination: '/producer/publish/txr', transaction: 'a' }, canonical('x2', 'k2', 2));
    client.send('ABORT', { transaction: 'a', receipt: 'aborted' });
    await client.next('RECEIPT');
    client.send('BEGIN', { transaction: 'b' });
    for (let i = 0; i < 6; i++) client.send('SEND', { destination: '/producer/publish/txr', transaction: 'b' }, canonical(`y${i}`, `k${i}`, i));
    client.send('COMMIT', { transaction: 'b', receipt: 'committed' });
    await waitFor(() => client.frames.find((f) => f.headers['receipt-id'] === 'committed'));
    const topic = server.broker.topic('txr')!;
    const ends = await Promise.all(topic.partitionIds.map((_, p) => server.broker.offsets(topic, p)));
    expect(ends.reduce((sum, o) => sum + o.logEndOffset, 0)).toBe(6);
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
    const topic = server.broker.topic('atomic')!;
    expect((await server.broker.offsets(topic, 0)).logEndOffset).toBe(0);
  });

  it('discards an open transaction when the client disconnects', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'gone', partitions: 1 }] } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('BEGIN', { transaction: 'd' });
    client.send('SEND', { destination: '/producer/publish/gone', transaction: 'd' }, canonical('lost', 'k', 1));
    client.send('DISCONNECT', { receipt: 'bye' });
    await client.next('RECEIPT');
    await client.closedByServer();
    const topic = server.broker.topic('gone')!;
    expect((await server.broker.offsets(topic, 0)).logEndOffset).toBe(0);
  });
});

describe('DISCONNECT', () => {
  const servers = useServers();

  it('sends its receipt after every earlier publish is stored', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'd', partitions: 2 }] } });
    const client = await RawStompClient.session(server.stompPort);
    for (let i = 0; i < 200; i++) client.send('SEND', { destination: '/producer/publish/d' }, canonical(`m${i}`, `k${i}`, i));
    client.send('DISCONNECT', { receipt: 'done' });
    expect((await client.next('RECEIPT')).headers['receipt-id']).toBe('done');
    const topic = server.broker.topic('d')!;
    const ends = await Promise.all([0, 1].map((p) => server.broker.offsets(topic, p)));
    expect(ends[0].logEndOffset + ends[1].logEndOffset).toBe(200);
    await client.closedByServer();
  });
});

describe('live tail subscriptions on /topic/<topic>', () => {
  const servers = useServers();

  async function seed(url: string, topic: string, count: number): Promise<void> {
    const client = await connectStompJs(url);
    for (let i = 0; i < count - 1; i++) client.publish({ destination: `/producer/publish/${topic}`, body: canonical(`m${i}`, 'k', i, 1000 + i) });
    await publishWithReceipt(client, `/producer/publish/${topic}`, canonical(`m${count - 1}`, 'k', count - 1, 1000 + count - 1));
    await client.deactivate();
  }

  it('streams from now by default, to every subscriber (fan-out)', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'live', partitions: 2 }] } });
    await seed(server.wsUrl, 'live', 3);
    const a = await connectStompJs(server.wsUrl);
    const b = await connectStompJs(server.wsUrl);
    const aMessages = collect(a, '/topic/live', { receipt: 'sa' });
    const bMessages = collect(b, '/topic/live');
    await new Promise((r) => setTimeout(r, 200));
    const producer = await connectStompJs(server.wsUrl);
    await publishWithReceipt(producer, '/producer/publish/live', canonical('new-1', 'x', 'fresh'));
    await waitFor(() => aMessages.length === 1 && bMessages.length === 1);
    expect(aMessages[0].headers['message-id']).toBe('new-1');
    expect(bMessages[0].headers['message-id']).toBe('new-1');
    await Promise.all([a.deactivate(), b.deactivate(), producer.deactivate()]);
  });

  it('starts from earliest, an offset, or a timestamp, and narrows to one partition', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'replay', partitions: 1 }] } });
    await seed(server.wsUrl, 'replay', 10);
    const client = await connectStompJs(server.wsUrl);
    const all = collect(client, '/topic/replay', { from: 'earliest' });
    const fromOffset = collect(client, '/topic/replay', { from: 'offset:7' });
    const fromTime = collect(client, '/topic/replay', { from: 'timestamp:1004', partition: '0' });
    await waitFor(() => all.length === 10 && fromOffset.length === 3 && fromTime.length === 6);
    expect(all.map((m) => Number(m.headers.offset))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(fromOffset.map((m) => m.headers.offset)).toEqual(['7', '8', '9']);
    expect(fromTime[0].headers.offset).toBe('4');
    await client.deactivate();
  });

  it('stops at prefetch-count unacknowledged messages in client-individual mode, and goes on after ACKs', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'window', partitions: 1 }] } });
    await seed(server.wsUrl, 'window', 20);
    const client = await connectStompJs(server.wsUrl);
    const messages = collect(client, '/topic/window', { from: 'earliest', ack: 'client-individual', 'prefetch-count': '5' });
    await waitFor(() => messages.length === 5 || undefined);
    await new Promise((r) => setTimeout(r, 200));
    expect(messages.length).toBe(5);
    messages[0].ack();
    messages[1].ack();
    await waitFor(() => messages.length === 7 || undefined);
    await new Promise((r) => setTimeout(r, 100));
    expect(messages.length).toBe(7);
    await client.deactivate();
  });

  it('acknowledges cumulatively in client mode', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'cumulative', partitions: 1 }] } });
    await seed(server.wsUrl, 'cumulative', 12);
    const client = await connectStompJs(server.wsUrl);
    const messages = collect(client, '/topic/cumulative', { from: 'earliest', ack: 'client', 'prefetch-count': '4' });
    await waitFor(() => messages.length === 4 || undefined);
    messages[3].ack();
    await waitFor(() => messages.length === 8 || undefined);
    messages[7].nack();
    await waitFor(() => messages.length === 12 || undefined);
    expect(messages.map((m) => Number(m.headers.offset))).toEqual(Array.from({ length: 12 }, (_, i) => i));
    await client.deactivate();
  });

  it('stops delivering after UNSUBSCRIBE', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'unsub', partitions: 1 }] } });
    const client = await connectStompJs(server.wsUrl);
    const messages: string[] = [];
    const subscription = client.subscribe('/topic/unsub', (m) => messages.push(m.body), { receipt: 'sub' });
    await new Promise((r) => setTimeout(r, 100));
    await publishWithReceipt(client, '/producer/publish/unsub', canonical('one', 'k', 1));
    await waitFor(() => messages.length === 1 || undefined);
    subscription.unsubscribe();
    await publishWithReceipt(client, '/producer/publish/unsub', canonical('two', 'k', 2));
    await new Promise((r) => setTimeout(r, 200));
    expect(messages.length).toBe(1);
    await client.deactivate();
  });

  it('sends stompjs an ERROR it can read before the WebSocket closes', async () => {
    const server = await servers.start({ stomp: { maxFrameBytes: 2048 } });
    const client = await connectStompJs(server.wsUrl);
    client.publish({ destination: '/producer/publish/t', body: 'z'.repeat(5000), headers: { key: 'k' } });
    const error = await waitFor(() => client.errors[0]);
    expect(error.headers.message).toMatch(/exceeds the limit of 2048/);
    await client.deactivate();
  });
});

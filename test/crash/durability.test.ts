import { describe, expect, it } from 'vitest';
import { forEachRecord } from '../../src/broker/index.js';
import { canonical, RawStompClient, waitFor } from '../helpers/clients.js';
import { exited, useChildServers } from '../helpers/child-server.js';
import { useServers, type TestServer } from '../helpers/server.js';

interface Ack {
  messageID: string;
  status: 'ACK' | 'FAILED';
  partition: number;
  offset: number;
  retriable?: boolean;
}

function acknowledgments(client: RawStompClient): Ack[] {
  return client.frames.filter((f) => f.command === 'MESSAGE').map((f) => JSON.parse(f.body.toString()) as Ack);
}

/** Every record of a topic, as messageID by partition and offset. */
async function readTopic(server: TestServer, name: string): Promise<Map<string, Array<{ partition: number; offset: number }>>> {
  const topic = server.broker.topic(name)!;
  const found = new Map<string, Array<{ partition: number; offset: number }>>();
  for (let partition = 0; partition < topic.partitions; partition++) {
    const { logEndOffset } = await server.broker.offsets(topic, partition);
    let offset = 0;
    while (offset < logEndOffset) {
      const result = await server.broker.read(topic, partition, offset, 1024 * 1024);
      if (result.batches === null) break;
      forEachRecord(result.batches, offset, (record) => {
        const list = found.get(record.messageId!) ?? [];
        list.push({ partition, offset: record.offset });
        found.set(record.messageId!, list);
        offset = record.offset + 1;
      });
    }
  }
  return found;
}

function expectAckedStoredOnce(acks: Ack[], stored: Map<string, Array<{ partition: number; offset: number }>>): void {
  const acked = acks.filter((a) => a.status === 'ACK');
  expect(acked.length).toBeGreaterThan(0);
  for (const ack of acked) {
    expect(stored.get(ack.messageID), `message ${ack.messageID}`).toEqual([{ partition: ack.partition, offset: ack.offset }]);
  }
}

describe('crash safety', () => {
  const servers = useServers();
  const startChild = useChildServers();

  it('keeps every acknowledged message, exactly once at its offset, across kill -9 under load', async () => {
    const dataDir = servers.tempDir();
    const child = await startChild(dataDir);
    const producer = await RawStompClient.session(child.stompPort);
    producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/crash', receipt: 'subscribed' });
    await producer.next('RECEIPT');
    let sent = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 200; i++, sent++) producer.send('SEND', { destination: '/producer/publish/crash' }, canonical(`m-${sent}`, `key-${sent % 17}`, 'x'.repeat(100)));
    }, 2);
    await waitFor(() => acknowledgments(producer).length >= 3000 || undefined, 20_000, '3000 acknowledgments');
    clearInterval(pump);
    // A last burst, so that the kill surely lands with publishes in flight.
    for (let i = 0; i < 20_000; i++, sent++) producer.send('SEND', { destination: '/producer/publish/crash' }, canonical(`m-${sent}`, `key-${sent % 17}`, 'x'.repeat(100)));
    child.process.kill('SIGKILL');
    await exited(child.process);
    const acks = acknowledgments(producer);
    producer.close();
    expect(sent).toBeGreaterThan(acks.length);

    const restarted = await servers.start({}, dataDir);
    const stored = await readTopic(restarted, 'crash');
    expectAckedStoredOnce(acks, stored);
    for (const [id, places] of stored) expect(places.length, `message ${id}`).toBe(1);
  });

  it('fails in-flight publishes retriably when a worker thread dies, restarts it, and loses nothing acknowledged', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'chaos', partitions: 4 }] } });
    const producer = await RawStompClient.session(server.stompPort);
    producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/chaos', receipt: 'subscribed' });
    await producer.next('RECEIPT');
    const total = 40_000;
    let sent = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 100 && sent < total; i++, sent++) producer.send('SEND', { destination: '/producer/publish/chaos' }, canonical(`c-${sent}`, `key-${sent}`, 'y'.repeat(50)));
      if (sent >= total) clearInterval(pump);
    }, 1);
    await waitFor(() => acknowledgments(producer).length >= 2000 || undefined, 20_000, 'first acknowledgments');
    // Strike while appends are in flight to the worker; a reply already on its way can win the
    // race against terminate(), so strike again (at most a few times) until one is caught.
    for (let strike = 0; strike < 10 && sent < total; strike++) {
      while (server.broker.pendingRequests(0) === 0) await new Promise((r) => setImmediate(r));
      await server.broker.killWorker(0);
      await new Promise((r) => setTimeout(r, 50));
      if (acknowledgments(producer).some((a) => a.status === 'FAILED')) break;
    }
    await waitFor(() => acknowledgments(producer).length === total || undefined, 30_000, 'an outcome for every message');
    const acks = acknowledgments(producer);
    expect(new Set(acks.map((a) => a.messageID)).size).toBe(total);
    const failed = acks.filter((a) => a.status === 'FAILED');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((a) => a.retriable === true)).toBe(true);
    const stored = await readTopic(server, 'chaos');
    expectAckedStoredOnce(acks, stored);
    // The restarted worker takes publishes again.
    producer.send('SEND', { destination: '/producer/publish/chaos', receipt: 'after' }, canonical('after-restart', 'key-0', 'z'));
    await waitFor(() => producer.frames.find((f) => f.headers['receipt-id'] === 'after'));
    expect(producer.closed).toBe(false);
    producer.close();
  });
});

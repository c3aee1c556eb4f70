import { describe, expect, it } from 'vitest';
import { canonical, RawStompClient, readTopic, until, type StoredMessage } from '../helpers/clients.js';
import { exited, useChildServers } from '../helpers/child-server.js';
import { httpBase, topicOffsets, type PartitionOffsets } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';

interface Ack {
  messageID: string;
  status: 'ACK' | 'FAILED';
  partition: number;
  offset: number;
  retriable?: boolean;
}

/** The acknowledgments a producer has received, parsed as they come (not all again at every look). */
class Acknowledgments {
  readonly list: Ack[] = [];
  readonly ids = new Set<string>();
  private seen = 0;
  constructor(private readonly client: RawStompClient) {}

  /** Every acknowledgment received so far. */
  get all(): readonly Ack[] {
    const frames = this.client.all('MESSAGE');
    for (; this.seen < frames.length; this.seen++) {
      const ack = JSON.parse(frames[this.seen]!.body.toString()) as Ack;
      this.list.push(ack);
      this.ids.add(ack.messageID);
    }
    return this.list;
  }
}

/**
 * What is stored is exactly what should be, in both directions:
 * - every acknowledged messageID is stored exactly once, at the partition and offset of its acknowledgment;
 * - every stored messageID is one that was published (none invented), and none is stored twice;
 * - each partition's offsets are dense, from its start to its end offset, with nothing missing.
 */
function expectStoredExactly(acks: readonly Ack[], published: ReadonlySet<string>, stored: StoredMessage[], partitions: PartitionOffsets[]): void {
  const places = new Map<string, string[]>();
  for (const m of stored) places.set(m.messageId, [...(places.get(m.messageId) ?? []), `${m.partition}/${m.offset}`]);

  const acked = acks.filter((a) => a.status === 'ACK');
  expect(acked.length).toBeGreaterThan(0);
  const misplaced = acked
    .map((a) => ({ id: a.messageID, acknowledgedAt: `${a.partition}/${a.offset}`, storedAt: places.get(a.messageID) ?? [] }))
    .filter((m) => m.storedAt.length !== 1 || m.storedAt[0] !== m.acknowledgedAt);
  expect(misplaced.slice(0, 10), `${misplaced.length} acknowledged messages not stored exactly once at their place`).toEqual([]);

  const invented = [...places.keys()].filter((id) => !published.has(id));
  expect(invented.slice(0, 10), `${invented.length} stored messages that were never published`).toEqual([]);
  const doubled = [...places].filter(([, at]) => at.length > 1);
  expect(doubled.slice(0, 10), `${doubled.length} messages stored more than once`).toEqual([]);

  for (const { partition, logStartOffset, logEndOffset } of partitions) {
    const offsets = stored
      .filter((m) => m.partition === partition)
      .map((m) => m.offset)
      .sort((a, b) => a - b);
    const dense = offsets.length === logEndOffset - logStartOffset && offsets.every((offset, i) => offset === logStartOffset + i);
    expect(dense, `partition ${partition}: ${offsets.length} records for offsets ${logStartOffset} to ${logEndOffset - 1}`).toBe(true);
  }
}

/** Within a key (one partition), the stored order is the publish order: the numbers in `<prefix><n>` rise with the offset. */
function expectKeyOrder(stored: StoredMessage[], keyOf: (n: number) => string): void {
  const byKey = new Map<string, number[]>();
  for (const m of [...stored].sort((a, b) => a.partition - b.partition || a.offset - b.offset)) {
    const n = Number(m.messageId.replace(/^\D+-/, ''));
    if (!Number.isInteger(n)) continue;
    byKey.set(keyOf(n), [...(byKey.get(keyOf(n)) ?? []), n]);
  }
  for (const [key, numbers] of byKey) expect(numbers, `order within ${key}`).toEqual([...numbers].sort((a, b) => a - b));
}

describe('crash safety', () => {
  const servers = useServers();
  const startChild = useChildServers();

  it('keeps every acknowledged message, exactly once at its offset, across kill -9 under load, and invents nothing', { timeout: 120_000 }, async () => {
    const dataDir = servers.tempDir();
    const child = await startChild(dataDir);
    const producer = await RawStompClient.session(child.stompPort);
    const acks = new Acknowledgments(producer);
    producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/crash', receipt: 'subscribed' });
    await producer.receipt('subscribed');
    const published = new Set<string>();
    const keyOf = (n: number) => `key-${n % 17}`;
    let sent = 0;
    const publish = (): void => {
      const id = `m-${sent}`;
      published.add(id);
      producer.send('SEND', { destination: '/producer/publish/crash' }, canonical(id, keyOf(sent), 'x'.repeat(100)));
      sent++;
    };
    const pump = setInterval(() => {
      for (let i = 0; i < 200; i++) publish();
    }, 2);
    try {
      await until('3000 acknowledgments', () => acks.all.length >= 3000, 60_000);
    } finally {
      clearInterval(pump);
    }
    // A last burst, so that the kill surely lands with publishes in flight.
    for (let i = 0; i < 20_000; i++) publish();
    child.process.kill('SIGKILL');
    await exited(child.process);
    const received = [...acks.all];
    producer.close();
    expect(sent).toBeGreaterThan(received.length);
    expect(received.every((a) => a.status === 'ACK')).toBe(true);

    const restarted = await servers.start({}, dataDir);
    const partitions = (await topicOffsets(httpBase(restarted.httpPort), 'crash'))!;
    const stored = await readTopic(restarted, 'crash', 60_000);
    expectStoredExactly(received, published, stored, partitions);
    expectKeyOrder(stored, keyOf);
  });

  it('fails in-flight publishes retriably when a worker thread dies, restarts it, and loses nothing acknowledged', { timeout: 120_000 }, async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'chaos', partitions: 4 }] } });
    const producer = await RawStompClient.session(server.stompPort);
    const acks = new Acknowledgments(producer);
    producer.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/chaos', receipt: 'subscribed' });
    await producer.receipt('subscribed');
    const total = 40_000;
    const published = new Set<string>();
    let sent = 0;
    const pump = setInterval(() => {
      for (let i = 0; i < 100 && sent < total; i++, sent++) {
        published.add(`c-${sent}`);
        producer.send('SEND', { destination: '/producer/publish/chaos' }, canonical(`c-${sent}`, `key-${sent}`, 'y'.repeat(50)));
      }
      if (sent >= total) clearInterval(pump);
    }, 1);
    try {
      await until('first acknowledgments', () => acks.all.length >= 2000, 60_000);
      // Strike while appends are in flight to the worker; a reply already on its way can win the
      // race against terminate(), so strike again (at most a few times) until one is caught.
      for (let strike = 1; strike <= 10 && sent < total; strike++) {
        await until('appends in flight to worker 0', () => server.broker.pendingRequests(0) > 0);
        const sentBefore = sent;
        await server.broker.killWorker(0);
        // Every message sent before the strike has its outcome: then we know whether one failed.
        await until(
          `an outcome for the ${sentBefore} messages sent before strike ${strike}`,
          () => {
            void acks.all;
            for (let i = 0; i < sentBefore; i++) if (!acks.ids.has(`c-${i}`)) return false;
            return true;
          },
          60_000,
        );
        if (acks.all.some((a) => a.status === 'FAILED')) break;
      }
      await until('an outcome for every message', () => acks.all.length >= total, 60_000);
    } finally {
      clearInterval(pump);
    }
    const received = [...acks.all];
    expect(received).toHaveLength(total);
    expect(acks.ids.size).toBe(total);
    const failed = received.filter((a) => a.status === 'FAILED');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((a) => a.retriable === true)).toBe(true);

    // The restarted worker takes publishes again.
    published.add('after-restart');
    producer.send('SEND', { destination: '/producer/publish/chaos', receipt: 'after' }, canonical('after-restart', 'key-0', 'z'));
    await producer.receipt('after');
    expect(producer.closed).toBe(false);
    producer.close();

    const partitions = (await topicOffsets(httpBase(server.httpPort), 'chaos'))!;
    const stored = await readTopic(server, 'chaos', 60_000);
    expectStoredExactly(received, published, stored, partitions);
  });
});

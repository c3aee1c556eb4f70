import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Acknowledgments, type Ack } from '../helpers/acknowledgments.js';
import { useChildServers } from '../helpers/child-server.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { useServers, type TestServer } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

/** Node 20 has no Map.groupBy. */
function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  return groups;
}

/** A producer over raw STOMP, subscribed to its acknowledgments for one topic. */
async function producerFor(server: TestServer, topic: string): Promise<{ client: RawStompClient; acks: () => Ack[] }> {
  const client = await RawStompClient.session(server.stompPort);
  client.send('SUBSCRIBE', { id: 'acks', destination: `/topic/acknowledgment/${topic}`, receipt: 'subscribed' });
  await client.receipt('subscribed');
  return { client, acks: () => client.all('MESSAGE').map((frame) => JSON.parse(frame.body.toString()) as Ack) };
}

function send(client: RawStompClient, topic: string, messageId: string, key: string | null, receipt?: string): void {
  client.send(
    'SEND',
    { destination: `/producer/publish/${topic}`, ...(receipt === undefined ? {} : { receipt }) },
    canonical(messageId, key, `body of ${messageId}`),
  );
}

describe('idempotent publishing (deduplication by messageID)', () => {
  const servers = useServers();
  const startChild = useChildServers();

  it('stores a resent messageID once and answers the resend with the first copy’s partition and offset, keyed and keyless', async () => {
    // Round-robin: a keyless resend would go to another partition if it were stored.
    const server = await servers.start({ topics: { defaultPartitions: 4, keylessPartitioner: 'round-robin' } });
    const { client, acks } = await producerFor(server, 'orders');
    for (let i = 0; i < 8; i++) send(client, 'orders', `keyless-${i}`, null);
    for (let i = 0; i < 8; i++) send(client, 'orders', `keyed-${i}`, `customer-${i % 3}`, i === 7 ? 'first' : undefined);
    await client.receipt('first');
    // Acknowledgments are not held back behind RECEIPTs, nor a RECEIPT behind the acknowledgments of frames without one.
    await until('16 acknowledgments', () => acks().length === 16);
    const first = new Map(acks().map((ack) => [ack.messageID, ack]));
    expect(first.size).toBe(16);

    for (let i = 0; i < 8; i++) send(client, 'orders', `keyless-${i}`, null);
    for (let i = 0; i < 8; i++) send(client, 'orders', `keyed-${i}`, `customer-${i % 3}`, i === 7 ? 'again' : undefined);
    await client.receipt('again');
    await until('32 acknowledgments', () => acks().length === 32);
    const resent = acks().slice(16);
    for (const ack of resent) {
      const original = first.get(ack.messageID)!;
      expect(ack).toMatchObject({ status: 'ACK', duplicate: true, partition: original.partition, offset: original.offset });
    }
    expect([...first.values()].every((ack) => ack.duplicate === undefined)).toBe(true);

    const stored = await readTopic(server, 'orders');
    expect(stored.map((m) => m.messageId).sort()).toEqual([...first.keys()].sort());
    client.close();
  });

  it('stores once when copies arrive together, before the first is stored, and answers every copy', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 4, keylessPartitioner: 'round-robin' } });
    const { client, acks } = await producerFor(server, 'burst');
    // One write: all of them are read in one turn, while the first is still on its way to disk.
    const frames = [];
    for (let copy = 0; copy < 5; copy++)
      for (let i = 0; i < 20; i++) frames.push(`SEND\ndestination:/producer/publish/burst\n\n${canonical(`m-${i}`, null, copy)}\0`);
    client.write(frames.join(''));
    await until('100 acknowledgments', () => acks().length === 100);
    const byId = groupBy(acks(), (ack) => ack.messageID);
    for (const [id, copies] of byId) {
      expect(new Set(copies.map((ack) => `${ack.partition}/${ack.offset}`)).size, id).toBe(1);
      expect(copies.filter((ack) => ack.duplicate === true).length, id).toBe(4);
    }
    const stored = await readTopic(server, 'burst');
    expect(stored.length).toBe(20);
    // The copy stored is the first one sent.
    expect(stored.every((m) => JSON.parse(m.body.toString()).message === 0)).toBe(true);
    client.close();
  });

  it('recognises a resend after a restart: the window is rebuilt from the log', async () => {
    const first = await servers.start({ topics: { defaultPartitions: 4, keylessPartitioner: 'round-robin' } });
    const dataDir = first.dataDir;
    const before = await producerFor(first, 'restart');
    for (let i = 0; i < 50; i++) send(before.client, 'restart', `r-${i}`, i % 2 === 0 ? null : `k-${i}`, i === 49 ? 'stored' : undefined);
    await before.client.receipt('stored');
    await until('50 acknowledgments', () => before.acks().length === 50);
    const places = new Map(before.acks().map((ack) => [ack.messageID, `${ack.partition}/${ack.offset}`]));
    before.client.close();
    await first.close();

    const second = await servers.start({ topics: { defaultPartitions: 4, keylessPartitioner: 'round-robin' } }, dataDir);
    const after = await producerFor(second, 'restart');
    for (let i = 0; i < 50; i++) send(after.client, 'restart', `r-${i}`, i % 2 === 0 ? null : `k-${i}`);
    send(after.client, 'restart', 'new-one', null, 'resent');
    await after.client.receipt('resent');
    await until('51 acknowledgments', () => after.acks().length === 51);
    for (const ack of after.acks().slice(0, 50)) {
      expect(ack.duplicate, ack.messageID).toBe(true);
      expect(`${ack.partition}/${ack.offset}`).toBe(places.get(ack.messageID));
    }
    expect(after.acks()[50]!.duplicate).toBeUndefined();
    expect((await readTopic(second, 'restart')).length).toBe(51);
    after.client.close();
  });

  it('stores a messageID again once its window is over, and never a message whose ID the broker made up', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 2, deduplicationWindowMs: 300 } });
    const { client, acks } = await producerFor(server, 'window');
    send(client, 'window', 'w-1', 'k', 'one');
    await client.receipt('one');
    send(client, 'window', 'w-1', 'k', 'two');
    await client.receipt('two');
    expect(acks()[1]).toMatchObject({ duplicate: true, offset: acks()[0]!.offset });
    // Resend until the window is over: the first resend after it is stored.
    let receipts = 0;
    await until('a resend stored as new', () => {
      const last = acks().at(-1)!;
      if (acks().length > 2 && last.duplicate === undefined) return true;
      // Three RECEIPTs so far: the subscription's, 'one' and 'two'.
      if (client.all('RECEIPT').length === 3 + receipts) send(client, 'window', 'w-1', 'k', `again-${++receipts}`);
      return false;
    });
    expect(acks().at(-1)!.offset).toBe(acks()[0]!.offset + 1);

    // No messageID: each SEND is a new message, though the bodies are the same.
    for (let i = 0; i < 3; i++) client.send('SEND', { destination: '/producer/publish/window', key: 'k' }, 'same body');
    await until('3 more acknowledgments', () => acks().filter((ack) => !ack.messageID.startsWith('w-')).length === 3);
    expect((await readTopic(server, 'window')).length).toBe(5);
    client.close();
  });

  it('stores every copy when the topic’s window is 0', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 1, definitions: [{ name: 'plain', partitions: 1, deduplicationWindowMs: 0 }] } });
    const { client, acks } = await producerFor(server, 'plain');
    send(client, 'plain', 'same', null);
    send(client, 'plain', 'same', null, 'done');
    await client.receipt('done');
    await until('2 acknowledgments', () => acks().length === 2);
    expect(acks().map((ack) => ack.offset)).toEqual([0, 1]);
    expect((await readTopic(server, 'plain')).length).toBe(2);
    client.close();
  });

  // Broker worker threads dying mid-append: the embedded store's (cluster mode's lost connection is test/cluster/failover.test.ts).
  it.skipIf(TESTING_POSTGRES)(
    'stores each message once when broker workers die again and again between writing a batch and answering it, and the producer resends what was not acknowledged',
    async () => {
      const dataDir = servers.tempDir();
      const configFile = path.join(dataDir, 'rill.json');
      fs.writeFileSync(
        configFile,
        JSON.stringify({ topics: { defaultPartitions: 8, keylessPartitioner: 'round-robin' }, brokers: { restartBackoffMs: 10, restartBackoffMaxMs: 50 } }),
      );
      // Every life of every worker ends at its 40th fsync: after a group commit's batches were written, before they are answered.
      const child = await startChild(path.join(dataDir, 'data'), { args: ['--config', configFile], env: { RILL_FAILPOINTS: 'fsync=exit-at-40' } });
      const client = await RawStompClient.session(child.stompPort);
      client.send('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/workers', receipt: 'subscribed' });
      await client.receipt('subscribed');
      const acks = new Acknowledgments(client);
      const keyOf = (n: number): string | null => (n % 3 === 0 ? `k-${n % 7}` : null);
      const publish = (n: number): void => send(client, 'workers', `x-${n}`, keyOf(n));
      const total = 3000;
      for (let n = 0; n < total; n += 50) {
        for (let i = n; i < n + 50; i++) publish(i);
        await until(`answers for the first ${n + 50}`, () => acks.all.length >= n + 50, 30_000);
      }
      // Resend whatever was not acknowledged, with a few that were, until every message is.
      for (let round = 0; acks.all && acks.acknowledged.size < total; round++) {
        expect(round, 'rounds of resending').toBeLessThan(50);
        const missing = Array.from({ length: total }, (_, n) => n).filter((n) => !acks.acknowledged.has(`x-${n}`));
        const expected = acks.all.length + missing.length + 20;
        for (const n of [...missing, ...Array.from({ length: 20 }, (_, i) => i * 7)]) publish(n);
        await until(`${expected} answers`, () => acks.all.length >= expected, 30_000);
      }
      const deaths = child.logs.join('').split('broker worker stopped').length - 1;
      expect(deaths, 'worker deaths').toBeGreaterThan(2);
      expect(acks.all.filter((ack) => ack.status === 'FAILED').length, 'publishes refused while a worker was down').toBeGreaterThan(0);

      await vi.waitFor(
        async () => {
          if ((await fetch(`http://127.0.0.1:${child.httpPort}/health`)).status !== 200) throw new Error('a worker is down');
        },
        { timeout: 15_000, interval: 20 },
      );
      const stored = await readTopic(child, 'workers', 30_000);
      const copies = groupBy(stored, (m) => m.messageId);
      expect([...copies.values()].filter((list) => list.length > 1).map((list) => list[0]!.messageId)).toEqual([]);
      expect(stored.length).toBe(total);
      // Every acknowledgment, first or duplicate, names where the one copy is.
      const place = new Map(stored.map((m) => [m.messageId, `${m.partition}/${m.offset}`]));
      const wrong = acks.all.filter((ack) => ack.status === 'ACK' && place.get(ack.messageID) !== `${ack.partition}/${ack.offset}`);
      expect(wrong.slice(0, 5)).toEqual([]);
      expect(acks.all.some((ack) => ack.duplicate === true)).toBe(true);
      client.close();
    },
  );
});

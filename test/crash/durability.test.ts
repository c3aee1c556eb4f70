import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BATCH_HEADER_BYTES, readBatchInfo } from '../../src/storage/index.js';
import { Acknowledgments, expectStoredExactly, type Ack } from '../helpers/acknowledgments.js';
import { canonical, RawStompClient, readTopic, until, type StoredMessage } from '../helpers/clients.js';
import { exited, useChildServers } from '../helpers/child-server.js';
import { call, httpBase, topicOffsets } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

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

/**
 * What a power cut does to segment files whose writes were never fsynced: every partition is cut
 * back to its recovery point (what a checkpoint made durable), and to nothing without one.
 * Returns the bytes removed.
 */
function loseWritesPastRecoveryPoints(topicsDir: string): number {
  let removed = 0;
  for (const topic of fs.readdirSync(topicsDir)) {
    for (const partition of fs.readdirSync(path.join(topicsDir, topic))) {
      const dir = path.join(topicsDir, topic, partition);
      if (!/^\d+$/.test(partition) || !fs.statSync(dir).isDirectory()) continue;
      let point = 0;
      try {
        point = (JSON.parse(fs.readFileSync(path.join(dir, 'recovery-point.json'), 'utf8')) as { offset: number }).offset;
      } catch {
        // no checkpoint yet: the segments lose everything
      }
      for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.log'))) {
        const logFile = path.join(dir, file);
        const bytes = fs.readFileSync(logFile);
        let position = 0;
        while (position + BATCH_HEADER_BYTES <= bytes.length && readBatchInfo(bytes, position).baseOffset < point)
          position += readBatchInfo(bytes, position).size;
        removed += bytes.length - position;
        fs.truncateSync(logFile, position);
      }
    }
  }
  return removed;
}

describe('crash safety', () => {
  const servers = useServers();
  const startChild = useChildServers();

  /**
   * Publishes keyed messages as fast as the producer can until 3000 are acknowledged, then a last
   * burst, and kills the broker with SIGKILL while it is in flight. Returns what was acknowledged.
   */
  async function publishThenKill(
    child: Awaited<ReturnType<typeof startChild>>,
    topic: string,
    andUntil?: { what: string; holds: (acks: readonly Ack[]) => boolean },
  ) {
    const producer = await RawStompClient.session(child.stompPort);
    const acks = new Acknowledgments(producer);
    producer.send('SUBSCRIBE', { id: 'acks', destination: `/topic/acknowledgment/${topic}`, receipt: 'subscribed' });
    await producer.receipt('subscribed');
    const published = new Set<string>();
    let sent = 0;
    const publish = (): void => {
      const id = `m-${sent}`;
      published.add(id);
      producer.send('SEND', { destination: `/producer/publish/${topic}` }, canonical(id, keyOf(sent), 'x'.repeat(100)));
      sent++;
    };
    const pump = setInterval(() => {
      for (let i = 0; i < 200; i++) publish();
    }, 2);
    try {
      await until('3000 acknowledgments', () => acks.all.length >= 3000, 60_000);
      if (andUntil !== undefined) await until(andUntil.what, () => andUntil.holds(acks.all), 60_000);
    } finally {
      clearInterval(pump);
    }
    // A last burst, so that the kill surely lands with publishes in flight. With a condition to
    // hold at the kill, a short one: a long one would give the server time to change what held.
    const burst = andUntil === undefined ? 20_000 : 500;
    for (let i = 0; i < burst; i++) publish();
    child.process.kill('SIGKILL');
    await exited(child.process);
    const received = [...acks.all];
    producer.close();
    expect(sent).toBeGreaterThan(received.length);
    expect(received.every((a) => a.status === 'ACK')).toBe(true);
    return { received, published };
  }
  const keyOf = (n: number) => `key-${n % 17}`;

  it('keeps every acknowledged message, exactly once at its offset, across kill -9 under load, and invents nothing', { timeout: 120_000 }, async () => {
    const dataDir = servers.tempDir();
    const { received, published } = await publishThenKill(await startChild(dataDir), 'crash');

    const restarted = await servers.start({}, dataDir);
    const partitions = (await topicOffsets(httpBase(restarted.httpPort), 'crash'))!;
    const stored = await readTopic(restarted, 'crash', 60_000);
    expectStoredExactly(received, published, stored, partitions);
    expectKeyOrder(stored, keyOf);
  });

  // Restarted with the same number of workers, each replays its own journal as it starts; with
  // another number, a journal's partitions may belong to another worker, and the front replays them all.
  for (const workers of [2, 1]) {
    // The journal and segment files: the embedded store's.
    it.skipIf(TESTING_POSTGRES)(
      `keeps every acknowledged message when a power cut loses every segment write not yet checkpointed: the journal gives them back (restart with ${workers} worker${workers === 1 ? '' : 's'})`,
      {
        timeout: 120_000,
      },
      async () => {
        const dataDir = servers.tempDir();
        // Small journal files: the run rolls, checkpoints and reuses several of them before the kill.
        const configFile = path.join(dataDir, 'small-journal.json');
        fs.writeFileSync(configFile, JSON.stringify({ storage: { journal: { fileBytes: 1024 * 1024 } } }));
        /** Each partition's recovery point (0 without one). */
        const recoveryPoints = (): number[] => {
          const dir = path.join(dataDir, 'topics', 'cut');
          if (!fs.existsSync(dir)) return [];
          return fs
            .readdirSync(dir)
            .filter((p) => /^\d+$/.test(p))
            .sort((a, b) => Number(a) - Number(b))
            .map((p) => path.join(dir, p, 'recovery-point.json'))
            .map((file) => (fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { offset: number }).offset : 0));
        };
        const spares = (): string[] =>
          fs.existsSync(path.join(dataDir, 'journal'))
            ? fs
                .readdirSync(path.join(dataDir, 'journal'))
                .flatMap((w) => (/^\d+$/.test(w) ? fs.readdirSync(path.join(dataDir, 'journal', w)) : []))
                .filter((f) => f.endsWith('.spare'))
            : [];
        // Publishing goes on until the run has checkpointed (a recovery point past 0) and let go of a
        // journal file (a spare, to be reused), so that the cut below meets both.
        const { received, published } = await publishThenKill(await startChild(dataDir, { args: ['--config', configFile] }), 'cut', {
          what: 'a checkpoint, a spare journal file, and acknowledgments past the recovery points',
          holds: (acks) => {
            const points = recoveryPoints();
            return Math.max(0, ...points) > 0 && spares().length > 0 && acks.filter((a) => a.offset >= (points[a.partition] ?? 0)).length >= 500;
          },
        });
        const points = recoveryPoints();
        expect(Math.max(0, ...points)).toBeGreaterThan(0);
        // Acknowledged messages past their partition's recovery point: the cut takes them out of the segments.
        expect(received.filter((a) => a.offset >= (points[a.partition] ?? 0)).length).toBeGreaterThan(0);
        const lost = loseWritesPastRecoveryPoints(path.join(dataDir, 'topics'));
        // The cut must have taken acknowledged messages out of the segments, or this proves nothing.
        expect(lost).toBeGreaterThan(0);

        const restarted = await servers.start({ brokers: { workers } }, dataDir);
        const partitions = (await topicOffsets(httpBase(restarted.httpPort), 'cut'))!;
        const stored = await readTopic(restarted, 'cut', 60_000);
        expectStoredExactly(received, published, stored, partitions);
        expectKeyOrder(stored, keyOf);
      },
    );
  }

  // The journal: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'never gives a topic deleted and created again under its name the old topic’s batches, after kill -9 and a power cut',
    { timeout: 60_000 },
    async () => {
      const dataDir = servers.tempDir();
      const child = await startChild(dataDir);
      const base = httpBase(child.httpPort);
      await call(base, 'POST', '/v1/topics', { name: 'reborn', partitions: 1 });
      const producer = await RawStompClient.session(child.stompPort);
      for (let i = 0; i < 10; i++) producer.send('SEND', { destination: '/producer/publish/reborn', receipt: `old-${i}` }, canonical(`old-${i}`, 'k', 'old'));
      await until('10 receipts', () => producer.all('RECEIPT').length >= 10);
      expect((await call(base, 'DELETE', '/v1/topics/reborn')).status).toBe(200);
      await call(base, 'POST', '/v1/topics', { name: 'reborn', partitions: 1 });
      for (let i = 0; i < 3; i++) producer.send('SEND', { destination: '/producer/publish/reborn', receipt: `new-${i}` }, canonical(`new-${i}`, 'k', 'new'));
      await until('13 receipts', () => producer.all('RECEIPT').length >= 13);
      expect(producer.all('ERROR')).toEqual([]);
      producer.close();
      child.process.kill('SIGKILL');
      await exited(child.process);
      // The old topic's records are still in the journal (it had no reason to let go of its file):
      // replayed into the new topic's directory, they would come back as its messages.
      loseWritesPastRecoveryPoints(path.join(dataDir, 'topics'));

      const restarted = await servers.start({}, dataDir);
      const stored = await readTopic(restarted, 'reborn');
      expect(stored.map((m) => m.messageId)).toEqual(['new-0', 'new-1', 'new-2']);
      expect(stored.map((m) => m.offset)).toEqual([0, 1, 2]);
    },
  );

  // Broker worker threads: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'fails in-flight publishes retriably when a worker thread dies, restarts it, and loses nothing acknowledged',
    { timeout: 120_000 },
    async () => {
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
    },
  );
});

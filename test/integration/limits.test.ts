import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { hashKey } from '../../src/broker/index.js';
import { canonical, RawStompClient, readTopic, until, WAIT } from '../helpers/clients.js';
import { exited, runRill, useChildServers } from '../helpers/child-server.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

interface Ack {
  messageID: string;
  status: 'ACK' | 'FAILED';
  topic: string;
  partition: number | null;
  code?: string;
  reason?: string;
  retriable?: boolean;
}

/** The acknowledgments (ACK or FAILED) a producer has received so far. */
function acknowledgments(client: RawStompClient): Ack[] {
  return client.all('MESSAGE').map((frame) => JSON.parse(frame.body.toString()) as Ack);
}

/** Subscribes to the acknowledgments of each topic, and waits until the server has them all. */
async function subscribeAcknowledgments(client: RawStompClient, topics: string[]): Promise<void> {
  for (const [i, topic] of topics.entries()) client.send('SUBSCRIBE', { id: `acks-${i}`, destination: `/topic/acknowledgment/${topic}` });
  client.send('SUBSCRIBE', { id: 'acks-last', destination: '/topic/acknowledgment/unused', receipt: 'acks-subscribed' });
  await client.receipt('acks-subscribed');
}

/** The broker worker that owns a partition: murmur3 of the topic name plus the partition, modulo the workers (src/broker/front/topic-registry.ts). */
function workerOf(topic: string, partition: number, workers: number): number {
  return (hashKey(topic) + partition) % workers;
}

/** A partition of `topic` (of `partitions`) owned by `worker` of 2. */
function partitionOn(topic: string, partitions: number, worker: number): number {
  const partition = Array.from({ length: partitions }, (_, p) => p).find((p) => workerOf(topic, p, 2) === worker);
  if (partition === undefined) throw new Error(`no partition of ${topic} on worker ${worker}`);
  return partition;
}

/** Publishes one message to a partition and waits for its acknowledgment (the producer subscribes to the topic's acknowledgments). */
async function publishTo(client: RawStompClient, topic: string, partition: number, id: string): Promise<Ack> {
  const before = client.all('MESSAGE').length;
  client.send('SEND', { destination: `/producer/publish/${topic}`, partition: String(partition) }, canonical(id, null, 'x'));
  return until(`the acknowledgment of ${id}`, () =>
    acknowledgments(client)
      .slice(before)
      .find((ack) => ack.messageID === id),
  );
}

async function health(server: TestServer): Promise<{ status: number; body: { status: string; workers?: Array<Record<string, unknown>> } }> {
  return call(httpBase(server.httpPort), 'GET', '/health');
}

describe('limits on topics', () => {
  const servers = useServers();

  it('refuses topics a connection auto-creates past its quota (rate-limited), while another producer keeps every message acknowledged', async () => {
    const server = await servers.start({ limits: { autoCreatePerMinute: 5 }, topics: { definitions: [{ name: 'steady', partitions: 2 }] } });
    const flooder = await RawStompClient.session(server.stompPort);
    const floodTopics = Array.from({ length: 30 }, (_, i) => `flood-${i}`);
    await subscribeAcknowledgments(flooder, floodTopics);
    const producer = await RawStompClient.session(server.stompPort);
    await subscribeAcknowledgments(producer, ['steady']);

    let sent = 0;
    for (const topic of floodTopics) {
      flooder.send('SEND', { destination: `/producer/publish/${topic}` }, canonical(`${topic}-m`, null, 'flood'));
      for (let i = 0; i < 20; i++, sent++) producer.send('SEND', { destination: '/producer/publish/steady' }, canonical(`s-${sent}`, `k-${sent}`, 'steady'));
    }
    await until('an outcome for every flood message', () => acknowledgments(flooder).length >= floodTopics.length);
    await until('an outcome for every steady message', () => acknowledgments(producer).length >= sent);

    const flood = acknowledgments(flooder);
    const created = flood.filter((ack) => ack.status === 'ACK');
    const refused = flood.filter((ack) => ack.status === 'FAILED');
    // A burst of 5, and at most one more if the test took over 12 s (5 a minute refill one every 12 s).
    expect(created.length).toBeGreaterThanOrEqual(5);
    expect(created.length).toBeLessThanOrEqual(6);
    expect(refused.length).toBe(floodTopics.length - created.length);
    for (const ack of refused) {
      expect(ack).toMatchObject({ code: 'rate-limited', retriable: true });
      expect(ack.reason).toContain('limits.autoCreatePerMinute');
    }
    const { body } = await call(httpBase(server.httpPort), 'GET', '/v1/topics');
    const floodCreated = (body.topics as Array<{ name: string }>).filter((t) => t.name.startsWith('flood-')).map((t) => t.name);
    expect(floodCreated.sort()).toEqual(created.map((ack) => ack.topic).sort());

    const steady = acknowledgments(producer);
    expect(steady).toHaveLength(600);
    expect(steady.filter((ack) => ack.status !== 'ACK')).toEqual([]);
    expect(flooder.closed).toBe(false);
    flooder.close();
    producer.close();
  });

  it('refuses a topic past limits.maxTopics and partitions past limits.maxPartitions, naming the key', async () => {
    // The embedded store keeps committed offsets in the topic __consumer_offsets (one partition); PostgreSQL in a table.
    const internal = TESTING_POSTGRES ? 0 : 1;
    const server = await servers.start({
      limits: { maxTopics: 2 + internal, maxPartitions: 9 + internal },
      topics: { defaultPartitions: 2, definitions: [{ name: 'a', partitions: 2 }] },
    });
    // "a" (and __consumer_offsets) take all but one: one more fits.
    const client = await RawStompClient.session(server.stompPort);
    client.send('SEND', { destination: '/producer/publish/b', receipt: 'b' }, canonical('b-1', null, 'fits'));
    await client.receipt('b');
    client.send('SEND', { destination: '/producer/publish/c', receipt: 'c' }, canonical('c-1', null, 'does not fit'));
    const error = await client.next('ERROR');
    expect(error.headers.code).toBe('limit-reached');
    expect(error.headers.message).toContain(`limits.maxTopics (${2 + internal})`);
    await client.closedByServer();

    // (1 of __consumer_offsets) + 2 (a) + 2 (b) partitions: a may grow by 5 more, not 6.
    const base = httpBase(server.httpPort);
    const growth = await call(base, 'POST', '/v1/topics/a/partitions', { partitions: 8 });
    expect(growth.status).toBe(409);
    expect(growth.body.error).toMatchObject({ code: 'limit-reached', retriable: false });
    expect(growth.body.error.message).toContain(`limits.maxPartitions (${9 + internal})`);
    expect((await call(base, 'POST', '/v1/topics/a/partitions', { partitions: 7 })).body).toEqual({ name: 'a', partitions: 7 });

    // Existing topics go on taking messages.
    const again = await RawStompClient.session(server.stompPort);
    again.send('SEND', { destination: '/producer/publish/a', receipt: 'a' }, canonical('a-1', null, 'still'));
    await again.receipt('a');
    again.close();
  });

  it('refuses to start when the topics defined in the configuration pass limits.maxTopics, naming the key', { timeout: 60_000 }, async () => {
    const dir = servers.tempDir();
    const configFile = path.join(dir, 'rill.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        limits: { maxTopics: 2 },
        topics: { definitions: ['x', 'y', 'z'].map((name) => ({ name, partitions: 1 })) },
        log: { level: 'silent' },
      }),
    );
    const run = await runRill(
      ['start', '--config', configFile, '--data-dir', path.join(dir, 'data'), '--host', '127.0.0.1', '--http-port', '0', '--stomp-port', '0'],
      {
        timeoutMs: 30_000,
      },
    );
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/cannot create topic "z".*limits\.maxTopics \(2\)/);
  });
});

describe('broker worker restarts and /health', () => {
  const servers = useServers();

  // Broker worker threads and their segment files: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'restarts a worker killed again and again with growing delays; /health is 503 while it is down or crash-looping, 200 once it has recovered',
    async () => {
      const server = await servers.start({ brokers: { workers: 2, restartBackoffMs: 150, restartBackoffMaxMs: 600 } });
      await vi.waitFor(async () => expect(await health(server)).toEqual({ status: 200, body: { status: 'ok' } }), WAIT);

      const downs: Array<{ backoffMs: unknown; restarts: unknown; reason: unknown; downForMs: number }> = [];
      for (let kill = 1; kill <= 3; kill++) {
        const killedAt = Date.now();
        await server.broker.killWorker(0);
        const down = server.broker.health();
        expect(down.status).toBe('unhealthy');
        const entry = down.status === 'unhealthy' ? down.workers.find((w) => w.worker === 0) : undefined;
        expect(entry).toMatchObject({ status: 'down', reason: 'killed' });
        // Back once the worker has reopened its partitions: neither down nor restarting.
        await until(`worker 0 up again after kill ${kill}`, () => {
          const now = server.broker.health();
          return now.status === 'ok' || !now.workers.some((w) => w.worker === 0 && (w.status === 'down' || w.status === 'restarting'));
        });
        downs.push({ backoffMs: entry?.backoffMs, restarts: entry?.restarts, reason: entry?.reason, downForMs: Date.now() - killedAt });
      }
      expect(downs.map((d) => d.backoffMs)).toEqual([150, 300, 600]);
      expect(downs.map((d) => d.restarts)).toEqual([1, 2, 3]);
      for (const { backoffMs, downForMs } of downs) expect(downForMs).toBeGreaterThanOrEqual(backoffMs as number);

      // Three restarts in a row: crash-looping, though up, until it has stayed up for 10 x 600 ms.
      const looping = await health(server);
      expect(looping.status).toBe(503);
      expect(looping.body.status).toBe('unhealthy');
      expect(looping.body.workers).toEqual([expect.objectContaining({ worker: 0, status: 'crash-looping', reason: 'killed', restarts: 3 })]);
      await vi.waitFor(async () => expect(await health(server)).toEqual({ status: 200, body: { status: 'ok' } }), { ...WAIT, timeout: 20_000 });

      const producer = await RawStompClient.session(server.stompPort);
      await subscribeAcknowledgments(producer, ['recovered']);
      const partition = 0;
      expect(await publishTo(producer, 'recovered', partition, 'after-recovery')).toMatchObject({ status: 'ACK' });
      producer.close();
    },
  );

  it.skipIf(TESTING_POSTGRES)(
    'fails publishes to a worker that is down at once and retriably, serves the other worker meanwhile, and takes them again after the restart',
    async () => {
      const server = await servers.start({
        brokers: { workers: 2, restartBackoffMs: 3000, restartBackoffMaxMs: 3000 },
        topics: { definitions: [{ name: 'orders', partitions: 4 }] },
      });
      const onDead = partitionOn('orders', 4, 0);
      const onLive = partitionOn('orders', 4, 1);
      const producer = await RawStompClient.session(server.stompPort);
      await subscribeAcknowledgments(producer, ['orders']);
      expect(await publishTo(producer, 'orders', onDead, 'before')).toMatchObject({ status: 'ACK' });

      await server.broker.killWorker(0);
      const down = await health(server);
      expect(down.status).toBe(503);
      expect(down.body.workers).toEqual([expect.objectContaining({ worker: 0, status: 'down', reason: 'killed', backoffMs: 3000 })]);
      const failed = await publishTo(producer, 'orders', onDead, 'during');
      expect(failed).toMatchObject({ status: 'FAILED', code: 'unavailable', retriable: true });
      expect(failed.reason).toContain('broker worker 0 is down');
      expect(await publishTo(producer, 'orders', onLive, 'other-worker')).toMatchObject({ status: 'ACK' });
      // Reads of its partitions fail retriably too (HTTP answers the code's 503).
      const offsets = await call(httpBase(server.httpPort), 'GET', '/v1/topics/orders');
      expect(offsets.status).toBe(503);
      expect(offsets.body.error).toMatchObject({ code: 'unavailable', retriable: true });

      await vi.waitFor(async () => expect(await health(server)).toEqual({ status: 200, body: { status: 'ok' } }), WAIT);
      expect(await publishTo(producer, 'orders', onDead, 'after')).toMatchObject({ status: 'ACK' });
      expect(producer.closed).toBe(false);
      producer.close();
    },
  );

  it.skipIf(TESTING_POSTGRES)(
    'reports a partition that cannot be opened (topic and partition named in /health), retries with backoff, and recovers once it is repaired',
    async () => {
      const dataDir = servers.tempDir();
      // "orders" has a partition on each worker; the one on the worker without __consumer_offsets is damaged.
      const offsetsWorker = workerOf('__consumer_offsets', 0, 2);
      const damagedWorker = 1 - offsetsWorker;
      const damaged = partitionOn('orders', 4, damagedWorker);
      const topicDir = path.join(dataDir, 'topics', 'orders');
      fs.mkdirSync(topicDir, { recursive: true });
      fs.writeFileSync(path.join(topicDir, 'topic.json'), JSON.stringify({ v: 1, name: 'orders', partitions: 4, createdAt: 1 }));
      // A file where the partition's directory should be.
      fs.writeFileSync(path.join(topicDir, String(damaged)), 'not a directory');

      // The start-up does not die: the offsets topic's worker is fine.
      const server = await servers.start({ brokers: { workers: 2, restartBackoffMs: 100, restartBackoffMaxMs: 400 } }, dataDir);
      const reported = await vi.waitFor(async () => {
        const answer = await health(server);
        expect(answer.status).toBe(503);
        const entry = answer.body.workers?.find((w) => w.worker === damagedWorker);
        expect(entry?.reason).toContain(`could not open partition ${damaged} of topic orders`);
        return entry!;
      }, WAIT);
      expect(reported.reason).toMatch(/could not open partition \d+ of topic orders \(E[A-Z]+/);
      // Retried with backoff: the restarts in a row climb, their waits double up to the maximum.
      await until('a few restarts in a row', () => {
        const now = server.broker.health();
        return now.status === 'unhealthy' && now.workers.some((w) => w.worker === damagedWorker && (w.restarts as number) >= 3 && w.backoffMs === 400);
      });

      const producer = await RawStompClient.session(server.stompPort);
      await subscribeAcknowledgments(producer, ['orders']);
      const healthy = partitionOn('orders', 4, offsetsWorker);
      expect(await publishTo(producer, 'orders', healthy, 'on-the-good-worker')).toMatchObject({ status: 'ACK' });

      fs.rmSync(path.join(topicDir, String(damaged)));
      await vi.waitFor(async () => expect(await health(server)).toEqual({ status: 200, body: { status: 'ok' } }), { ...WAIT, timeout: 20_000 });
      expect(await publishTo(producer, 'orders', damaged, 'repaired')).toMatchObject({ status: 'ACK' });
      producer.close();
    },
  );
});

describe('open files under a low limit', () => {
  const servers = useServers();
  const startChild = useChildServers();

  /** Lines that say a thread ran out of descriptors or a worker died. */
  function troubles(logs: string[]): string[] {
    return logs.filter((line) => /\bE[MN]FILE\b|too many open files|broker worker stopped|could not open partition/.test(line));
  }

  /** The steady topic holds exactly `sent` (by messageID), each partition in offset order. */
  async function expectSteady(server: { httpPort: number; stompPort: number }, sent: string[]): Promise<void> {
    const stored = await readTopic(server, 'steady', 60_000);
    expect(stored.map((m) => m.messageId).sort()).toEqual([...sent].sort());
    for (const partition of [0, 1]) {
      const offsets = stored.filter((m) => m.partition === partition).map((m) => m.offset);
      expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i));
    }
    for (const message of stored) expect((JSON.parse(message.body.toString()) as { message: string }).message).toBe(`body of ${message.messageId} `.repeat(4));
  }

  // Segment files and their descriptor budget: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'under a 512-descriptor limit, a flood of auto-created topics never runs a worker out of descriptors; another producer keeps every message acknowledged, old segments read back right, and the broker starts again under the same limit',
    {
      timeout: 240_000,
    },
    async () => {
      const dir = servers.tempDir();
      const dataDir = path.join(dir, 'data');
      const configFile = path.join(dir, 'rill.json');
      fs.writeFileSync(
        configFile,
        JSON.stringify({
          topics: { defaultPartitions: 4, definitions: [{ name: 'steady', partitions: 2 }] },
          limits: { autoCreatePerMinute: 100_000 },
          // Small segments: every partition of steady rolls many times, so reads go to sealed segments.
          storage: { segmentBytes: 1024 },
          log: { level: 'info' },
        }),
      );
      const server = await startChild(dataDir, { args: ['--config', configFile], openFiles: 512 });
      // The caches of open segment files were fitted to the limit at start-up: (512 - 256 kept for connections - 2 x 4 journal files) / 3 threads.
      const fitted = server.logs.map((line) => JSON.parse(line.startsWith('{') ? line : '{}') as Record<string, unknown>).find((e) => e.openFileLimit === 512);
      expect(fitted, server.logs.join('\n')).toMatchObject({ level: 40, openFilesPerWorker: 82, workers: 2 });

      const producer = await RawStompClient.session(server.stompPort);
      await subscribeAcknowledgments(producer, ['steady']);
      const sent: string[] = [];
      const sendSteady = (count: number): void => {
        for (let i = 0; i < count; i++) {
          const id = `s-${sent.length}`;
          sent.push(id);
          producer.send('SEND', { destination: '/producer/publish/steady' }, canonical(id, `k-${sent.length % 7}`, `body of ${id} `.repeat(4)));
        }
      };
      // Old data first, in waves (a wave is a batch per partition): segments of steady fill and roll.
      for (let wave = 0; wave < 20; wave++) {
        sendSteady(10);
        await until(`the acknowledgments of wave ${wave}`, () => acknowledgments(producer).length >= sent.length);
      }

      // The process's descriptors, sampled while the flood runs.
      let most = 0;
      const sampler = setInterval(() => {
        try {
          most = Math.max(most, fs.readdirSync(`/proc/${server.process.pid}/fd`).length);
        } catch {
          // not Linux, or the process has gone
        }
      }, 20);
      const flooder = await RawStompClient.session(server.stompPort);
      const floodTopics = Array.from({ length: 200 }, (_, i) => `many-${i}`);
      await subscribeAcknowledgments(flooder, floodTopics);
      try {
        for (const topic of floodTopics) {
          flooder.send('SEND', { destination: `/producer/publish/${topic}` }, canonical(`${topic}-m`, null, 'flood'));
          sendSteady(2);
        }
        await until('an outcome for every flood message', () => acknowledgments(flooder).length >= floodTopics.length, 120_000);
        await until('an outcome for every steady message', () => acknowledgments(producer).length >= sent.length, 120_000);
      } finally {
        clearInterval(sampler);
      }
      // 200 topics of 4 partitions, 4 times what the old estimate of 3 descriptors a partition allowed: all created.
      expect(acknowledgments(flooder).filter((ack) => ack.status !== 'ACK')).toEqual([]);
      expect(acknowledgments(producer).filter((ack) => ack.status !== 'ACK')).toEqual([]);
      expect(acknowledgments(producer)).toHaveLength(sent.length);
      expect(most).toBeLessThan(512);
      expect((await call(httpBase(server.httpPort), 'GET', '/health')).body).toEqual({ status: 'ok' });
      expect(troubles(server.logs)).toEqual([]);
      // Old, sealed segments were evicted by the flood: read back from the start, every message is right.
      await expectSteady(server, sent);
      expect((await readTopic(server, 'many-0')).map((m) => m.messageId)).toEqual(['many-0-m']);
      flooder.close();
      producer.close();

      // Under the same limit the broker starts again after a crash (journals replayed), and after a clean stop, with every topic readable.
      server.process.kill('SIGKILL');
      await exited(server.process);
      const again = await startChild(dataDir, { args: ['--config', configFile], openFiles: 512 });
      const { body } = await call(httpBase(again.httpPort), 'GET', '/v1/topics');
      expect((body.topics as unknown[]).length).toBe(201);
      await expectSteady(again, sent);
      for (const topic of ['many-0', 'many-99', 'many-199']) expect((await readTopic(again, topic)).map((m) => m.messageId)).toEqual([`${topic}-m`]);
      expect((await call(httpBase(again.httpPort), 'GET', '/health')).body).toEqual({ status: 'ok' });
      again.process.kill('SIGTERM');
      await exited(again.process);
      expect(troubles(again.logs)).toEqual([]);

      const third = await startChild(dataDir, { args: ['--config', configFile], openFiles: 512 });
      await expectSteady(third, sent);
      expect((await readTopic(third, 'many-150')).map((m) => m.messageId)).toEqual(['many-150-m']);
      expect((await call(httpBase(third.httpPort), 'GET', '/health')).body).toEqual({ status: 'ok' });
      expect(troubles(third.logs)).toEqual([]);
    },
  );
});

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { call, httpBase } from '../helpers/http.js';
import { RawStompClient, readTopic, until } from '../helpers/clients.js';
import { useServers, type TestServer } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

/*
 * A real full disk: a small tmpfs mounted for the test (this needs root, as CI and the developers'
 * machines have; elsewhere the test is skipped and test/unit/storage/full-disk.test.ts covers the
 * same paths through the `write` failpoint).
 */

const MiB = 1024 * 1024;

function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    const probe = fs.mkdtempSync('/tmp/rill-mount-probe-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    fs.rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

interface Outcome {
  messageID: string;
  status: 'ACK' | 'FAILED';
  code?: string;
  retriable?: boolean;
  partition: number | null;
  offset?: number;
}

/** The body every message carries: its id repeated, so that a damaged body is seen. */
function body(id: string): string {
  return JSON.stringify({ messageID: id, key: null, message: `${id}:`.repeat(Math.ceil(1000 / (id.length + 1))).slice(0, 1000) });
}

/** A producer subscribed to its acknowledgments, that publishes in bounded bursts and parses outcomes as they come. */
class Producer {
  readonly outcomes = new Map<string, Outcome>();
  private parsed = 0;
  sent = 0;

  private constructor(readonly client: RawStompClient) {}

  static async connect(server: TestServer, topic: string): Promise<Producer> {
    const client = await RawStompClient.session(server.stompPort);
    client.send('SUBSCRIBE', { id: 'acks', destination: `/topic/acknowledgment/${topic}`, receipt: 'acks' });
    await client.receipt('acks');
    return new Producer(client);
  }

  poll(): Map<string, Outcome> {
    const frames = this.client.all('MESSAGE');
    for (; this.parsed < frames.length; this.parsed++) {
      const outcome = JSON.parse(frames[this.parsed]!.body.toString()) as Outcome;
      this.outcomes.set(outcome.messageID, outcome);
    }
    return this.outcomes;
  }

  /** Publishes `count` messages named `<prefix>-<n>` and waits for every outcome. */
  async publish(topic: string, prefix: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      this.client.send('SEND', { destination: `/producer/publish/${topic}`, 'content-type': 'application/json' }, body(`${prefix}-${i}`));
      this.sent++;
      if (i % 500 === 499) await until(`outcomes up to ${prefix}-${i}`, () => this.poll().has(`${prefix}-${i}`), 60_000);
    }
    await until(`an outcome for each of ${count} messages`, () => this.poll().size >= this.sent, 60_000);
  }

  with(status: 'ACK' | 'FAILED', prefix?: string): Outcome[] {
    return [...this.poll().values()].filter((o) => o.status === status && (prefix === undefined || o.messageID.startsWith(`${prefix}-`)));
  }
}

describe.skipIf(!canMount())('a full disk', () => {
  const { start } = useServers();
  const mounts: string[] = [];
  afterEach(() => {
    for (const mount of mounts.splice(0)) {
      execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
      fs.rmSync(mount, { recursive: true, force: true });
    }
  });

  /** A tmpfs of `sizeMiB` with a ballast file taking `ballastMiB` of it. */
  function smallDisk(sizeMiB: number, ballastMiB: number): { dataDir: string; ballast: string } {
    const mount = fs.mkdtempSync('/tmp/rill-full-disk-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', mount]);
    mounts.push(mount);
    const ballast = path.join(mount, 'ballast');
    fs.writeFileSync(ballast, Buffer.alloc(ballastMiB * MiB, 1));
    return { dataDir: path.join(mount, 'data'), ballast };
  }

  // Fills the data directory's disk: the embedded store's (cluster mode's disk is the database's).
  it.skipIf(TESTING_POSTGRES)(
    'refuses writes retriably while full, keeps serving reads, resumes by itself, and never corrupts or loses what it acknowledged',
    async () => {
      const { dataDir, ballast } = smallDisk(40, 20);
      const config = {
        topics: { definitions: [{ name: 'full', partitions: 4 }] },
        storage: { segmentBytes: 4 * MiB, freeSpaceReserveBytes: 0 },
      };
      let server = await start(config, dataDir);
      const producer = await Producer.connect(server, 'full');

      // About 20 MiB are free: 30,000 messages of 1 KiB cannot all fit.
      await producer.publish('full', 'before', 30_000);
      const failed = producer.with('FAILED', 'before');
      expect(producer.with('ACK', 'before').length).toBeGreaterThan(5_000);
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.every((f) => f.code === 'disk-full' && f.retriable === true)).toBe(true);
      expect(producer.client.closed).toBe(false);

      // Reads go on while the disk is full.
      const stored = await readTopic(server, 'full', 60_000);
      expect(stored.length).toBe(producer.with('ACK').length);

      // Space comes back: publishing resumes without a restart.
      fs.rmSync(ballast);
      await producer.publish('full', 'after', 2_000);
      expect(producer.with('ACK', 'after').length).toBe(2_000);
      producer.client.close();

      // Two restarts, then every acknowledged message is there once with its body intact, and nothing else.
      for (let restart = 0; restart < 2; restart++) {
        await server.close();
        server = await start(config, dataDir);
      }
      const final = await readTopic(server, 'full', 60_000);
      const acked = new Map(producer.with('ACK').map((a) => [a.messageID, a]));
      const seen = new Set<string>();
      for (const message of final) {
        expect(acked.has(message.messageId), `stored ${message.messageId} was not acknowledged`).toBe(true);
        expect(seen.has(message.messageId), `${message.messageId} stored twice`).toBe(false);
        seen.add(message.messageId);
        const ack = acked.get(message.messageId)!;
        expect(`${message.partition}/${message.offset}`).toBe(`${ack.partition}/${ack.offset}`);
        expect(message.body.toString()).toBe(body(message.messageId));
      }
      expect(seen.size).toBe(acked.size);
    },
  );

  it.skipIf(TESTING_POSTGRES)('keeps storage.freeSpaceReserveBytes for the offsets topic: groups still commit when data topics are refused', async () => {
    const { dataDir } = smallDisk(40, 20);
    const server = await start(
      {
        topics: { definitions: [{ name: 'reserve', partitions: 2 }] },
        storage: { segmentBytes: 2 * MiB, freeSpaceReserveBytes: 8 * MiB },
        coordinator: { sessionTimeoutMs: 60_000 },
      },
      dataDir,
    );
    const producer = await Producer.connect(server, 'reserve');
    await producer.publish('reserve', 'm', 20_000);
    const refused = producer.with('FAILED');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.code).toBe('disk-full');
    expect(fs.statfsSync(dataDir).bavail * fs.statfsSync(dataDir).bsize).toBeGreaterThan(4 * MiB);

    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/groups/g/members', { member: 'c1', topics: ['reserve'] })).status).toBe(200);
    const commit = await call(base, 'POST', '/v1/groups/g/members/c1/commit', { offsets: [{ topic: 'reserve', partition: 0, offset: 1 }] });
    expect(commit.status).toBe(200);
    const lag = await call(base, 'GET', '/v1/groups/g/lag');
    expect(lag.body.partitions.find((p: { partition: number }) => p.partition === 0).offset).toBe(1);
    producer.client.close();
  });
});

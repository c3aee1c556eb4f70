import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type HaMachine, type HaSet, missingPackages, roles, up } from '../../scripts/ha-cluster.mjs';
import { Acknowledgments, expectStoredExactly } from '../helpers/acknowledgments.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { httpBase, topicOffsets } from '../helpers/http.js';

const TOPIC = 'orders';
const TOTAL = 8000;
const idOf = (n: number): string => `m-${n}`;
const keyOf = (n: number): string | null => (n % 2 === 0 ? `key-${n % 13}` : null);

/**
 * A producer as the guarantees ask, over one Rill node at a time: what is refused (retriably) or
 * left unanswered by a node that went away is sent again, under the same messageID, through the
 * node it uses now.
 */
class ResendingProducer {
  private client: RawStompClient | null = null;
  private acks: Acknowledgments | null = null;
  private handled = 0;
  private readonly retry: number[] = [];
  private next = 0;
  readonly everyAck: Acknowledgments['list'] = [];
  readonly acknowledged = new Set<string>();
  private readonly pump: NodeJS.Timeout;

  constructor() {
    this.pump = setInterval(() => this.tick(), 5);
  }

  async use(machine: HaMachine): Promise<void> {
    this.leave();
    const client = await RawStompClient.session(machine.stompPort);
    const acks = new Acknowledgments(client);
    client.send('SUBSCRIBE', { id: 'acks', destination: `/topic/acknowledgment/${TOPIC}`, receipt: 'subscribed' });
    await client.receipt('subscribed');
    // What the node it used never answered goes again through this one.
    for (let n = 0; n < this.next; n++) if (!this.acknowledged.has(idOf(n)) && !this.retry.includes(n)) this.retry.push(n);
    this.client = client;
    this.acks = acks;
    this.handled = 0;
  }

  private leave(): void {
    this.client?.close();
    this.client = null;
    this.acks = null;
  }

  private tick(): void {
    const { client, acks } = this;
    if (client === null || acks === null || client.closed) return;
    const all = acks.all;
    for (; this.handled < all.length; this.handled++) {
      const ack = all[this.handled]!;
      this.everyAck.push(ack);
      if (ack.status === 'ACK') this.acknowledged.add(ack.messageID);
      else if (ack.retriable === true) this.retry.push(Number(ack.messageID.slice(2)));
      else throw new Error(`a refusal that is not retriable: ${JSON.stringify(ack)}`);
    }
    for (let i = 0; i < 40; i++) {
      const n = this.retry.shift() ?? (this.next < TOTAL ? this.next++ : undefined);
      if (n === undefined) return;
      if (this.acknowledged.has(idOf(n))) continue;
      client.send('SEND', { destination: `/producer/publish/${TOPIC}` }, canonical(idOf(n), keyOf(n), `payload ${n}`));
    }
  }

  close(): void {
    clearInterval(this.pump);
    this.leave();
  }
}

async function machineWith(set: HaSet, role: 'leader'): Promise<HaMachine> {
  const index = await until(
    `a Patroni ${role}`,
    async () => {
      const now = await roles(set);
      const found = now.indexOf(role);
      return found === -1 ? undefined : found + 1;
    },
    60_000,
  );
  return set.machines[index - 1]!;
}

/** Starts the set, runs `scenario` with a producer under load, then checks every acknowledged message is stored exactly once. */
async function underLoad(scenario: (set: HaSet, producer: ResendingProducer) => Promise<HaMachine>): Promise<void> {
  const missing = missingPackages();
  if (missing !== null) throw new Error(`npm run test:ha needs Debian packages: ${missing}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-ha-'));
  const set = await up(dir);
  const producer = new ResendingProducer();
  try {
    const through = await scenario(set, producer);
    await until(`all ${TOTAL} messages acknowledged`, () => producer.acknowledged.size === TOTAL, 120_000);
    producer.close();
    const stored = await readTopic(through, TOPIC, 60_000);
    const offsets = (await topicOffsets(httpBase(through.httpPort), TOPIC))!;
    expectStoredExactly(producer.everyAck, new Set(Array.from({ length: TOTAL }, (_, n) => idOf(n))), stored, offsets);
    expect(stored).toHaveLength(TOTAL);
    fs.rmSync(dir, { recursive: true, force: true });
  } finally {
    producer.close();
    await set.stop();
    // A failed run keeps the set's directory: every process's log is there.
    if (fs.existsSync(dir)) process.stderr.write(`ha: the logs of etcd, Patroni, PostgreSQL and Rill are in ${dir}\n`);
  }
}

/** Waits for `more` acknowledgments than there were when called; resolves to how long it took. */
async function writesResume(producer: ResendingProducer, what: string, timeoutMs: number): Promise<number> {
  const since = Date.now();
  const before = producer.acknowledged.size;
  await until(what, () => producer.acknowledged.size > before + 500, timeoutMs);
  return Date.now() - since;
}

describe('high availability: three Patroni-managed PostgreSQL in synchronous mode, three Rill nodes', () => {
  it("kill -9 of the leader's PostgreSQL under load: nothing acknowledged lost or stored twice, writes resume", async () => {
    await underLoad(async (set, producer) => {
      const leader = await machineWith(set, 'leader');
      const through = set.machines.find((m) => m !== leader)!;
      await producer.use(through);
      await until('1,000 acknowledgments', () => producer.acknowledged.size >= 1000, 60_000);
      set.kill(leader, 'postgres');
      const outage = await writesResume(producer, 'writes after the leader’s PostgreSQL died', 60_000);
      process.stdout.write(`ha: writes resumed ${outage} ms after the leader's PostgreSQL died\n`);
      expect(outage).toBeLessThan(30_000);
      return through;
    });
  });

  it("kill -9 of the leader's whole machine (its etcd, Patroni, PostgreSQL and Rill node) under load: nothing acknowledged lost or stored twice, writes resume", async () => {
    await underLoad(async (set, producer) => {
      const leader = await machineWith(set, 'leader');
      const through = set.machines.find((m) => m !== leader)!;
      await producer.use(through);
      await until('1,000 acknowledgments', () => producer.acknowledged.size >= 1000, 60_000);
      for (const part of ['rill', 'postgres', 'patroni', 'etcd'] as const) set.kill(leader, part);
      // Patroni's fail-over takes its ttl (10 s here) to notice a leader that is gone; the rest is Rill reconnecting.
      const outage = await writesResume(producer, 'writes after the leader’s machine died', 90_000);
      process.stdout.write(`ha: writes resumed ${outage} ms after the leader's machine died\n`);
      expect(outage).toBeLessThan(45_000);
      return through;
    });
  });
});

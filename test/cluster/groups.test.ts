import { writeFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { useChildServers } from '../helpers/child-server.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { call, describeGroup, httpBase, type GroupDescription } from '../helpers/http.js';
import { createDatabase } from '../helpers/postgres.js';
import { useServers } from '../helpers/server.js';

interface GroupMember {
  client: RawStompClient;
  /** The messageIDs of the messages it received and acknowledged, in order. */
  acknowledged(): string[];
  stop(): void;
}

/** Joins `/group/<group>/<topic>` under `name` (a static member with `instanceId`) on the node at `stompPort` and acknowledges every message as it comes. */
async function joinGroup(stompPort: number, group: string, topic: string, name: string, instanceId?: string): Promise<GroupMember> {
  const client = await RawStompClient.session(stompPort);
  client.send('SUBSCRIBE', {
    id: 'member',
    destination: `/group/${group}/${topic}`,
    ack: 'client-individual',
    'consumer-name': name,
    receipt: 'joined',
    ...(instanceId === undefined ? {} : { 'instance-id': instanceId }),
  });
  await client.receipt('joined');
  let acked = 0;
  const acking = setInterval(() => {
    const messages = client.all('MESSAGE');
    for (; acked < messages.length; acked++) client.send('ACK', { id: messages[acked]!.headers.ack! });
  }, 5);
  return {
    client,
    acknowledged: () =>
      client
        .all('MESSAGE')
        .slice(0, acked)
        .map((m) => m.headers['message-id']!),
    stop: () => {
      clearInterval(acking);
      client.close();
    },
  };
}

/** The group as a node describes it, once its members are exactly `names` and every partition of the topic is someone's. */
async function settledGroup(httpPort: number, group: string, names: string[], partitions: number): Promise<GroupDescription> {
  const described = await describeGroup(httpBase(httpPort), group);
  if (described === null) throw new Error(`no group ${group} yet`);
  const members = described.members.map((m) => m.member).sort();
  if (JSON.stringify(members) !== JSON.stringify([...names].sort())) throw new Error(`members ${members.join(',')}`);
  const owned = described.members.flatMap((m) => m.assignment.map((a) => a.partition)).sort((a, b) => a - b);
  if (JSON.stringify(owned) !== JSON.stringify(Array.from({ length: partitions }, (_, i) => i))) throw new Error(`partitions owned: ${owned.join(',')}`);
  return { ...described, members: described.members.sort((x, y) => x.member.localeCompare(y.member)) };
}

describe('cluster mode: consumer groups whose members are connected to different nodes', () => {
  const servers = useServers();
  const startChild = useChildServers();

  it('one group over two nodes: one generation, partitions shared out, commits made on one node read on the other, a name refused while another node holds it', async () => {
    const url = await createDatabase();
    const settings = { storage: { backend: 'postgres' as const, postgres: { url } }, topics: { definitions: [{ name: 'orders', partitions: 4 }] } };
    const a = await servers.start(settings);
    const b = await servers.start(settings);
    const producer = await RawStompClient.session(a.stompPort);
    const publish = async (prefix: string, count: number) => {
      for (let i = 0; i < count; i++)
        producer.send('SEND', { destination: '/producer/publish/orders', receipt: `${prefix}-${i}` }, canonical(`${prefix}-${i}`, `k${i}`, i));
      await until(
        `${count} receipts for ${prefix}`,
        () => producer.all('RECEIPT').filter((f) => f.headers['receipt-id']!.startsWith(`${prefix}-`)).length === count,
      );
    };

    // Alone on node A, c1 reads and acknowledges the first 100: the group commits them there.
    const c1 = await joinGroup(a.stompPort, 'billing', 'orders', 'c1');
    await publish('first', 100);
    await until('c1 to acknowledge the first 100', () => c1.acknowledged().length === 100);
    await until('the group to commit all 100 (lag 0)', async () => {
      const answer = await fetch(`${httpBase(a.httpPort)}/v1/groups/billing/lag`);
      const rows = ((await answer.json()) as { partitions: Array<{ lag: number; logEndOffset: number }> }).partitions;
      return rows.length === 4 && rows.every((r) => r.lag === 0) && rows.reduce((sum, r) => sum + r.logEndOffset, 0) === 100;
    });

    // c2 joins on node B: both nodes see the same generation, with half the partitions each.
    const c2 = await joinGroup(b.stompPort, 'billing', 'orders', 'c2');
    const onA = await until('node A to see both members', () => settledGroup(a.httpPort, 'billing', ['c1', 'c2'], 4).catch(() => null));
    const onB = await until('node B to see the same', () => settledGroup(b.httpPort, 'billing', ['c1', 'c2'], 4).catch(() => null));
    expect(onB.generation).toBe(onA.generation);
    expect(onB.members).toEqual(onA.members);
    const nodes = Object.fromEntries(onA.members.map((m) => [m.member, (m as { node?: string }).node]));
    expect(nodes.c1).toBe(a.broker.nodeId);
    expect(nodes.c2).toBe(b.broker.nodeId);
    for (const member of onA.members) expect(member.assignment).toHaveLength(2);

    // The next 100 are shared, each delivered once; c2 starts where c1 committed on the other node (nothing of the first 100 again).
    await publish('second', 100);
    await until('the second 100 between them', () => c1.acknowledged().length + c2.acknowledged().length === 200);
    expect(c2.acknowledged().every((id) => id.startsWith('second-'))).toBe(true);
    expect(c2.acknowledged().length).toBeGreaterThan(0);
    expect(new Set([...c1.acknowledged(), ...c2.acknowledged()]).size).toBe(200);

    // A member named c1 on node B while node A's c1 is live: refused, and the group does not change.
    const impostor = await RawStompClient.session(b.stompPort);
    impostor.send('SUBSCRIBE', { id: 'member', destination: '/group/billing/orders', 'consumer-name': 'c1', receipt: 'joined' });
    const error = await impostor.next('ERROR');
    expect(error.headers.code).toBe('name-taken');
    const after = await settledGroup(a.httpPort, 'billing', ['c1', 'c2'], 4);
    expect(after.members.find((m) => m.member === 'c1')?.assignment).toEqual(onA.members.find((m) => m.member === 'c1')?.assignment);

    // c1 leaves (UNSUBSCRIBE): c2 on the other node gets every partition at once.
    c1.client.send('UNSUBSCRIBE', { id: 'member', receipt: 'left' });
    await c1.client.receipt('left');
    await until('c2 alone with all 4 partitions, on node B', () => settledGroup(b.httpPort, 'billing', ['c2'], 4).catch(() => null));

    // Settings changed on A are B's too; a group with a member on B cannot be deleted on A.
    expect((await call(httpBase(a.httpPort), 'POST', '/v1/groups', { group: 'billing', maxDeliveries: 9 })).status).toBe(200);
    await until(
      'node B to take the new setting',
      async () => ((await describeGroup(httpBase(b.httpPort), 'billing')) as { settings?: { maxDeliveries?: number } } | null)?.settings?.maxDeliveries === 9,
    );
    const refused = await call(httpBase(a.httpPort), 'DELETE', '/v1/groups/billing');
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: { code: 'group-not-empty' } });
    // Once c2 left too, the group is deleted on A, and B forgets it.
    c2.client.send('UNSUBSCRIBE', { id: 'member', receipt: 'left' });
    await c2.client.receipt('left');
    await until('node A to see the group empty', async () => (await describeGroup(httpBase(a.httpPort), 'billing'))?.members.length === 0);
    expect((await call(httpBase(a.httpPort), 'DELETE', '/v1/groups/billing')).status).toBe(200);
    await until('node B to forget the group', async () => (await call(httpBase(b.httpPort), 'GET', '/v1/groups/billing')).status === 404);
    // Made again with other settings: those, not the deleted group's, on both nodes, and a generation past the old one's.
    expect((await call(httpBase(a.httpPort), 'POST', '/v1/groups', { group: 'billing', maxDeliveries: 2 })).status).toBe(200);
    const again = await joinGroup(b.stompPort, 'billing', 'orders', 'c3');
    const remade = await until('node A to see the group made again', () => settledGroup(a.httpPort, 'billing', ['c3'], 4).catch(() => null));
    expect(remade.generation).toBeGreaterThan(onA.generation);
    expect((remade as { settings?: { maxDeliveries?: number } }).settings?.maxDeliveries).toBe(2);
    again.stop();
    c1.stop();
    c2.stop();
    impostor.close();
    producer.close();
  });

  it("a commit made on node A is read on node B at once, while a transaction older than it is still open on the database server (another database's)", async () => {
    const url = await createDatabase();
    const settings = { storage: { backend: 'postgres' as const, postgres: { url } }, topics: { definitions: [{ name: 'orders', partitions: 2 }] } };
    const a = await servers.start(settings);
    const b = await servers.start(settings);
    // Any transaction that has written holds back the server's oldest running transaction id, in
    // every database of the server: another application's, a backup's, a slow migration's.
    const other = postgres(await createDatabase(), { max: 1, onnotice: () => {} });
    let end = (): void => {};
    const ended = new Promise<void>((resolve) => (end = resolve));
    const started = new Promise<void>((resolve) => {
      void other.begin(async (tx) => {
        await tx`SELECT pg_current_xact_id()`;
        resolve();
        await ended;
      });
    });
    await started;
    try {
      const producer = await RawStompClient.session(a.stompPort);
      for (let i = 0; i < 20; i++) producer.send('SEND', { destination: '/producer/publish/orders', receipt: `r${i}` }, canonical(`first-${i}`, `k${i}`, i));
      await until('20 receipts', () => producer.all('RECEIPT').length === 20);
      const c1 = await joinGroup(a.stompPort, 'billing', 'orders', 'c1');
      await until('c1 to acknowledge the 20', () => c1.acknowledged().length === 20);
      const lagOn = async (port: number) =>
        ((await (await fetch(`${httpBase(port)}/v1/groups/billing/lag`)).json()) as { partitions: Array<{ lag: number }> }).partitions;
      await until('the group to commit all 20 on node A (lag 0)', async () => (await lagOn(a.httpPort)).every((r) => r.lag === 0));
      // Node B reads the committed offsets as they are now, not as they were when the old transaction began.
      expect((await lagOn(b.httpPort)).map((r) => r.lag)).toEqual([0, 0]);
      // c1 leaves; c2 on node B starts where c1 committed: nothing of the first 20 again.
      c1.client.send('UNSUBSCRIBE', { id: 'member', receipt: 'left' });
      await c1.client.receipt('left');
      const c2 = await joinGroup(b.stompPort, 'billing', 'orders', 'c2');
      await until('c2 alone with both partitions', () => settledGroup(b.httpPort, 'billing', ['c2'], 2).catch(() => null));
      for (let i = 0; i < 10; i++) producer.send('SEND', { destination: '/producer/publish/orders', receipt: `s${i}` }, canonical(`second-${i}`, `k${i}`, i));
      await until('c2 to acknowledge the next 10', () => c2.acknowledged().length >= 10);
      expect(c2.acknowledged().sort()).toEqual(Array.from({ length: 10 }, (_, i) => `second-${i}`).sort());
      c1.stop();
      c2.stop();
      producer.close();
    } finally {
      end();
      await other.end();
    }
  });

  it('a static member whose client comes back through another node, under a new name, gets its partitions there at once: no rebalance, then or when its old session would have ended', async () => {
    const url = await createDatabase();
    const sessionTimeoutMs = 2_000;
    const settings = {
      storage: { backend: 'postgres' as const, postgres: { url } },
      topics: {
        definitions: [
          { name: 'orders', partitions: 4 },
          { name: 'payments', partitions: 2 },
        ],
      },
      coordinator: { sessionTimeoutMs },
    };
    const a = await servers.start(settings);
    const b = await servers.start(settings);
    const first = await joinGroup(a.stompPort, 'static', 'orders', 'one-v1', 'instance-1');
    const other = await joinGroup(b.stompPort, 'static', 'orders', 'two');
    const settled = await until('both members with two partitions each', () => settledGroup(b.httpPort, 'static', ['one-v1', 'two'], 4).catch(() => null));
    const owned = (group: GroupDescription, name: string) => group.members.find((m) => m.member === name)?.assignment;

    // The static member's process dies (its connection to node A drops) and its client comes back
    // through node B, as "one-v2": node A's member stays (a static member is kept for its session).
    first.client.socket.destroy();
    const back = await joinGroup(b.stompPort, 'static', 'orders', 'one-v2', 'instance-1');
    const movedAt = Date.now();
    for (const node of [a, b]) {
      const now = await until('the new name in the old place', () => settledGroup(node.httpPort, 'static', ['one-v2', 'two'], 4).catch(() => null));
      expect(now.generation).toBe(settled.generation);
      expect(owned(now, 'one-v2')).toEqual(owned(settled, 'one-v1'));
      expect(owned(now, 'two')).toEqual(owned(settled, 'two'));
      expect(now.members.find((m) => m.member === 'one-v2')).toMatchObject({ instanceId: 'instance-1', node: b.broker.nodeId });
    }
    // No rebalance either when one-v1's session would have timed out on node A.
    await until('past the old session timeout', () => Date.now() - movedAt > sessionTimeoutMs + 1000);
    const later = await settledGroup(a.httpPort, 'static', ['one-v2', 'two'], 4);
    expect(later.generation).toBe(settled.generation);
    expect(owned(later, 'one-v2')).toEqual(owned(settled, 'one-v1'));
    expect(back.client.all('ERROR')).toEqual([]);

    // It comes back once more, through node A, subscribed to another topic now: that is a change of
    // subscription, so a rebalance (its old partitions are not simply handed over).
    back.client.socket.destroy();
    const changed = await joinGroup(a.stompPort, 'static', 'payments', 'one-v3', 'instance-1');
    const rebalanced = await until('one-v3 with the payments partitions, two with every orders partition', async () => {
      const group = await describeGroup(httpBase(b.httpPort), 'static');
      const topicsOf = (name: string) =>
        group?.members
          .find((m) => m.member === name)
          ?.assignment.map((tp) => `${tp.topic}-${tp.partition}`)
          .sort();
      const members = group?.members.map((m) => m.member).sort();
      return JSON.stringify(members) === '["one-v3","two"]' &&
        JSON.stringify(topicsOf('one-v3')) === '["payments-0","payments-1"]' &&
        JSON.stringify(topicsOf('two')) === '["orders-0","orders-1","orders-2","orders-3"]'
        ? group
        : null;
    });
    expect(rebalanced!.generation).toBeGreaterThan(settled.generation);

    // And once more through node B, under the same name this time: the place changes hands again, no rebalance.
    changed.client.socket.destroy();
    const same = await joinGroup(b.stompPort, 'static', 'payments', 'one-v3', 'instance-1');
    await until('one-v3 held by node B', async () => {
      const group = await describeGroup(httpBase(a.httpPort), 'static');
      return (group?.members.find((m) => m.member === 'one-v3') as { node?: string } | undefined)?.node === b.broker.nodeId ? group : null;
    });
    const again = (await describeGroup(httpBase(b.httpPort), 'static'))!;
    expect(again.generation).toBe(rebalanced!.generation);
    expect(owned(again, 'one-v3')).toEqual(owned(rebalanced!, 'one-v3'));
    expect(same.client.all('ERROR')).toEqual([]);
    same.stop();
    other.stop();
  });

  it("three nodes under load, one killed (kill -9): its member's partitions go to the others within the session timeout + 1 s, and every acknowledged message is stored once and consumed", {
    timeout: 90_000,
  }, async () => {
    const url = await createDatabase();
    const sessionTimeoutMs = 2_000;
    const settings = { topics: { definitions: [{ name: 'orders', partitions: 6 }] }, coordinator: { sessionTimeoutMs } };
    const a = await servers.start({ ...settings, storage: { backend: 'postgres', postgres: { url } } });
    const b = await servers.start({ ...settings, storage: { backend: 'postgres', postgres: { url } } });
    const configFile = path.join(servers.tempDir(), 'rill.json');
    writeFileSync(configFile, JSON.stringify(settings));
    const c = await startChild(servers.tempDir(), { args: ['--config', configFile, '--storage', 'postgres', '--postgres-url', url] });

    // A producer on A; one member of the group on each node.
    const members = [
      await joinGroup(a.stompPort, 'audit', 'orders', 'on-a'),
      await joinGroup(b.stompPort, 'audit', 'orders', 'on-b'),
      await joinGroup(c.stompPort, 'audit', 'orders', 'on-c'),
    ];
    const spread = await until('the group spread over the three nodes', () => settledGroup(a.httpPort, 'audit', ['on-a', 'on-b', 'on-c'], 6).catch(() => null));
    for (const member of spread.members) expect(member.assignment).toHaveLength(2);

    const total = 3_000;
    const producer = await RawStompClient.session(a.stompPort);
    const receipted = () => producer.all('RECEIPT').length;
    let sent = 0;
    const sending = (async () => {
      // In steps, so that the kill lands while messages are on their way.
      while (sent < total) {
        for (const end = sent + 100; sent < end; sent++)
          producer.send('SEND', { destination: '/producer/publish/orders', receipt: `m-${sent}` }, canonical(`m-${sent}`, `k${sent}`, sent));
        await until('the step stored', () => receipted() >= sent - 200);
      }
    })();
    await until('a third published and consumed on C', () => receipted() >= total / 3 && members[2]!.acknowledged().length > 0);
    const killedAt = Date.now();
    c.process.kill('SIGKILL');

    // A and B take C's partitions within the session timeout + 1 s, and agree on it.
    const reassigned = await until(
      'on-c gone and its partitions reassigned',
      () => settledGroup(a.httpPort, 'audit', ['on-a', 'on-b'], 6).catch(() => null),
      15_000,
    );
    const tookMs = Date.now() - killedAt;
    console.info(`reassigned ${tookMs} ms after the kill (session timeout ${sessionTimeoutMs} ms)`);
    expect(tookMs).toBeLessThanOrEqual(sessionTimeoutMs + 1_000);
    const onB = await until('node B to agree', () => settledGroup(b.httpPort, 'audit', ['on-a', 'on-b'], 6).catch(() => null));
    expect(onB.generation).toBe(reassigned.generation);

    await sending;
    await until('every message acknowledged', () => receipted() === total, 60_000);
    expect(producer.all('ERROR')).toEqual([]);
    const published = Array.from({ length: total }, (_, i) => `m-${i}`);

    // Stored once each, readable from the nodes that remain.
    const stored = await readTopic(b, 'orders');
    expect(stored.map((m) => m.messageId).sort()).toEqual([...published].sort());

    // Consumed: what C acknowledged before it died and what A and B acknowledged cover every message (C's unacknowledged ones again, at least once).
    await until(
      'the group to have consumed every message',
      () => {
        const consumed = new Set(members.flatMap((m) => m.acknowledged()));
        return published.every((id) => consumed.has(id));
      },
      30_000,
    );
    for (const member of members) member.stop();
    producer.close();
  });
});

import { describe, expect, it } from 'vitest';
import { partitionForKey } from '../../src/broker/index.js';
import type { Frame } from '../../src/protocol/stomp/index.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { call, committedOffset, httpBase, storedCount } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

/** Publishes messages with receipts; returns when all are stored. */
async function publish(server: TestServer, topic: string, messages: Array<{ id: string; key: string }>): Promise<void> {
  const producer = await RawStompClient.session(server.stompPort);
  for (const { id, key } of messages) producer.send('SEND', { destination: `/producer/publish/${topic}`, receipt: id }, canonical(id, key, `input ${id}`));
  for (const { id } of messages) await producer.receipt(id);
  producer.close();
}

/** BEGIN, the ACKs of `inputs` and one output SEND per input, all in one transaction; then COMMIT. */
function processInTransaction(client: RawStompClient, transaction: string, inputs: readonly Frame[], receipt?: string): void {
  client.send('BEGIN', { transaction });
  for (const input of inputs) {
    client.send('ACK', { id: input.headers.ack, transaction });
    const source = JSON.parse(input.body.toString()) as { messageID: string; key: string };
    // No messageID: the output is never deduplicated, so only the transaction keeps it single.
    client.send('SEND', { destination: '/producer/publish/out', transaction }, JSON.stringify({ key: source.key, message: { from: source.messageID } }));
  }
  if (receipt !== undefined) client.send('COMMIT', { transaction, receipt });
}

/** The input messageIDs the outputs of `out` were made from, sorted. */
async function outputsFrom(server: TestServer): Promise<string[]> {
  if ((await storedCount(httpBase(server.httpPort), 'out')) === 0) return [];
  const stored = await readTopic(server, 'out');
  return stored.map((m) => (JSON.parse(m.body.toString()) as { message: { from: string } }).message.from).sort();
}

const committed = (server: TestServer, group: string, topic: string, partition: number) => committedOffset(httpBase(server.httpPort), group, topic, partition);

describe('exactly-once consume-transform-produce over STOMP', () => {
  const servers = useServers();

  it('commits the group offset of messages ACKed in a transaction together with its SENDs, at COMMIT', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 1 }] } });
    await publish(server, 'in', [
      { id: 'm0', key: 'a' },
      { id: 'm1', key: 'a' },
      { id: 'm2', key: 'a' },
    ]);
    const processor = await RawStompClient.session(server.stompPort);
    processor.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual', 'prefetch-count': '1' });
    for (let i = 0; i < 3; i++) {
      const input = await processor.next('MESSAGE');
      expect(input.headers['message-id']).toBe(`m${i}`);
      processInTransaction(processor, `t${i}`, [input]);
      // Before COMMIT nothing is visible and nothing committed.
      processor.send('SEND', { destination: '/producer/publish/other', receipt: `before-${i}` }, canonical(`other-${i}`, 'x', 'x'));
      await processor.receipt(`before-${i}`);
      expect(await committed(server, 'proc', 'in', 0)).toBe(i);
      expect(await storedCount(httpBase(server.httpPort), 'out')).toBe(i);
      processor.send('COMMIT', { transaction: `t${i}`, receipt: `commit-${i}` });
      await processor.receipt(`commit-${i}`);
      // The RECEIPT comes once both are stored: the output, and the group past its input.
      expect(await committed(server, 'proc', 'in', 0)).toBe(i + 1);
      expect(await storedCount(httpBase(server.httpPort), 'out')).toBe(i + 1);
    }
    expect(await outputsFrom(server)).toEqual(['m0', 'm1', 'm2']);
    processor.close();
  });

  for (const ack of ['client-individual', 'client'] as const) {
    it(`pipelined transactions (ack:${ack}), each COMMIT sent before the last one’s RECEIPT, commit every offset and store every output once`, async () => {
      const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 2 }] } });
      const inputs = Array.from({ length: 40 }, (_, i) => ({ id: `p${i}`, key: `k${i % 5}` }));
      await publish(server, 'in', inputs);
      const processor = await RawStompClient.session(server.stompPort);
      processor.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack, 'prefetch-count': '16' });
      for (let i = 0; i < inputs.length; i++) processInTransaction(processor, `t${i}`, [await processor.next('MESSAGE')], `commit-${i}`);
      await until('every COMMIT answered', () => processor.all('RECEIPT').length === inputs.length);
      expect(processor.all('ERROR')).toEqual([]);
      expect(await outputsFrom(server)).toEqual(inputs.map((m) => m.id).sort());
      // Each partition's offset is past every input: nothing would be processed again.
      for (const partition of [0, 1]) {
        const count = inputs.filter((m) => partitionForKey(m.key, 2) === partition).length;
        expect(await committed(server, 'proc', 'in', partition)).toBe(count);
      }
      processor.close();
    });
  }

  it('ABORT stores nothing and delivers the input again; a connection dropped before COMMIT does the same', async () => {
    // The dropped member's partition goes to the next once its session times out.
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 1 }] }, coordinator: { sessionTimeoutMs: 500 } });
    await publish(server, 'in', [{ id: 'm0', key: 'a' }]);
    const processor = await RawStompClient.session(server.stompPort);
    processor.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual', 'prefetch-count': '1' });
    const first = await processor.next('MESSAGE');
    processInTransaction(processor, 't1', [first]);
    processor.send('ABORT', { transaction: 't1', receipt: 'aborted' });
    await processor.receipt('aborted');
    const again = await processor.next('MESSAGE');
    expect(again.headers['message-id']).toBe('m0');
    expect(again.headers.redelivered).toBe('true');
    expect(await storedCount(httpBase(server.httpPort), 'out')).toBe(0);
    expect(await committed(server, 'proc', 'in', 0)).toBe(0);

    // The processor dies with the transaction open: the next member of the group gets the input again.
    processInTransaction(processor, 't2', [again]);
    // Its frames were handled: a later frame's RECEIPT says so.
    processor.send('BEGIN', { transaction: 'unused', receipt: 'held' });
    await processor.receipt('held');
    processor.close();
    const next = await RawStompClient.session(server.stompPort);
    next.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual' });
    expect((await next.next('MESSAGE')).headers['message-id']).toBe('m0');
    expect(await storedCount(httpBase(server.httpPort), 'out')).toBe(0);
    expect(await committed(server, 'proc', 'in', 0)).toBe(0);
    next.close();
  });

  it('refuses the COMMIT of a member that lost the partition in a rebalance (a zombie): nothing is stored, the new owner processes it', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 2 }] } });
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const k0 = keys.find((k) => partitionForKey(k, 2) === 0)!;
    const k1 = keys.find((k) => partitionForKey(k, 2) === 1)!;
    await publish(server, 'in', [
      { id: 'on-0', key: k0 },
      { id: 'on-1', key: k1 },
    ]);
    const zombie = await RawStompClient.session(server.stompPort);
    zombie.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual', 'prefetch-count': '10' });
    const held = [await zombie.next('MESSAGE'), await zombie.next('MESSAGE')];
    // A second member joins: one partition, with its message unacknowledged, is the new member's now.
    const owner = await RawStompClient.session(server.stompPort);
    owner.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual', 'prefetch-count': '10' });
    const moved = await owner.next('MESSAGE');
    expect(held.map((f) => f.headers['message-id'])).toContain(moved.headers['message-id']);

    processInTransaction(zombie, 'late', held, 'late-commit');
    const error = await zombie.next('ERROR');
    expect(error.headers.code).toBe('not-owner');
    expect(error.headers.message).toContain('was not committed');
    expect(zombie.all('RECEIPT')).toEqual([]);
    expect(await storedCount(httpBase(server.httpPort), 'out')).toBe(0);
    expect(await committed(server, 'proc', 'in', Number(moved.headers.partition))).toBe(0);

    processInTransaction(owner, 'mine', [moved], 'mine-commit');
    await owner.receipt('mine-commit');
    expect(await outputsFrom(server)).toEqual([moved.headers['message-id']]);
    expect(await committed(server, 'proc', 'in', Number(moved.headers.partition))).toBe(1);
    owner.close();
  });

  it('answers a fenced COMMIT whose SENDs are all resends of stored messages with an ERROR too', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 2 }] } });
    const k0 = ['a', 'b', 'c', 'd'].find((k) => partitionForKey(k, 2) === 0)!;
    const k1 = ['a', 'b', 'c', 'd'].find((k) => partitionForKey(k, 2) === 1)!;
    await publish(server, 'in', [
      { id: 'on-0', key: k0 },
      { id: 'on-1', key: k1 },
    ]);
    // The outputs were stored once already (an earlier attempt): the zombie's SENDs are resends.
    await publish(server, 'out', [{ id: 'out-1', key: 'x' }]);
    const zombie = await RawStompClient.session(server.stompPort);
    zombie.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual', 'prefetch-count': '10' });
    const held = [await zombie.next('MESSAGE'), await zombie.next('MESSAGE')];
    const owner = await RawStompClient.session(server.stompPort);
    owner.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual' });
    await owner.next('MESSAGE');
    zombie.send('BEGIN', { transaction: 'late' });
    for (const input of held) zombie.send('ACK', { id: input.headers.ack, transaction: 'late' });
    zombie.send('SEND', { destination: '/producer/publish/out', transaction: 'late' }, canonical('out-1', 'x', 'again'));
    zombie.send('COMMIT', { transaction: 'late', receipt: 'late-commit' });
    expect((await zombie.next('ERROR')).headers.code).toBe('not-owner');
    expect(await storedCount(httpBase(server.httpPort), 'out')).toBe(1);
    owner.close();
  });
});

describe('exactly-once processing for pull consumers: offsets and publishes in one request', () => {
  const servers = useServers();

  async function pullMember(server: TestServer): Promise<{ base: string; generation: number; records: Array<{ offset: number; messageId: string }> }> {
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/groups', { group: 'pullers', resetPolicy: 'earliest' })).status).toBe(200);
    const joined = await call(base, 'POST', '/v1/groups/pullers/members', { member: 'm1', topics: ['in'] });
    expect(joined.status).toBe(200);
    const pulled = await call(base, 'POST', '/v1/groups/pullers/members/m1/pull', { maxWaitMs: 2000 });
    expect(pulled.status).toBe(200);
    return { base, generation: pulled.body.generation, records: pulled.body.records };
  }

  it('commits the offsets and stores the publishes together, and answers where each was stored', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 1 }] } });
    await publish(server, 'in', [
      { id: 'm0', key: 'a' },
      { id: 'm1', key: 'a' },
    ]);
    const { base, generation, records } = await pullMember(server);
    expect(records.map((r) => r.messageId)).toEqual(['m0', 'm1']);
    const answer = await call(base, 'POST', '/v1/groups/pullers/members/m1/transaction', {
      generation,
      offsets: [{ topic: 'in', partition: 0, offset: 2 }],
      publishes: records.map((r) => ({ topic: 'out', body: JSON.stringify({ key: 'a', message: { from: r.messageId } }) })),
    });
    expect(answer.status).toBe(200);
    expect(answer.body.committed).toEqual([{ topic: 'in', partition: 0, offset: 2 }]);
    expect(answer.body.published.map((p: { offset: number; duplicate: boolean }) => [p.offset, p.duplicate])).toEqual([
      [0, false],
      [1, false],
    ]);
    expect(await committed(server, 'pullers', 'in', 0)).toBe(2);
    expect(await outputsFrom(server)).toEqual(['m0', 'm1']);
  });

  it('refuses a stale or missing generation, a partition the member does not own and an invalid publish, committing and storing nothing', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 1 }] } });
    await publish(server, 'in', [{ id: 'm0', key: 'a' }]);
    const { base, generation } = await pullMember(server);
    const publishes = [{ topic: 'out', body: JSON.stringify({ key: 'a', message: { from: 'm0' } }) }];

    const invalid = await call(base, 'POST', '/v1/groups/pullers/members/m1/transaction', {
      generation,
      offsets: [{ topic: 'in', partition: 0, offset: 1 }],
      publishes: [...publishes, { topic: 'out', body: '{"messageID": 7}' }],
    });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('invalid-message');
    expect(invalid.body.error.message).toContain('publishes[1]');

    const notOwned = await call(base, 'POST', '/v1/groups/pullers/members/m1/transaction', {
      generation,
      offsets: [{ topic: 'in', partition: 3, offset: 1 }],
      publishes,
    });
    expect(notOwned.status).toBe(409);
    expect(notOwned.body.error.code).toBe('not-owner');

    const noGeneration = await call(base, 'POST', '/v1/groups/pullers/members/m1/transaction', {
      offsets: [{ topic: 'in', partition: 0, offset: 1 }],
      publishes,
    });
    expect(noGeneration.status).toBe(400);
    expect(noGeneration.body.error.message).toContain('generation');

    // Another member joins: the group's generation moves on, and m1's is stale.
    expect((await call(base, 'POST', '/v1/groups/pullers/members', { member: 'm2', topics: ['in'] })).status).toBe(200);
    const stale = await call(base, 'POST', '/v1/groups/pullers/members/m1/transaction', {
      generation,
      offsets: [{ topic: 'in', partition: 0, offset: 1 }],
      publishes,
    });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('stale-generation');

    expect(await storedCount(base, 'out')).toBe(0);
    expect(await committed(server, 'pullers', 'in', 0)).toBe(0);
  });

  it('refuses offsets in a transaction for a group that auto-commits its pulls, storing nothing', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 1 }] } });
    await publish(server, 'in', [{ id: 'm0', key: 'a' }]);
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/groups', { group: 'auto', resetPolicy: 'earliest', autoCommitIntervalMs: 60_000 })).status).toBe(200);
    const joined = await call(base, 'POST', '/v1/groups/auto/members', { member: 'a1', topics: ['in'] });
    const refused = await call(base, 'POST', '/v1/groups/auto/members/a1/transaction', {
      generation: joined.body.generation,
      offsets: [{ topic: 'in', partition: 0, offset: 1 }],
      publishes: [{ topic: 'out', body: JSON.stringify({ key: 'a', message: { from: 'm0' } }) }],
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('invalid-request');
    expect(refused.body.error.message).toContain('auto-commits');
    expect(await storedCount(base, 'out')).toBe(0);
    expect(await committed(server, 'auto', 'in', 0)).toBe(0);
  });

  it('takes the same request over STOMP, at /request/transact', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'in', partitions: 1 }] } });
    await publish(server, 'in', [{ id: 'm0', key: 'a' }]);
    const { generation } = await pullMember(server);
    const client = await RawStompClient.session(server.stompPort);
    client.send('SUBSCRIBE', { id: 'replies', destination: '/user/replies', receipt: 'ready' });
    await client.receipt('ready');
    client.send(
      'SEND',
      { destination: '/request/transact', 'correlation-id': 'c1', 'content-type': 'application/json' },
      JSON.stringify({
        member: 'm1',
        generation,
        offsets: [{ topic: 'in', partition: 0, offset: 1 }],
        publishes: [{ topic: 'out', body: JSON.stringify({ key: 'a', message: { from: 'm0' } }) }],
      }),
    );
    const reply = await client.next('MESSAGE');
    expect(reply.headers['correlation-id']).toBe('c1');
    expect(reply.headers.status).toBe('200');
    expect(JSON.parse(reply.body.toString()).published).toHaveLength(1);
    expect(await committed(server, 'pullers', 'in', 0)).toBe(1);
    expect(await outputsFrom(server)).toEqual(['m0']);
    client.close();
  });
});

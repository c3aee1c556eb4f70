import { describe, expect, it, vi } from 'vitest';
import { canonical, connectStompJs, publishWithReceipt, RawStompClient, readTopic, WAIT } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { storedMessages, useServers } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

/* The admin API's topic and group management: settings, describe, delete, and group reset and deletion. */

describe('topic administration', () => {
  const servers = useServers();

  it('creates a topic with its own settings, and describes each partition: offsets, size, segments and worker', async () => {
    const server = await servers.start({ storage: { segmentBytes: 1024 * 1024 } });
    const base = httpBase(server.httpPort);
    const created = await call(base, 'POST', '/v1/topics', { name: 'orders', partitions: 2, config: { retentionMs: 3_600_000, maxMessageBytes: 2048 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'orders', partitions: 2, overrides: { retentionMs: 3_600_000, maxMessageBytes: 2048 } });
    expect(created.body.config).toMatchObject({ retentionMs: 3_600_000, maxMessageBytes: 2048, retentionBytes: -1, compression: 'none', ttlMs: 0 });
    const client = await connectStompJs(server.wsUrl);
    for (let i = 0; i < 6; i++) await publishWithReceipt(client, '/producer/publish/orders', 'x'.repeat(100), { key: `k${i}`, partition: String(i % 2) });
    await client.deactivate();

    const described = await call(base, 'GET', '/v1/topics/orders');
    expect(described.status).toBe(200);
    expect(described.body).toMatchObject({ name: 'orders', priorityLanes: 1, overrides: { retentionMs: 3_600_000, maxMessageBytes: 2048 } });
    expect(described.body.partitions).toHaveLength(2);
    for (const partition of described.body.partitions) {
      // One segment file; in cluster mode, a row per batch.
      expect(partition).toMatchObject({ logStartOffset: 0, logEndOffset: 3, segments: server.broker.storeKind === 'embedded' ? 1 : 3 });
      // Three batches of one 100-byte record, each with its batch header.
      expect(partition.sizeBytes).toBeGreaterThan(300);
      expect(partition.worker).toBe(server.broker.workerOf(server.broker.topics.get('orders')!, partition.partition));
    }
    // Spread over both broker workers (cluster mode has one placement unit: the database).
    expect(new Set(described.body.partitions.map((p: { worker: number }) => p.worker)).size).toBe(server.broker.workerCount);
    // Settings are checked: an unknown key, or a value out of range, is the client's mistake.
    expect((await call(base, 'POST', '/v1/topics', { name: 'x', config: { retention: 5 } })).status).toBe(400);
    expect((await call(base, 'POST', '/v1/topics', { name: 'x', config: { maxMessageBytes: 0 } })).status).toBe(400);
    expect(server.broker.topics.get('x')).toBeUndefined();
  });

  it('alters a topic’s settings: a message over its maxMessageBytes is refused and not stored, a null puts the default back', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'small', partitions: 1 });
    const altered = await call(base, 'PATCH', '/v1/topics/small/config', { maxMessageBytes: 10, ttlMs: 60_000 });
    expect(altered.status).toBe(200);
    expect(altered.body).toMatchObject({ name: 'small', overrides: { maxMessageBytes: 10, ttlMs: 60_000 }, config: { maxMessageBytes: 10, ttlMs: 60_000 } });

    const producer = await RawStompClient.session(server.stompPort);
    producer.send('SEND', { destination: '/producer/publish/small', key: 'k', receipt: 'ok' }, '0123456789');
    await producer.receipt('ok');
    producer.send('SEND', { destination: '/producer/publish/small', key: 'k', receipt: 'big' }, '0123456789A');
    const error = await producer.next('ERROR');
    expect(error.headers).toMatchObject({ code: 'too-large', 'receipt-id': 'big' });
    expect(error.headers.message).toContain('maxMessageBytes (10)');
    expect(await storedMessages(server, 'small')).toBe(1);
    // The time-to-live set on the topic went with the stored message.
    const reader = await RawStompClient.session(server.stompPort);
    reader.send('SUBSCRIBE', { id: 'r', destination: '/topic/small', from: 'earliest' });
    const stored = await reader.next('MESSAGE');
    expect(Number(stored.headers.expires)).toBeGreaterThan(Date.now());
    reader.close();

    const reset = await call(base, 'PATCH', '/v1/topics/small/config', { maxMessageBytes: null });
    expect(reset.body.overrides).toEqual({ ttlMs: 60_000 });
    expect(reset.body.config.maxMessageBytes).toBe(1024 * 1024);
    // Stored with the topic: a restart keeps it.
    await server.close();
    const again = await servers.start({}, server.dataDir);
    expect(again.broker.topics.get('small')!.ownSettings).toEqual({ ttlMs: 60_000 });

    const againBase = httpBase(again.httpPort);
    expect((await call(againBase, 'PATCH', '/v1/topics/small/config', { ttlMs: -5 })).status).toBe(400);
    expect((await call(againBase, 'PATCH', '/v1/topics/missing/config', { ttlMs: 5 })).status).toBe(404);
    expect((await call(againBase, 'PATCH', '/v1/topics/__consumer_offsets/config', { ttlMs: 5 })).status).toBe(403);
  });

  it('applies a changed deduplication window and compression at once: resends are recognised or not, new batches are compressed', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'ids', partitions: 1, config: { deduplicationWindowMs: 0 } });
    const producer = await RawStompClient.session(server.stompPort);
    const send = async (id: string, receipt: string) => {
      producer.send('SEND', { destination: '/producer/publish/ids', receipt }, canonical(id, 'k', 'x'.repeat(200)));
      await producer.receipt(receipt);
    };
    await send('same', 'a');
    await send('same', 'b');
    // No window: the resend is a second message.
    expect(await storedMessages(server, 'ids')).toBe(2);
    await call(base, 'PATCH', '/v1/topics/ids/config', { deduplicationWindowMs: 60_000, compression: 'gzip' });
    await send('same', 'c');
    // The window, read back from the log, knows the messageID: a duplicate, not stored again.
    expect(await storedMessages(server, 'ids')).toBe(2);
    await send('fresh', 'd');
    expect(await storedMessages(server, 'ids')).toBe(3);
    // The batch stored after the change is gzip-compressed (bits 0-2 of its attributes: 1).
    const topic = server.broker.topics.get('ids')!;
    const read = await server.broker.read(topic, 0, 2, 1 << 16);
    expect(read.batches!.readInt16BE(21) & 7).toBe(1);
  });

  it('applies a retention set on one topic only to it: its old segments go, another topic’s stay', async () => {
    const server = await servers.start({ storage: { segmentBytes: 1024, retention: { checkIntervalMs: 100 } } });
    const base = httpBase(server.httpPort);
    for (const name of ['trimmed', 'kept']) await call(base, 'POST', '/v1/topics', { name, partitions: 1 });
    const client = await connectStompJs(server.wsUrl);
    for (let i = 0; i < 20; i++) {
      for (const name of ['trimmed', 'kept']) await publishWithReceipt(client, `/producer/publish/${name}`, 'y'.repeat(200), { key: 'k' });
    }
    await client.deactivate();
    const segmentsOf = async (name: string) => (await call(base, 'GET', `/v1/topics/${name}`)).body.partitions[0];
    expect((await segmentsOf('trimmed')).segments).toBeGreaterThan(3);
    await call(base, 'PATCH', '/v1/topics/trimmed/config', { retentionBytes: 1024 });
    await vi.waitFor(async () => expect((await segmentsOf('trimmed')).logStartOffset).toBeGreaterThan(0), WAIT);
    const trimmed = await segmentsOf('trimmed');
    expect(trimmed.sizeBytes).toBeLessThanOrEqual(2048);
    expect(trimmed.logEndOffset).toBe(20);
    const kept = await segmentsOf('kept');
    expect(kept).toMatchObject({ logStartOffset: 0, logEndOffset: 20 });
  });

  it('deletes a topic: its consumers get an ERROR, its groups forget their offsets, its name starts afresh, and nothing else is touched', async () => {
    const server = await servers.start({ topics: { deduplicationWindowMs: 60_000 } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'doomed', partitions: 2 });
    await call(base, 'POST', '/v1/topics', { name: 'other', partitions: 1 });
    const client = await connectStompJs(server.wsUrl);
    for (let i = 0; i < 4; i++) await publishWithReceipt(client, '/producer/publish/doomed', canonical(`d${i}`, `k${i}`, 'old'));
    await publishWithReceipt(client, '/producer/publish/other', canonical('o1', 'k', 'stays'));
    await client.deactivate();
    // A group that committed in the topic, and a tail reading it.
    await call(base, 'POST', '/v1/groups/readers/members', { member: 'r1', topics: ['doomed'] });
    await call(base, 'POST', '/v1/groups/readers/members/r1/commit', { offsets: [{ topic: 'doomed', partition: 0, offset: 1 }] });
    await call(base, 'DELETE', '/v1/groups/readers/members/r1');
    const tail = await RawStompClient.session(server.stompPort);
    tail.send('SUBSCRIBE', { id: 't', destination: '/topic/doomed', from: 'earliest', receipt: 'sub' });
    await tail.receipt('sub');

    const deleted = await call(base, 'DELETE', '/v1/topics/doomed');
    expect(deleted).toEqual({ status: 200, body: { name: 'doomed', deleted: true } });
    const error = await tail.next('ERROR');
    expect(error.headers).toMatchObject({ code: 'unknown-topic', message: 'topic "doomed" was deleted' });
    await tail.closedByServer();
    expect((await call(base, 'GET', '/v1/topics/doomed')).status).toBe(404);
    expect((await call(base, 'GET', '/v1/topics')).body.topics.map((t: { name: string }) => t.name)).toEqual(['other']);
    expect((await call(base, 'GET', '/v1/groups/readers')).body.partitions).toEqual([]);
    expect((await call(base, 'DELETE', '/v1/topics/doomed')).status).toBe(404);
    // Internal topics are beyond every rule: no one may delete them.
    expect((await call(base, 'DELETE', '/v1/topics/__consumer_offsets')).status).toBe(403);

    // The name starts afresh: no old messages, and an old messageID is a new message, not a duplicate.
    const producer = await connectStompJs(server.wsUrl);
    await publishWithReceipt(producer, '/producer/publish/doomed', canonical('d0', 'k0', 'new'));
    await producer.deactivate();
    const messages = await readTopic(server, 'doomed');
    expect(messages.map((m) => JSON.parse(m.body.toString()).message)).toEqual(['new']);
    expect(await storedMessages(server, 'other')).toBe(1);
    // And a restart does not bring the old topic back.
    await server.close();
    const again = await servers.start({}, server.dataDir);
    expect(await storedMessages(again, 'doomed')).toBe(1);
    expect(await storedMessages(again, 'other')).toBe(1);
  });

  // Broker worker threads: the embedded store's.
  it.skipIf(TESTING_POSTGRES)('refuses to delete a topic, retriably, while a broker worker holding its partitions is down', async () => {
    const server = await servers.start({ brokers: { workers: 2, restartBackoffMs: 60_000, restartBackoffMaxMs: 60_000 } });
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'held', partitions: 2 });
    await server.broker.killWorker(0);
    const refused = await call(base, 'DELETE', '/v1/topics/held');
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'unavailable', retriable: true });
    expect(server.broker.topics.get('held')).toBeDefined();
  });

  it('gives a group subscribed to a topic deleted and made again the new topic’s partitions', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'phoenix', partitions: 2 });
    await call(base, 'POST', '/v1/groups/watchers/members', { member: 'w', topics: ['phoenix'] });
    const assignment = async () => (await call(base, 'POST', '/v1/groups/watchers/members/w/heartbeat', {})).body.assignment;
    expect(await assignment()).toHaveLength(2);
    await call(base, 'DELETE', '/v1/topics/phoenix');
    expect(await assignment()).toEqual([]);
    await call(base, 'POST', '/v1/topics', { name: 'phoenix', partitions: 3 });
    expect(await assignment()).toHaveLength(3);
  });

  it('limits a message by stomp.maxFrameBytes when topics.maxMessageBytes is not set', async () => {
    const server = await servers.start({ stomp: { maxFrameBytes: 4 * 1024 * 1024 } });
    expect(server.broker.topics.resolve('wide').settings.maxMessageBytes).toBe(4 * 1024 * 1024);
    const producer = await RawStompClient.session(server.stompPort);
    producer.send('SEND', { destination: '/producer/publish/wide', key: 'k', receipt: 'r' }, Buffer.alloc(2 * 1024 * 1024, 0x61));
    await producer.receipt('r');
    expect(await storedMessages(server, 'wide')).toBe(1);
  });
});

describe('group administration', () => {
  const servers = useServers();

  it('describes a group with lag for every partition of its topics, committed or not', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'jobs', partitions: 3 });
    const client = await connectStompJs(server.wsUrl);
    for (let p = 0; p < 3; p++)
      for (let i = 0; i < 2; i++) await publishWithReceipt(client, '/producer/publish/jobs', `j${p}${i}`, { key: 'k', partition: String(p) });
    await client.deactivate();
    await call(base, 'POST', '/v1/groups/workers/members', { member: 'w1', topics: ['jobs'] });
    await call(base, 'POST', '/v1/groups/workers/members/w1/commit', { offsets: [{ topic: 'jobs', partition: 1, offset: 1 }] });
    const described = await call(base, 'GET', '/v1/groups/workers');
    expect(described.body.partitions).toEqual([
      { topic: 'jobs', partition: 0, committedOffset: null, logEndOffset: 2, lag: 2 },
      { topic: 'jobs', partition: 1, committedOffset: 1, logEndOffset: 2, lag: 1 },
      { topic: 'jobs', partition: 2, committedOffset: null, logEndOffset: 2, lag: 2 },
    ]);
    expect(described.body.members.map((m: { member: string }) => m.member)).toEqual(['w1']);
  });

  it('resets offsets with a dry run that changes nothing, then for real once the group is empty', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'log', partitions: 1 });
    const client = await connectStompJs(server.wsUrl);
    for (let i = 0; i < 5; i++) await publishWithReceipt(client, '/producer/publish/log', `m${i}`, { key: 'k' });
    await client.deactivate();
    await call(base, 'POST', '/v1/groups/g/members', { member: 'm1', topics: ['log'] });
    await call(base, 'POST', '/v1/groups/g/members/m1/commit', { offsets: [{ topic: 'log', partition: 0, offset: 4 }] });
    const dry = await call(base, 'POST', '/v1/groups/g/offsets/reset', { target: { to: 'offset', offset: 1 }, dryRun: true });
    expect(dry.body).toEqual({ group: 'g', offsets: [{ topic: 'log', partition: 0, offset: 1 }], dryRun: true });
    // A reset (dry or not) never creates the topic it names.
    const unknown = await call(base, 'POST', '/v1/groups/g/offsets/reset', { topic: 'nowhere', target: { to: 'earliest' }, dryRun: true });
    expect(unknown.status).toBe(404);
    expect(server.broker.topics.get('nowhere')).toBeUndefined();
    const refused = await call(base, 'POST', '/v1/groups/g/offsets/reset', { target: { to: 'offset', offset: 1 } });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('group-not-empty');
    const committed = async () => (await call(base, 'GET', '/v1/groups/g')).body.partitions[0].committedOffset;
    expect(await committed()).toBe(4);
    await call(base, 'DELETE', '/v1/groups/g/members/m1');
    const reset = await call(base, 'POST', '/v1/groups/g/offsets/reset', { target: { to: 'earliest' } });
    expect(reset.body).toEqual({ group: 'g', offsets: [{ topic: 'log', partition: 0, offset: 0 }], dryRun: false });
    expect(await committed()).toBe(0);
  });

  it('deletes a group only when it has no members, with its committed offsets', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    await call(base, 'POST', '/v1/topics', { name: 'events', partitions: 1 });
    await call(base, 'POST', '/v1/groups/audit/members', { member: 'a1', topics: ['events'] });
    await call(base, 'POST', '/v1/groups/audit/members/a1/commit', { offsets: [{ topic: 'events', partition: 0, offset: 0 }] });
    const refused = await call(base, 'DELETE', '/v1/groups/audit');
    expect(refused.status).toBe(409);
    expect(refused.body.error).toMatchObject({ code: 'group-not-empty' });
    expect((await call(base, 'GET', '/v1/groups/audit')).status).toBe(200);
    await call(base, 'DELETE', '/v1/groups/audit/members/a1');
    expect(await call(base, 'DELETE', '/v1/groups/audit')).toEqual({ status: 200, body: { group: 'audit', deleted: true } });
    expect((await call(base, 'GET', '/v1/groups/audit')).status).toBe(404);
    expect((await call(base, 'GET', '/v1/groups')).body.groups).toEqual([]);
    expect((await call(base, 'DELETE', '/v1/groups/audit')).status).toBe(404);
    // Gone for good: a restart does not bring it or its offsets back.
    await server.close();
    const again = await servers.start({}, server.dataDir);
    const againBase = httpBase(again.httpPort);
    expect((await call(againBase, 'GET', '/v1/groups/audit')).status).toBe(404);
    await call(againBase, 'POST', '/v1/groups/audit/members', { member: 'a2', topics: ['events'] });
    expect((await call(againBase, 'GET', '/v1/groups/audit')).body.partitions[0].committedOffset).toBeNull();
  });
});

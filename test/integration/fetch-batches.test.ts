import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { canonical, connectStompJs, publishWithReceipt } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';

// kafkajs's own RecordBatch decoder: a client that decodes Kafka's format without Rill's code.
const require = createRequire(import.meta.url);
const Decoder = require('kafkajs/src/protocol/decoder.js') as typeof import('kafkajs/src/protocol/decoder.js');
const decodeBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as typeof import('kafkajs/src/protocol/recordBatch/v0/decoder.js');

interface FetchHead {
  generation: number;
  assignment: Array<{ topic: string; partition: number }>;
  partitions: Array<{ topic: string; partition: number; fetchOffset: number; bytes: number }>;
}

interface Fetched {
  head: FetchHead;
  /** Records at or after each partition's fetch offset, as kafkajs decodes them. */
  records: Array<{ partition: number; offset: number; messageId: string; value: string }>;
}

/** POST .../fetch, decoded: the JSON head, then each partition's batches through kafkajs's decoder. */
async function fetchBatches(base: string, group: string, member: string, body: object): Promise<Fetched> {
  const answer = await fetch(`${base}/v1/groups/${group}/members/${member}/fetch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(answer.status).toBe(200);
  expect(answer.headers.get('content-type')).toBe('application/vnd.rill.record-batches');
  const bytes = Buffer.from(await answer.arrayBuffer());
  const headLength = bytes.readUInt32BE(0);
  const head = JSON.parse(bytes.toString('utf8', 4, 4 + headLength)) as FetchHead;
  const records: Fetched['records'] = [];
  let position = 4 + headLength;
  for (const part of head.partitions) {
    const decoder = new Decoder(bytes.subarray(position, position + part.bytes));
    while (decoder.offset < part.bytes) {
      const batch = await decodeBatch(decoder);
      if (batch.isControlBatch) continue;
      for (const record of batch.records) {
        const offset = Number(record.offset);
        // The first batch may start before the fetch offset: those records were handed out already.
        if (offset < part.fetchOffset) continue;
        const messageId = record.headers['message-id'];
        records.push({ partition: part.partition, offset, messageId: String(messageId), value: record.value!.toString() });
      }
    }
    position += part.bytes;
  }
  expect(position).toBe(bytes.length);
  return { head, records };
}

describe('fetching record batches over HTTP (POST /v1/groups/<group>/members/<member>/fetch)', () => {
  const servers = useServers();

  it('hands on the stored batches, gzip-compressed here (kafkajs decodes gzip without a plugin), that a Kafka decoder reads: every message once, in offset order per partition, positions moving on', async () => {
    const server = await servers.start({ topics: { defaultPartitions: 3, definitions: [{ name: 'orders', partitions: 3, compression: 'gzip' }] } });
    const base = httpBase(server.httpPort);
    const client = await connectStompJs(server.wsUrl);
    const sent = new Map<string, string>();
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 50; i++) {
        const id = `m-${round * 50 + i}`;
        const body = canonical(id, `customer-${i % 7}`, `order ${round * 50 + i}`);
        sent.set(id, body);
        client.publish({ destination: '/producer/publish/orders', body });
      }
      await publishWithReceipt(client, '/producer/publish/orders', canonical(`receipt-${round}`, 'customer-0', 'r'));
      sent.set(`receipt-${round}`, canonical(`receipt-${round}`, 'customer-0', 'r'));
    }
    await client.deactivate();

    expect((await call(base, 'POST', '/v1/groups/g/members', { member: 'm', topics: ['orders'] })).status).toBe(200);
    const received: Fetched['records'] = [];
    let fetches = 0;
    for (;;) {
      const { head, records } = await fetchBatches(base, 'g', 'm', { maxBytes: 1500, maxWaitMs: 0 });
      expect(head.assignment).toHaveLength(3);
      fetches++;
      if (head.partitions.length === 0) break;
      received.push(...records);
    }
    expect(fetches).toBeGreaterThan(3); // small maxBytes: the backlog came in several fetches
    expect(received.map((r) => r.messageId).sort()).toEqual([...sent.keys()].sort());
    for (const record of received) expect(JSON.parse(record.value).messageID).toBe(record.messageId);
    for (let partition = 0; partition < 3; partition++) {
      const offsets = received.filter((r) => r.partition === partition).map((r) => r.offset);
      expect(offsets).toEqual(Array.from({ length: offsets.length }, (_, i) => i));
    }

    // A commit at the positions leaves no lag; another group reads everything again from the start.
    const offsets = [0, 1, 2].map((partition) => ({
      topic: 'orders',
      partition,
      offset: Math.max(...received.filter((r) => r.partition === partition).map((r) => r.offset)) + 1,
    }));
    expect((await call(base, 'POST', '/v1/groups/g/members/m/commit', { offsets })).status).toBe(200);
    const { body: lag } = await call(base, 'GET', '/v1/groups/g/lag');
    expect(lag.partitions.map((p: { lag: number }) => p.lag)).toEqual([0, 0, 0]);
    expect((await call(base, 'POST', '/v1/groups/other/members', { member: 'o', topics: ['orders'] })).status).toBe(200);
    const again = await fetchBatches(base, 'other', 'o', { maxBytes: 64 * 1024 * 1024, maxWaitMs: 0 });
    expect(again.records).toHaveLength(sent.size);
  });

  it('refuses an unknown member and a body it does not take, storing and moving nothing', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/groups/g/members', { member: 'm', topics: ['t'] })).status).toBe(200);
    const unknown = await call(base, 'POST', '/v1/groups/g/members/nobody/fetch', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('unknown-member');
    const bad = await call(base, 'POST', '/v1/groups/g/members/m/fetch', { maxMessages: 10 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid-request');
    expect(bad.body.error.message).toMatch(/maxMessages/);
  });
});

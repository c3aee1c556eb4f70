import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BATCH_HEADER_BYTES, readBatchInfo } from '../../src/storage/index.js';
import { canonical, connectStompJs, publishWithReceipt, RawStompClient, until } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

/** Flips a byte in the body of the batch holding `offset` in a partition's first segment; returns that batch's base offset. */
function damageBatch(dataDir: string, topic: string, offset: number): number {
  const file = path.join(dataDir, 'topics', topic, '0', `${'0'.padStart(20, '0')}.log`);
  const bytes = fs.readFileSync(file);
  for (let position = 0; position + BATCH_HEADER_BYTES <= bytes.length; ) {
    const info = readBatchInfo(bytes, position);
    if (info.nextOffset > offset) {
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.from([bytes[position + info.size - 3]! ^ 0xff]), 0, 1, position + info.size - 3);
      fs.closeSync(fd);
      return info.baseOffset;
    }
    position += info.size;
  }
  throw new Error(`no batch holds offset ${offset}`);
}

describe('a batch damaged on disk after recovery checked it (bit rot)', () => {
  const servers = useServers();

  // Damages a segment file on disk: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'is never handed to a reader: tails stop before it, pulls and fetches answer storage-error, the broker and its other partitions serve on',
    async () => {
      const dataDir = servers.tempDir();
      // Small index intervals: after a clean shutdown, recovery reads only each segment's tail past its last index entry.
      const settings = { storage: { indexIntervalBytes: 256 }, topics: { definitions: [{ name: 'rot', partitions: 1 }] } };
      const first = await servers.start(settings, dataDir);
      const client = await connectStompJs(first.wsUrl);
      const timestamps: number[] = [];
      for (let i = 0; i < 60; i++) {
        timestamps.push(1_700_000_000_000 + i * 1000);
        await publishWithReceipt(client, '/producer/publish/rot', canonical(`m-${i}`, 'k', `message ${i}`, timestamps[i]));
      }
      await client.deactivate();
      await first.close();
      const damaged = damageBatch(dataDir, 'rot', 20);
      expect(damaged).toBeGreaterThan(0);

      const server = await servers.start(settings, dataDir);
      const base = httpBase(server.httpPort);
      // Recovery did not look there (a clean shutdown): the log still ends at 60.
      expect((await call(base, 'GET', '/v1/topics/rot')).body.partitions[0].logEndOffset).toBe(60);

      // A tail from the start gets every message before the damaged batch, then nothing (it retries, it does not skip).
      const tail = await RawStompClient.session(server.stompPort);
      tail.send('SUBSCRIBE', { id: 't', destination: '/topic/rot', from: 'earliest', receipt: 'r' });
      await tail.receipt('r');
      await until('the messages before the damage', () => tail.all('MESSAGE').length >= damaged);
      expect(tail.all('MESSAGE').map((f) => f.headers['message-id'])).toEqual(Array.from({ length: damaged }, (_, i) => `m-${i}`));

      // A pull from the damaged batch answers why, and moves nothing; a fetch too.
      expect((await call(base, 'POST', '/v1/groups/g/members', { member: 'm', topics: ['rot'] })).status).toBe(200);
      expect((await call(base, 'POST', '/v1/groups/g/members/m/seek', { topic: 'rot', partition: 0, target: { to: 'offset', offset: damaged } })).status).toBe(
        200,
      );
      const pulled = await call(base, 'POST', '/v1/groups/g/members/m/pull', { maxWaitMs: 0 });
      expect(pulled.status).toBeGreaterThanOrEqual(500);
      expect(pulled.body.error.code).toBe('storage-error');
      expect(pulled.body.error.message).toMatch(new RegExp(`offset ${damaged}`));
      const fetched = await call(base, 'POST', '/v1/groups/g/members/m/fetch', { maxWaitMs: 0 });
      expect(fetched.body.error.code).toBe('storage-error');
      // A seek to the damaged message's timestamp must read the damaged batch (one message a batch
      // here): an error for that request only, not the end of the broker worker that scans.
      const byTime = await call(base, 'POST', '/v1/groups/g/members/m/seek', {
        topic: 'rot',
        partition: 0,
        target: { to: 'timestamp', timestamp: timestamps[damaged] },
      });
      expect(byTime.body.error.code).toBe('storage-error');
      const before = await call(base, 'POST', '/v1/groups/g/members/m/seek', {
        topic: 'rot',
        partition: 0,
        target: { to: 'timestamp', timestamp: timestamps[2] },
      });
      expect(before.body).toMatchObject({ position: 2 });

      // Still serving: health, and publishing to and reading the same partition's end.
      expect((await call(base, 'GET', '/health')).status).toBe(200);
      const again = await connectStompJs(server.wsUrl);
      await publishWithReceipt(again, '/producer/publish/rot', canonical('after', 'k', 'after the damage'));
      await again.deactivate();
      expect((await call(base, 'GET', '/v1/topics/rot')).body.partitions[0].logEndOffset).toBe(61);
      expect(tail.all('MESSAGE')).toHaveLength(damaged);
      tail.close();
    },
  );
});

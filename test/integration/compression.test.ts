import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BATCH_HEADER_BYTES, readBatchInfo } from '../../src/storage/index.js';
import { canonical, connectStompJs, publishWithReceipt, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';
import { TESTING_POSTGRES } from '../helpers/postgres.js';

const CODEC_BITS = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 } as const;

/** The codec bits of every batch in a topic's segment files. */
function storedCodecs(dataDir: string, topic: string): Set<number> {
  const codecs = new Set<number>();
  for (const partition of fs.readdirSync(path.join(dataDir, 'topics', topic)).filter((name) => /^\d+$/.test(name))) {
    const directory = path.join(dataDir, 'topics', topic, partition);
    for (const file of fs.readdirSync(directory).filter((name) => name.endsWith('.log'))) {
      const bytes = fs.readFileSync(path.join(directory, file));
      for (let position = 0; position + BATCH_HEADER_BYTES <= bytes.length; ) {
        const info = readBatchInfo(bytes, position);
        codecs.add(info.attributes & 7);
        position += info.size;
      }
    }
  }
  return codecs;
}

describe('compressed topics', () => {
  const servers = useServers();

  // Looks at the codec of the segment files on disk: the embedded store's.
  it.skipIf(TESTING_POSTGRES)(
    'stores batches with the topic codec (topics.compression, or its definition) and delivers the same messages, headers and bodies, before and after a restart',
    async () => {
      const dataDir = servers.tempDir();
      const settings = {
        topics: {
          compression: 'zstd' as const,
          definitions: [
            { name: 'logs', partitions: 2, compression: 'lz4' as const },
            { name: 'plain', partitions: 2, compression: 'none' as const },
          ],
        },
      };
      const server = await servers.start(settings, dataDir);
      const client = await connectStompJs(server.wsUrl);
      const sent = new Map<string, { body: string; trace: string }>();
      for (const topic of ['events', 'logs', 'plain']) {
        for (let i = 0; i < 60; i++) {
          const id = `${topic}-${i}`;
          const body = canonical(id, `key-${i % 5}`, `the same words again and again, message ${i} of topic ${topic}`);
          sent.set(id, { body, trace: `trace-${i}` });
          // A turn's publishes make one batch per partition: many records each, so they compress.
          client.publish({ destination: `/producer/publish/${topic}`, body, headers: { 'x-trace': `trace-${i}` } });
        }
        const last = canonical(`${topic}-last`, 'key-0', 'last');
        await publishWithReceipt(client, `/producer/publish/${topic}`, last);
        sent.set(`${topic}-last`, { body: last, trace: '' });
      }
      await client.deactivate();

      expect(storedCodecs(dataDir, 'events')).toContain(CODEC_BITS.zstd);
      expect(storedCodecs(dataDir, 'logs')).toContain(CODEC_BITS.lz4);
      expect(storedCodecs(dataDir, 'plain')).toEqual(new Set([CODEC_BITS.none]));

      const check = async (running: { httpPort: number; stompPort: number }): Promise<void> => {
        for (const topic of ['events', 'logs', 'plain']) {
          const messages = await readTopic(running, topic);
          expect(messages.map((m) => m.messageId).sort()).toEqual([...sent.keys()].filter((id) => id.startsWith(`${topic}-`)).sort());
          for (const message of messages) expect(message.body.toString()).toBe(sent.get(message.messageId)!.body);
        }
        // Headers survive compression too: read one partition of a compressed topic raw.
        const reader = await RawStompClient.session(running.stompPort);
        reader.send('SUBSCRIBE', { id: 'h', destination: '/topic/events', from: 'earliest', receipt: 'r' });
        await reader.receipt('r');
        await until('every events message', () => reader.all('MESSAGE').length >= 61);
        for (const frame of reader.all('MESSAGE')) {
          const id = frame.headers['message-id']!;
          if (sent.get(id)!.trace !== '') expect(frame.headers['x-trace']).toBe(sent.get(id)!.trace);
        }
        reader.close();
      };
      await check(server);
      await server.close();
      const again = await servers.start(settings, dataDir);
      await check(again);
    },
  );

  it.skipIf(TESTING_POSTGRES)(
    'a subscription whose one read of compressed batches holds more messages than it queues at once (16,384) delivers every one, once, in order',
    async () => {
      const server = await servers.start({ topics: { definitions: [{ name: 'many', partitions: 1, compression: 'zstd' }] } });
      const producer = await RawStompClient.session(server.stompPort);
      const total = 20_000;
      // One write: the broker reads it in one turn, so it becomes one batch of (nearly) every message.
      let frames = '';
      for (let i = 0; i < total; i++) {
        const body = JSON.stringify({ messageID: `m${i}`, key: 'k', message: i });
        frames += `SEND\ndestination:/producer/publish/many\n${i === total - 1 ? 'receipt:done\n' : ''}content-length:${Buffer.byteLength(body)}\n\n${body}\0`;
      }
      producer.write(frames);
      await producer.receipt('done');
      producer.close();

      // Compressed, the whole topic is smaller than one read of a subscription (256 KiB), so its first
      // read holds all 20,000 messages: more than the 16,384 it queues, and it must go on from there.
      const segment = fs.statSync(path.join(server.dataDir, 'topics', 'many', '0', `${'0'.padStart(20, '0')}.log`));
      expect(segment.size).toBeLessThan(256 * 1024);
      const reader = await RawStompClient.session(server.stompPort);
      reader.send('SUBSCRIBE', { id: 'r', destination: '/topic/many', from: 'earliest', receipt: 'subscribed' });
      await reader.receipt('subscribed');
      await until(`${total} messages`, () => reader.all('MESSAGE').length >= total, 30_000);
      const offsets = reader.all('MESSAGE').map((frame) => Number(frame.headers.offset));
      expect(offsets).toEqual(Array.from({ length: total }, (_, i) => i));
      expect(reader.all('MESSAGE').map((frame) => frame.headers['message-id'])).toEqual(Array.from({ length: total }, (_, i) => `m${i}`));
      reader.close();
    },
  );
});

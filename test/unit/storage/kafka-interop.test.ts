import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildControlBatch,
  compressBatch,
  forEachRecord,
  isBatchValid,
  PartitionLog,
  readBatchInfo,
  readBatchProducer,
  RecordBatchBuilder,
  type LogConfig,
  type StoredRecord,
} from '../../../src/storage/index.js';
import { stampBatch } from '../../../src/storage/record-batch/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

/*
 * Proof that Rill's segments hold Kafka's RecordBatch v2 and not something merely like it: an
 * implementation nobody here wrote (kafkajs's protocol code, plain JavaScript) reads what Rill
 * writes and writes what Rill reads. kafkajs does not check CRCs when it decodes, so each CRC is
 * checked here with kafkajs's own CRC32C (the one its encoder uses), not with Rill's.
 */
const require = createRequire(import.meta.url);
const Decoder = require('kafkajs/src/protocol/decoder.js') as typeof import('kafkajs/src/protocol/decoder.js');
const decodeBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as typeof import('kafkajs/src/protocol/recordBatch/v0/decoder.js');
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as typeof import('kafkajs/src/protocol/recordBatch/v0/index.js');
const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as typeof import('kafkajs/src/protocol/recordBatch/record/v0/index.js');
const kafkajsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as typeof import('kafkajs/src/protocol/recordBatch/crc32C/index.js');

type DecodedBatch = import('kafkajs/src/protocol/recordBatch/v0/decoder.js').DecodedBatch;

/** Kafka's codec ids (attributes bits 0-2); kafkajs has gzip built in, the others need plugins. */
const KAFKA_GZIP = 1;
/** Kafka's ControlRecordType. */
const CONTROL_ABORT = 0;
const CONTROL_COMMIT = 1;

const config: LogConfig = {
  segmentBytes: 64 << 20,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 256,
  retentionMs: -1,
  retentionBytes: -1,
};

/** A record as kafkajs's producer takes it: headers by name, an array for a name given more than once. */
interface KafkaRecord {
  timestamp: number;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string | string[]>;
}

interface KafkaBatchOptions {
  compression?: number;
  transactional?: boolean;
  producerId?: number;
  producerEpoch?: number;
  firstSequence?: number;
}

/** A batch encoded by kafkajs, as its producer encodes one (v3+ Produce): base timestamp the smallest, deltas from it. */
async function kafkajsBatch(records: KafkaRecord[], options: KafkaBatchOptions = {}): Promise<Buffer> {
  const timestamps = records.map((record) => record.timestamp);
  const first = Math.min(...timestamps);
  const encoder = await RecordBatch({
    ...options,
    firstTimestamp: first,
    maxTimestamp: Math.max(...timestamps),
    lastOffsetDelta: records.length - 1,
    records: records.map((record, i) =>
      Record({ offsetDelta: i, timestampDelta: record.timestamp - first, key: record.key, value: record.value, headers: record.headers }),
    ),
  });
  // A copy: the log stamps the batch it is given.
  return Buffer.from(encoder.buffer);
}

/** Every batch of a buffer of batches, decoded by kafkajs, with where it lies. */
async function kafkajsDecodeAll(bytes: Buffer): Promise<Array<{ position: number; size: number; batch: DecodedBatch }>> {
  const decoder = new Decoder(bytes);
  const batches: Array<{ position: number; size: number; batch: DecodedBatch }> = [];
  while (decoder.offset < bytes.length) {
    const position = decoder.offset;
    const batch = await decodeBatch(decoder);
    batches.push({ position, size: decoder.offset - position, batch });
  }
  return batches;
}

/** Whether the CRC field of the batch at `position` is what kafkajs's CRC32C makes of its attributes-to-end bytes. */
function kafkajsCrcHolds(bytes: Buffer, position: number, size: number): boolean {
  return kafkajsCrc32C(bytes.subarray(position + 21, position + size)) === bytes.readUInt32BE(position + 17);
}

/** Headers as kafkajs's decoder gives them: by name, values as bytes, an array for a repeated name. */
function asKafkajsHeaders(pairs: ReadonlyArray<readonly [string, string]>): Record<string, Buffer | Buffer[]> {
  const headers: Record<string, Buffer | Buffer[]> = {};
  for (const [name, value] of pairs) {
    const bytes = Buffer.from(value, 'utf8');
    const previous = headers[name];
    headers[name] = previous === undefined ? bytes : Array.isArray(previous) ? [...previous, bytes] : [previous, bytes];
  }
  return headers;
}

/** What Rill's reader should make of a record kafkajs wrote: `message-id` (its first) is the messageId, the rest stay headers. */
function asStored(record: KafkaRecord, offset: number): StoredRecord {
  const pairs = Object.entries(record.headers).flatMap(
    ([name, value]): Array<[string, string]> => (Array.isArray(value) ? value.map((v): [string, string] => [name, v]) : [[name, value]]),
  );
  const idAt = pairs.findIndex(([name]) => name === 'message-id');
  return {
    offset,
    timestamp: record.timestamp,
    key: record.key,
    messageId: idAt < 0 ? null : pairs[idAt]![1],
    headers: pairs.filter((_, i) => i !== idAt),
    // A null value (a Kafka tombstone) reads as empty, marked as a tombstone.
    value: record.value ?? Buffer.alloc(0),
    tombstone: record.value === null,
  };
}

function recordsOf(batches: Buffer, from: number, until = Number.MAX_SAFE_INTEGER): StoredRecord[] {
  const seen: StoredRecord[] = [];
  forEachRecord(batches, from, (record) => (record.offset < until ? void seen.push(record) : false));
  return seen;
}

/** One line per record, everything it carries, for comparing whole logs. */
function describeRecord(record: StoredRecord): string {
  return JSON.stringify([record.offset, record.timestamp, record.key, record.messageId, record.headers, record.value.toString('base64')]);
}

const text = fc.string({ unit: 'grapheme', maxLength: 30 });
/** Header names a STOMP producer sends, and any other; not names an object already has (kafkajs decodes headers into a plain object). */
const headerName = fc.oneof(fc.constantFrom('content-type', 'persistent', 'correlation-id', 'reply-to', 'x-trace'), text).filter((name) => !(name in {}));
const timestamp = fc.integer({ min: 0, max: 8.64e15 });

/** Three records of every kind: keyed and not, with a messageId and STOMP headers, binary and text values. */
function rillRecords(builder: RecordBatchBuilder, base: number, count: number): void {
  for (let i = 0; i < count; i++) {
    builder.append(
      1_700_000_000_000 + base * 10 + i,
      i % 3 === 2 ? null : `key-${base + i}`,
      i % 4 === 3 ? null : `id-${base + i}`,
      i % 2 === 0
        ? [
            ['content-type', 'text/plain'],
            ['x-n', String(i)],
          ]
        : null,
      i % 5 === 4 ? Buffer.from([0xff, 0x00, i]) : Buffer.from(`message ${base + i} `.repeat(1 + (i % 4))),
    );
  }
}

describe('kafkajs reads what Rill writes', () => {
  const tempDir = useTempDirs();

  it('decodes any batch RecordBatchBuilder makes: offsets, timestamps, keys, values, headers, no producer, and a CRC kafkajs computes alike', async () => {
    const input = fc.record({
      timestamp,
      key: fc.option(text, { nil: null }),
      messageId: fc.option(text, { nil: null }),
      headers: fc.array(
        fc.tuple(
          headerName.filter((name) => name !== 'message-id'),
          text,
        ),
        { maxLength: 4 },
      ),
      value: fc.option(
        fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
        { nil: null },
      ),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(input, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 2 ** 40 }), async (inputs, baseOffset) => {
        const builder = new RecordBatchBuilder(64);
        for (const r of inputs) builder.append(r.timestamp, r.key, r.messageId, r.headers, r.value);
        const bytes = Buffer.from(builder.finish());
        stampBatch(bytes, baseOffset);

        const [decoded, ...more] = await kafkajsDecodeAll(bytes);
        expect(more).toEqual([]);
        expect(decoded!.size).toBe(bytes.length);
        expect(kafkajsCrcHolds(bytes, 0, bytes.length)).toBe(true);
        const { records, ...header } = decoded!.batch;
        const timestamps = inputs.map((r) => r.timestamp);
        expect(header).toEqual({
          firstOffset: String(baseOffset),
          lastOffsetDelta: inputs.length - 1,
          partitionLeaderEpoch: 0,
          firstTimestamp: String(timestamps[0]),
          maxTimestamp: String(Math.max(...timestamps)),
          producerId: '-1',
          producerEpoch: -1,
          firstSequence: -1,
          inTransaction: false,
          isControlBatch: false,
          timestampType: 0, // CreateTime
        });
        expect(records).toHaveLength(inputs.length);
        inputs.forEach((want, i) => {
          const got = records[i]!;
          expect(got.magicByte).toBe(2);
          expect(got.attributes).toBe(0);
          expect(got.offset).toBe(String(baseOffset + i));
          expect(got.timestamp).toBe(String(want.timestamp));
          expect(got.key).toEqual(want.key === null ? null : Buffer.from(want.key, 'utf8'));
          expect(got.value).toEqual(want.value);
          const pairs: Array<[string, string]> = want.messageId === null ? [...want.headers] : [['message-id', want.messageId], ...want.headers];
          expect(got.headers).toEqual(asKafkajsHeaders(pairs));
        });
      }),
      { numRuns: 150 },
    );
  });

  it('decodes a real segment file PartitionLog wrote, batch after batch: plain, gzip and control batches', async () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    const plain = new RecordBatchBuilder(64);
    rillRecords(plain, 0, 5);
    log.append(plain.finish());
    const gzip = new RecordBatchBuilder(64);
    rillRecords(gzip, 5, 30);
    const compressed = compressBatch(gzip.finish(), 'gzip');
    expect(compressed.readInt16BE(21) & 7).toBe(KAFKA_GZIP);
    log.append(compressed);
    log.append(buildControlBatch({ type: 'abort', producerId: 31, producerEpoch: 4, coordinatorEpoch: 9, timestamp: 1_700_000_001_000 }));
    const last = new RecordBatchBuilder(64);
    rillRecords(last, 36, 3);
    log.append(last.finish());
    // What Rill's own reader makes of the log, to hold kafkajs's reading against.
    const stored = recordsOf(log.read(0, 1 << 20), 0);
    await log.flush();
    log.close();

    const segment = fs.readFileSync(path.join(dir, '00000000000000000000.log'));
    const batches = await kafkajsDecodeAll(segment);
    expect(batches.map(({ batch }) => [batch.firstOffset, batch.lastOffsetDelta, batch.records.length])).toEqual([
      ['0', 4, 5],
      ['5', 29, 30],
      ['35', 0, 1],
      ['36', 2, 3],
    ]);
    for (const { position, size } of batches) expect(kafkajsCrcHolds(segment, position, size), `batch at ${position}`).toBe(true);
    expect(batches.map(({ batch }) => batch.isControlBatch)).toEqual([false, false, true, false]);

    const messages = batches.filter(({ batch }) => !batch.isControlBatch).flatMap(({ batch }) => batch.records);
    expect(messages.map((record) => Number(record.offset))).toEqual([...Array.from({ length: 35 }, (_, i) => i), 36, 37, 38]);
    expect(messages).toHaveLength(stored.length);
    messages.forEach((got, i) => {
      const want = stored[i]!;
      expect(Number(got.offset)).toBe(want.offset);
      expect(got.timestamp).toBe(String(want.timestamp));
      expect(got.key).toEqual(want.key === null ? null : Buffer.from(want.key));
      expect(got.value).toEqual(want.value);
      const pairs: Array<[string, string]> = want.messageId === null ? want.headers : [['message-id', want.messageId], ...want.headers];
      expect(got.headers).toEqual(asKafkajsHeaders(pairs));
    });
    // Spot checks against what was written, not only against Rill's reading of it.
    expect(messages[0]!.headers).toEqual(
      asKafkajsHeaders([
        ['message-id', 'id-0'],
        ['content-type', 'text/plain'],
        ['x-n', '0'],
      ]),
    );
    expect(messages[4]!.value).toEqual(Buffer.from([0xff, 0x00, 4]));
    expect(messages[7]!.key).toBeNull();
  });

  it("decodes Rill's transaction markers as Kafka control batches: flags, producer, and Kafka's EndTransactionMarker", async () => {
    for (const [type, kafkaType] of [
      ['abort', CONTROL_ABORT],
      ['commit', CONTROL_COMMIT],
    ] as const) {
      const marker = buildControlBatch({ type, producerId: 2 ** 40 + 3, producerEpoch: 17, coordinatorEpoch: 123_456, timestamp: 1_700_000_000_500 });
      stampBatch(marker, 900);
      const [decoded] = await kafkajsDecodeAll(marker);
      expect(kafkajsCrcHolds(marker, 0, marker.length)).toBe(true);
      const { records, ...header } = decoded!.batch;
      expect(header).toMatchObject({
        firstOffset: '900',
        lastOffsetDelta: 0,
        isControlBatch: true,
        inTransaction: true,
        producerId: String(2 ** 40 + 3),
        producerEpoch: 17,
        firstSequence: -1,
        firstTimestamp: '1700000000500',
        maxTimestamp: '1700000000500',
      });
      expect(records).toHaveLength(1);
      const [record] = records;
      expect(record!.isControlRecord).toBe(true);
      expect(record!.offset).toBe('900');
      // Key: version int16 0, type int16. Value: version int16 0, coordinatorEpoch int32.
      expect(record!.key).toEqual(Buffer.from([0, 0, 0, kafkaType]));
      expect(record!.value).toEqual(Buffer.from([0, 0, 0x00, 0x01, 0xe2, 0x40]));
      expect(record!.headers).toEqual({});
    }
  });
});

describe('Rill reads what kafkajs writes', () => {
  const tempDir = useTempDirs();

  const kafkaRecord = fc.record({
    timestamp,
    key: fc.option(text, { nil: null }),
    value: fc.option(
      fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
      { nil: null },
    ),
    headers: fc
      .array(fc.tuple(fc.oneof(fc.constant('message-id'), headerName), fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 }))), { maxLength: 5 })
      .map((entries) => Object.fromEntries(entries) as Record<string, string | string[]>),
  });
  const producer = fc.option(
    fc.record({
      producerId: fc.integer({ min: 0, max: 2 ** 40 }),
      producerEpoch: fc.integer({ min: 0, max: 32_767 }),
      firstSequence: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      transactional: fc.boolean(),
    }),
    { nil: null },
  );

  it('appends any batch kafkajs encodes (plain or gzip) unchanged but for its base offset, and reads every record back', async () => {
    const { log } = PartitionLog.open(tempDir(), config);
    await fc.assert(
      fc.asyncProperty(
        fc.array(kafkaRecord, { minLength: 1, maxLength: 10 }),
        fc.constantFrom(0, KAFKA_GZIP),
        producer,
        async (records, compression, writer) => {
          const encoded = await kafkajsBatch(records, { compression, ...(writer ?? {}) });
          const info = log.append(Buffer.from(encoded));
          expect(info.nextOffset - info.baseOffset).toBe(records.length);

          const stored = log.read(info.baseOffset, 1 << 20);
          const size = readBatchInfo(stored).size;
          expect(size).toBe(encoded.length);
          // Stored byte for byte as kafkajs wrote it, the base offset aside: Rill's CRC is kafkajs's.
          expect(stored.readBigInt64BE(0)).toBe(BigInt(info.baseOffset));
          expect(Buffer.compare(stored.subarray(8, size), encoded.subarray(8))).toBe(0);
          expect(isBatchValid(stored, 0, size)).toBe(true);
          expect(readBatchProducer(stored)).toEqual(
            writer === null
              ? { producerId: -1, producerEpoch: 0, baseSequence: 0, transactional: false } // kafkajs's defaults
              : { producerId: writer.producerId, producerEpoch: writer.producerEpoch, baseSequence: writer.firstSequence, transactional: writer.transactional },
          );
          expect(recordsOf(stored, info.baseOffset, info.nextOffset)).toEqual(records.map((record, i) => asStored(record, info.baseOffset + i)));
        },
      ),
      { numRuns: 150 },
    );
    log.close();
  });

  it('surfaces the `message-id` header as the messageId wherever it is among the headers, and keeps the STOMP headers in order', async () => {
    const { log } = PartitionLog.open(tempDir(), config);
    const records: KafkaRecord[] = [
      {
        timestamp: 1_700_000_000_000,
        key: 'order-1',
        value: Buffer.from('{"a":1}'),
        headers: { 'content-type': 'application/json', 'message-id': 'm-1', persistent: 'true' },
      },
      { timestamp: 1_700_000_000_007, key: null, value: Buffer.from('no id'), headers: { 'x-trace': ['t1', 't2'] } },
      { timestamp: 1_699_999_999_990, key: 'order-1', value: null, headers: { 'message-id': 'm-3' } },
    ];
    for (const compression of [0, KAFKA_GZIP]) {
      const info = log.append(await kafkajsBatch(records, { compression }));
      expect(recordsOf(log.read(info.baseOffset, 1 << 20), info.baseOffset, info.nextOffset)).toEqual([
        {
          offset: info.baseOffset,
          timestamp: 1_700_000_000_000,
          key: 'order-1',
          messageId: 'm-1',
          headers: [
            ['content-type', 'application/json'],
            ['persistent', 'true'],
          ],
          value: Buffer.from('{"a":1}'),
          tombstone: false,
        },
        {
          offset: info.baseOffset + 1,
          timestamp: 1_700_000_000_007,
          key: null,
          messageId: null,
          headers: [
            ['x-trace', 't1'],
            ['x-trace', 't2'],
          ],
          value: Buffer.from('no id'),
          tombstone: false,
        },
        // Kafka's null value: a tombstone, read as an empty value.
        {
          offset: info.baseOffset + 2,
          timestamp: 1_699_999_999_990,
          key: 'order-1',
          messageId: 'm-3',
          headers: [],
          value: Buffer.alloc(0),
          tombstone: true,
        },
      ]);
    }
    // The gzip batch really is compressed (kafkajs set the codec bits), and the log keeps it so.
    const gzipped = log.read(3, 1 << 20);
    expect(gzipped.readInt16BE(21) & 7).toBe(KAFKA_GZIP);
    log.close();
  });
});

describe('damaged segments holding foreign batches', () => {
  const tempDir = useTempDirs();
  const smallSegments: LogConfig = { ...config, segmentBytes: 700 };

  interface Layout {
    /** The segment files, by name, as the log left them. */
    files: Map<string, Buffer>;
    /** Every batch: its file, where it lies, and its offsets. */
    batches: Array<{ file: string; start: number; end: number; baseOffset: number; nextOffset: number }>;
    /** Every record, in offset order, as describeRecord prints it. */
    records: string[];
    endOffset: number;
  }

  /**
   * A log of several segments holding batches of every origin: Rill's builder (plain and lz4),
   * kafkajs (plain, gzip, transactional) and a Rill transaction marker.
   */
  async function writeLog(): Promise<Layout> {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, smallSegments);
    const rill = (base: number, count: number): Buffer => {
      const builder = new RecordBatchBuilder(64);
      rillRecords(builder, base, count);
      return builder.finish();
    };
    const kafka = (base: number, count: number): KafkaRecord[] =>
      Array.from(
        { length: count },
        (_, i): KafkaRecord => ({
          timestamp: 1_700_000_100_000 + base + i,
          key: i % 2 === 0 ? `kafka-${base + i}` : null,
          value: Buffer.from(`from kafkajs ${base + i} `.repeat(1 + (i % 3))),
          headers: i % 3 === 1 ? { 'content-type': 'text/plain' } : { 'content-type': 'text/plain', 'message-id': `k-${base + i}` },
        }),
      );
    log.append(rill(0, 3));
    log.append(await kafkajsBatch(kafka(3, 3)));
    log.append(await kafkajsBatch(kafka(6, 6), { compression: KAFKA_GZIP }));
    log.append(buildControlBatch({ type: 'commit', producerId: 5, producerEpoch: 0, coordinatorEpoch: 1, timestamp: 1_700_000_200_000 }));
    log.append(compressBatch(rill(13, 12), 'lz4'));
    log.append(await kafkajsBatch(kafka(25, 2), { transactional: true, producerId: 5, producerEpoch: 1, firstSequence: 0 }));
    log.append(rill(27, 1));
    const records = contents(log);
    expect(records).toHaveLength(27); // 28 offsets, one of them the marker's
    const endOffset = log.logEndOffset;
    await log.flush();
    log.close();

    const files = new Map<string, Buffer>();
    const batches: Layout['batches'] = [];
    for (const file of fs
      .readdirSync(dir)
      .filter((name) => name.endsWith('.log'))
      .sort()) {
      const bytes = fs.readFileSync(path.join(dir, file));
      files.set(file, bytes);
      for (let start = 0; start < bytes.length; ) {
        const info = readBatchInfo(bytes, start);
        batches.push({ file, start, end: start + info.size, baseOffset: info.baseOffset, nextOffset: info.nextOffset });
        start += info.size;
      }
    }
    return { files, batches, records, endOffset };
  }

  /** Every record of a log, in offset order, read as a consumer would. */
  function contents(log: PartitionLog): string[] {
    const seen: string[] = [];
    let offset = log.logStartOffset;
    while (offset < log.logEndOffset) {
      const data = log.read(offset, 1 << 20);
      if (data.length === 0) break;
      offset = forEachRecord(data, offset, (record) => void seen.push(describeRecord(record)));
    }
    return seen;
  }

  const offsetOf = (line: string): number => (JSON.parse(line) as [number])[0];

  it('recovery cuts the log exactly at a torn or damaged batch: what precedes it intact, nothing after it, later segments dropped', async () => {
    const layout = await writeLog();
    const fileNames = [...layout.files.keys()];
    expect(fileNames.length).toBeGreaterThanOrEqual(3);
    const damage = fc.record({
      batch: fc.nat(layout.batches.length - 1),
      /** Where in the batch, as a fraction of its size. */
      at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      kind: fc.oneof(fc.constant<'cut'>('cut'), fc.integer({ min: 1, max: 255 })),
    });
    fc.assert(
      fc.property(damage, ({ batch: k, at, kind }) => {
        const target = layout.batches[k]!;
        const position = target.start + Math.floor(at * (target.end - target.start));
        const relative = position - target.start;
        // As after kill -9: the segment files alone (no clean-shutdown marker, recovery point or indexes).
        const dir = tempDir();
        for (const [file, bytes] of layout.files) {
          let written = bytes;
          if (file === target.file) {
            written = kind === 'cut' ? bytes.subarray(0, position) : Buffer.from(bytes);
            if (kind !== 'cut') written[position]! ^= kind;
          }
          fs.writeFileSync(path.join(dir, file), written);
        }
        const { log, recovery } = PartitionLog.open(dir, smallSegments);
        try {
          // The partition leader epoch (bytes 12-15) is outside the CRC, in Kafka as here, and nobody reads it.
          if (kind !== 'cut' && relative >= 12 && relative < 16) {
            expect(log.logEndOffset).toBe(layout.endOffset);
            expect(contents(log)).toEqual(layout.records);
            expect(recovery).toMatchObject({ truncatedBytes: 0, droppedSegments: 0 });
            return;
          }
          expect(log.logEndOffset).toBe(target.baseOffset);
          expect(contents(log)).toEqual(layout.records.filter((line) => offsetOf(line) < target.baseOffset));
          expect(fs.statSync(path.join(dir, target.file)).size).toBe(target.start);
          const later = fileNames.slice(fileNames.indexOf(target.file) + 1);
          for (const file of later) expect(fs.existsSync(path.join(dir, file)), file).toBe(false);
          expect(recovery.droppedSegments).toBe(later.length);
          // Bytes cut from the damaged segment; the later ones are dropped whole.
          expect(recovery.truncatedBytes).toBe((kind === 'cut' ? position : layout.files.get(target.file)!.length) - target.start);
        } finally {
          log.close();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 400 },
    );
  });

  /*
   * forEachRecord does not check CRCs (recovery and the journal replay do, before a batch is ever
   * read), so on damaged bytes it may yield altered records. What it must do: return or throw an
   * Error, in bounded time, without taking the process down (its codecs are native code), and
   * never let damage reach the records of the batches before it. It runs in a child process, so
   * that a hang or a crash fails the test instead of the test run.
   */
  interface Outcome {
    records: string[];
    error: { name: string; isError: boolean; message: string } | null;
  }

  const CHILD = `
import fs from 'node:fs';
const [moduleUrl, casesFile, resultsFile, progressFile] = process.argv.slice(2);
// Progress goes to a file: a pipe to the parent can refuse a synchronous write (EAGAIN) under load.
const progress = fs.openSync(progressFile, 'w');
const { forEachRecord } = await import(moduleUrl);
const cases = JSON.parse(fs.readFileSync(casesFile, 'utf8'));
const results = [];
for (let i = 0; i < cases.length; i++) {
  fs.writeSync(progress, 'case ' + i + '\\n');
  const records = [];
  let error = null;
  try {
    forEachRecord(Buffer.from(cases[i].bytes, 'base64'), cases[i].from, (r) => {
      records.push(JSON.stringify([r.offset, r.timestamp, r.key, r.messageId, r.headers, r.value.toString('base64')]));
    });
  } catch (e) {
    error = { name: e?.constructor?.name ?? typeof e, isError: e instanceof Error, message: String(e?.message ?? e) };
  }
  results.push({ records, error });
}
fs.writeFileSync(resultsFile, JSON.stringify(results));
`;

  /** Runs forEachRecord over each case in a child process; rejects naming the case that hung or crashed it. */
  async function readInChild(cases: Array<{ bytes: Buffer; from: number; label: string }>, timeoutMs: number): Promise<Outcome[]> {
    const dir = tempDir();
    const script = path.join(dir, 'read-records.mjs');
    fs.writeFileSync(script, CHILD);
    fs.writeFileSync(path.join(dir, 'cases.json'), JSON.stringify(cases.map((c) => ({ bytes: c.bytes.toString('base64'), from: c.from }))));
    const moduleUrl = pathToFileURL(fileURLToPath(new URL('../../../src/storage/record-batch/index.ts', import.meta.url))).href;
    const progressFile = path.join(dir, 'progress.txt');
    try {
      await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', script, moduleUrl, path.join(dir, 'cases.json'), path.join(dir, 'results.json'), progressFile],
        {
          timeout: timeoutMs,
          killSignal: 'SIGKILL',
          maxBuffer: 64 << 20,
        },
      );
    } catch (error) {
      const { stderr = '', signal = null, code = null } = error as { stderr?: string; signal?: string | null; code?: number | null };
      const reached = fs.existsSync(progressFile) ? fs.readFileSync(progressFile, 'utf8') : '';
      const lastCase = Number(reached.match(/case (\d+)\n(?![\s\S]*case \d+\n)/)?.[1]);
      const what = signal === 'SIGKILL' ? `did not return within ${timeoutMs} ms` : `took its process down (code ${code}, signal ${signal})`;
      throw new Error(`forEachRecord ${what} on case ${lastCase}, ${cases[lastCase]?.label}: ${stderr.slice(-300)}`);
    }
    return JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as Outcome[];
  }

  it('forEachRecord on torn or damaged bytes returns or throws an Error, never crashes, and never alters the records of earlier batches', async () => {
    const layout = await writeLog();
    const bytes = Buffer.concat([...layout.files.values()]);
    const starts = layout.batches.map((_, k) => layout.batches.slice(0, k).reduce((sum, b) => sum + b.end - b.start, 0));
    const batchAt = (position: number): number => starts.filter((start) => start <= position).length - 1;
    const recordsBefore = (k: number): string[] => layout.records.filter((line) => offsetOf(line) < layout.batches[k]!.baseOffset);

    const cases: Array<{ bytes: Buffer; from: number; kind: 'cut' | 'flip'; at: number; label: string }> = [];
    for (let cut = 0; cut < bytes.length; cut++) cases.push({ bytes: bytes.subarray(0, cut), from: 0, kind: 'cut', at: cut, label: `cut at ${cut}` });
    for (let at = 0; at < bytes.length; at++) {
      for (const xor of [0x01, 0x80, 0xff]) {
        const damaged = Buffer.from(bytes);
        damaged[at]! ^= xor;
        cases.push({ bytes: damaged, from: 0, kind: 'flip', at, label: `byte ${at} xor ${xor}` });
      }
    }
    // Runs of random bytes written over the batches: damage a single flip does not make.
    for (const [at, garbage] of fc.sample(fc.tuple(fc.nat(bytes.length - 1), fc.uint8Array({ minLength: 2, maxLength: 12 })), { numRuns: 300, seed: 42 })) {
      const damaged = Buffer.from(bytes);
      damaged.set(garbage.subarray(0, bytes.length - at), at);
      cases.push({ bytes: damaged, from: 0, kind: 'flip', at, label: `${garbage.length} random bytes at ${at}` });
    }

    const outcomes = await readInChild(cases, 120_000);
    const errorNames = new Set<string>();
    outcomes.forEach((outcome, i) => {
      const c = cases[i]!;
      const label = c.label;
      if (outcome.error !== null) {
        expect(outcome.error.isError, `${label}: ${outcome.error.name}`).toBe(true);
        errorNames.add(outcome.error.name);
      }
      if (c.kind === 'cut') {
        // A torn batch is no batch: exactly the whole batches before the cut, and no error.
        expect(outcome.error, label).toBeNull();
        const whole = layout.batches.filter((_, k) => starts[k]! + layout.batches[k]!.end - layout.batches[k]!.start <= c.at).length;
        expect(outcome.records, label).toEqual(whole === layout.batches.length ? layout.records : recordsBefore(whole));
        return;
      }
      const k = batchAt(c.at);
      expect(outcome.records.slice(0, recordsBefore(k).length), label).toEqual(recordsBefore(k));
    });
    // The damage made the reader fail on some cases at least (else this test proves little).
    expect(errorNames.size).toBeGreaterThan(0);
  });

  it('forEachRecord returns on a batch whose length field claims fewer bytes than a header, when it steps over that batch', async () => {
    const marker = buildControlBatch({ type: 'commit', producerId: 1, producerEpoch: 0, coordinatorEpoch: 0, timestamp: 1 });
    stampBatch(marker, 0);
    const builder = new RecordBatchBuilder(64);
    builder.append(1, 'k', 'm', null, Buffer.from('v'));
    const data = Buffer.from(builder.finish());
    stampBatch(data, 0);
    const cases: Array<{ bytes: Buffer; from: number; label: string }> = [];
    for (const claimed of [-12, -11, 0]) {
      // batchLength -12 makes the batch's size 0: a reader that steps over it by its size never moves.
      const damagedMarker = Buffer.from(marker);
      damagedMarker.writeInt32BE(claimed, 8);
      cases.push({ bytes: damagedMarker, from: 0, label: `a control batch whose batchLength is ${claimed}` });
      const damagedData = Buffer.from(data);
      damagedData.writeInt32BE(claimed, 8);
      // A read from past the batch steps over it too.
      cases.push({ bytes: damagedData, from: 5, label: `a batch read from past it whose batchLength is ${claimed}` });
    }
    const outcomes = await readInChild(cases, 15_000);
    for (const outcome of outcomes) {
      expect(outcome.records).toEqual([]);
      if (outcome.error !== null) expect(outcome.error.isError).toBe(true);
    }
  });
});

import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BATCH_HEADER_BYTES,
  buildControlBatch,
  compressBatch,
  CorruptRecordsError,
  forEachRecord,
  isBatchValid,
  isControlBatch,
  readBatchInfo,
  readBatchProducer,
  readControlMarker,
  RecordBatchBuilder,
  stampBatch,
  type StoredRecord,
} from '../../../src/storage/record-batch/index.js';
import { varintSize, VarintReader, writeVarint } from '../../../src/storage/record-batch/varint.js';

interface Input {
  timestamp: number;
  key: string | null;
  messageId: string | null;
  headers: Array<[string, string]> | null;
  value: Buffer;
}

function build(inputs: Input[], baseOffset = 0): Buffer {
  const builder = new RecordBatchBuilder(64);
  for (const r of inputs) builder.append(r.timestamp, r.key, r.messageId, r.headers, r.value);
  const batch = Buffer.from(builder.finish());
  stampBatch(batch, baseOffset);
  return batch;
}

function records(batches: Buffer, from = 0): StoredRecord[] {
  const seen: StoredRecord[] = [];
  forEachRecord(batches, from, (record) => void seen.push(record));
  return seen;
}

describe('varints', () => {
  it('round-trips every safe integer, in the size Kafka gives it', () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), (value) => {
        const buffer = Buffer.alloc(10);
        const end = writeVarint(buffer, value, 0);
        expect(end).toBe(varintSize(value));
        const reader = new VarintReader(buffer, 0, end);
        expect(reader.read()).toBe(value);
        expect(reader.position).toBe(end);
      }),
    );
    // Zig-zag: small magnitudes of either sign take one byte; -1 is 0x01, 1 is 0x02, 63 is 0x7e, -65 is 0x81 0x01.
    const bytes = (value: number): number[] => {
      const buffer = Buffer.alloc(10);
      return [...buffer.subarray(0, writeVarint(buffer, value, 0))];
    };
    expect(bytes(-1)).toEqual([0x01]);
    expect(bytes(1)).toEqual([0x02]);
    expect(bytes(63)).toEqual([0x7e]);
    expect(bytes(-65)).toEqual([0x81, 0x01]);
    expect(bytes(2 ** 31 - 1)).toEqual([0xfe, 0xff, 0xff, 0xff, 0x0f]);
  });

  it('refuses a varint that runs past its end', () => {
    expect(() => new VarintReader(Buffer.from([0x80, 0x80]), 0, 2).read()).toThrow(/past the end/);
  });
});

describe('RecordBatch v2', () => {
  it('lays the header out as Kafka does, big-endian, with no producer', () => {
    const batch = build(
      [
        { timestamp: 1_700_000_000_000, key: 'k', messageId: 'm1', headers: null, value: Buffer.from('a') },
        { timestamp: 1_700_000_000_005, key: null, messageId: null, headers: null, value: Buffer.from('b') },
      ],
      42,
    );
    expect(batch.readBigInt64BE(0)).toBe(42n);
    expect(batch.readInt32BE(8)).toBe(batch.length - 12);
    expect(batch.readInt8(16)).toBe(2);
    expect(batch.readUInt32BE(17)).toBe(crc32c(batch.subarray(21)));
    expect(batch.readInt16BE(21)).toBe(0);
    expect(batch.readInt32BE(23)).toBe(1); // lastOffsetDelta
    expect(batch.readBigInt64BE(27)).toBe(1_700_000_000_000n);
    expect(batch.readBigInt64BE(35)).toBe(1_700_000_000_005n);
    expect(batch.readBigInt64BE(43)).toBe(-1n);
    expect(batch.readInt16BE(51)).toBe(-1);
    expect(batch.readInt32BE(53)).toBe(-1);
    expect(batch.readInt32BE(57)).toBe(2);
    expect(readBatchInfo(batch)).toMatchObject({ baseOffset: 42, nextOffset: 44, size: batch.length, recordCount: 2 });
    expect(readBatchProducer(batch)).toEqual({ producerId: -1, producerEpoch: -1, baseSequence: -1, transactional: false });
    expect(isBatchValid(batch, 0, batch.length)).toBe(true);
  });

  it('checks CRC32C against the standard check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('round-trips keys, message ids, headers, values and timestamps of any kind', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 40 });
    const input = fc.record({
      timestamp: fc.integer({ min: 0, max: 8.64e15 }),
      key: fc.option(text, { nil: null }),
      messageId: fc.option(text, { nil: null }),
      headers: fc.option(fc.array(fc.tuple(text, text), { maxLength: 4 }), { nil: null }),
      value: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    });
    fc.assert(
      fc.property(fc.array(input, { minLength: 1, maxLength: 20 }), fc.integer({ min: 0, max: 2 ** 40 }), (inputs, baseOffset) => {
        const batch = build(inputs, baseOffset);
        expect(isBatchValid(batch, 0, batch.length)).toBe(true);
        const seen = records(batch);
        expect(seen.map((r) => r.offset)).toEqual(inputs.map((_, i) => baseOffset + i));
        for (let i = 0; i < inputs.length; i++) {
          const want = inputs[i]!;
          const got = seen[i]!;
          expect(got.timestamp).toBe(want.timestamp);
          expect(got.key).toBe(want.key);
          expect(got.messageId).toBe(want.messageId);
          // A producer's own `message-id` header cannot exist (it sets the message id), so headers come back as sent.
          expect(got.headers).toEqual(want.headers ?? []);
          expect(Buffer.compare(got.value, want.value)).toBe(0);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('reads from an offset inside a batch, and says where to go on', () => {
    const batch = build(
      [0, 1, 2, 3].map((i) => ({ timestamp: i, key: null, messageId: null, headers: null, value: Buffer.from(`v${i}`) })),
      10,
    );
    const seen: number[] = [];
    expect(forEachRecord(batch, 12, (r) => void seen.push(r.offset))).toBe(14);
    expect(seen).toEqual([12, 13]);
    // A visitor that refuses a record: the next read starts at that record.
    expect(forEachRecord(batch, 10, (r) => r.offset < 11)).toBe(11);
  });

  it('steps over transaction markers: they take an offset, are never a message, and a read ends past them', () => {
    const data = build([{ timestamp: 1, key: 'k', messageId: 'a', headers: null, value: Buffer.from('x') }], 0);
    const marker = buildControlBatch({ type: 'commit', producerId: 7, producerEpoch: 3, coordinatorEpoch: 5, timestamp: 99 });
    stampBatch(marker, 1);
    const after = build([{ timestamp: 2, key: 'k', messageId: 'b', headers: null, value: Buffer.from('y') }], 2);
    expect(isBatchValid(marker, 0, marker.length)).toBe(true);
    expect(isControlBatch(readBatchInfo(marker).attributes)).toBe(true);
    expect(readControlMarker(marker)).toEqual({ type: 'commit', producerId: 7, producerEpoch: 3, coordinatorEpoch: 5, timestamp: 99 });
    expect(readBatchProducer(marker)).toEqual({ producerId: 7, producerEpoch: 3, baseSequence: -1, transactional: true });
    expect(records(Buffer.concat([data, marker, after])).map((r) => [r.offset, r.messageId])).toEqual([
      [0, 'a'],
      [2, 'b'],
    ]);
    expect(forEachRecord(Buffer.concat([data, marker]), 1, () => {})).toBe(2);
    expect(readControlMarker(data)).toBeNull();
  });

  it('compresses the records of a batch as one block and reads them back', () => {
    const inputs = Array.from({ length: 50 }, (_, i) => ({
      timestamp: 1_000 + i,
      key: `key-${i % 7}`,
      messageId: `id-${i}`,
      headers: [['content-type', 'application/json']] as Array<[string, string]>,
      value: Buffer.from(JSON.stringify({ messageID: `id-${i}`, key: `key-${i % 7}`, message: 'hello '.repeat(10), timestamp: 1_000 + i })),
    }));
    const plain = build(inputs, 5);
    for (const codec of ['gzip', 'snappy', 'lz4', 'zstd'] as const) {
      const builder = new RecordBatchBuilder(64);
      for (const r of inputs) builder.append(r.timestamp, r.key, r.messageId, r.headers, r.value);
      const compressed = compressBatch(builder.finish(), codec);
      stampBatch(compressed, 5);
      expect(compressed.length, codec).toBeLessThan(plain.length / 2);
      expect(compressed.readInt16BE(21) & 7, codec).toBe(['none', 'gzip', 'snappy', 'lz4', 'zstd'].indexOf(codec));
      expect(isBatchValid(compressed, 0, compressed.length)).toBe(true);
      expect(readBatchInfo(compressed)).toMatchObject({ baseOffset: 5, nextOffset: 55, recordCount: 50 });
      expect(records(compressed)).toEqual(records(plain));
    }
  });

  it('never misreads a damaged batch: the CRC refuses it, or reading it throws CorruptRecordsError', () => {
    const batch = build(
      Array.from({ length: 5 }, (_, i) => ({
        timestamp: i,
        key: `k${i}`,
        messageId: `m${i}`,
        headers: [['h', `${i}`]] as Array<[string, string]>,
        value: Buffer.from(`value-${i}`),
      })),
      0,
    );
    const good = records(batch);
    fc.assert(
      fc.property(fc.integer({ min: BATCH_HEADER_BYTES, max: batch.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const damaged = Buffer.from(batch);
        damaged[at]! ^= xor;
        expect(isBatchValid(damaged, 0, damaged.length)).toBe(false);
        // A reader that skips the check still never crashes, and never returns records that were not written.
        try {
          const seen = records(damaged);
          expect(seen.length).toBeLessThanOrEqual(good.length);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
        }
      }),
      { numRuns: 300 },
    );
    for (let cut = 0; cut < batch.length; cut++) {
      // A torn batch is not a batch: readers stop before it.
      expect(records(batch.subarray(0, cut))).toEqual([]);
    }
    // A header that claims one record more than the batch holds: the reader runs out of bytes and says so.
    const short = Buffer.from(batch);
    short.writeInt32BE(6, 57);
    expect(() => records(short)).toThrow(CorruptRecordsError);
  });
});

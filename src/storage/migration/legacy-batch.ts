import { crc32c } from '@node-rs/crc32';
import { readInt64, writeInt64 } from '../int64.js';
// The old format's records read back as the new reader gives them: the same fields.
import type { StoredRecord } from '../record-batch/index.js';

/*
 * The record format of Rill before 0.2 (its own, modelled on Kafka's RecordBatch v2, all integers
 * little-endian). Kept only to read data directories written in it (`rill migrate`); the builder
 * and `stampBatch` write it, for the tests that make such directories.
 *
 *  batch:  0 baseOffset int64     set by the partition log when it appends
 *          8 batchLength int32    bytes after this field
 *         12 crc uint32           CRC32C of bytes 16..end
 *         16 magic uint8 = 1, attributes uint8, reserved uint16
 *         20 recordCount int32
 *         24 firstTimestamp int64
 *         32 maxTimestamp int64
 *         40 records
 *
 *  record: length int32 (bytes after this field), timestamp int64,
 *          keyLength int32 (-1: none) + key, idLength int32 (-1: none) + messageId,
 *          headerCount uint16 + (nameLength uint16, name, valueLength uint32, value)*,
 *          valueLength int32 + value
 *
 * Offsets inside a batch are consecutive: its records are at baseOffset, baseOffset + 1, ...
 */
export const BATCH_HEADER_BYTES = 40;
/** At byte 16 in both formats: 1 here, 2 in Kafka's RecordBatch v2. */
export const LEGACY_BATCH_MAGIC = 1;
const OFFSET_OF_LENGTH = 8;
const OFFSET_OF_CRC = 12;
const OFFSET_OF_MAGIC = 16;
const OFFSET_OF_COUNT = 20;
const OFFSET_OF_FIRST_TIMESTAMP = 24;
const OFFSET_OF_MAX_TIMESTAMP = 32;
/** Bytes before batchLength's count starts (baseOffset and batchLength itself). */
const BATCH_LENGTH_PREFIX = 12;

type RecordHeaders = ReadonlyArray<readonly [string, string]>;

export interface BatchInfo {
  baseOffset: number;
  /** Whole size of the batch in bytes, header included. */
  size: number;
  recordCount: number;
}

/** Builds one record batch in a growable buffer. */
export class RecordBatchBuilder {
  private buffer: Buffer;
  private position = BATCH_HEADER_BYTES;
  private count = 0;
  private firstTimestamp = 0;
  private maxTimestamp = 0;

  constructor(initialCapacity = 16 * 1024) {
    this.buffer = Buffer.alloc(Math.max(initialCapacity, BATCH_HEADER_BYTES));
  }

  append(timestamp: number, key: string | null, messageId: string | null, headers: RecordHeaders | null, value: Buffer): void {
    let upperBound = 4 + 8 + 4 + 4 + 2 + 4 + value.length;
    if (key !== null) upperBound += key.length * 3;
    if (messageId !== null) upperBound += messageId.length * 3;
    if (headers !== null) {
      for (const [name, headerValue] of headers) upperBound += 6 + (name.length + headerValue.length) * 3;
    }
    this.ensure(upperBound);
    const buffer = this.buffer;
    const start = this.position;
    let p = start + 4;
    writeInt64(buffer, timestamp, p);
    p += 8;
    p = writeString(buffer, key, p);
    p = writeString(buffer, messageId, p);
    const headerCount = headers === null ? 0 : headers.length;
    buffer.writeUInt16LE(headerCount, p);
    p += 2;
    for (let i = 0; i < headerCount; i++) {
      const [name, headerValue] = headers![i]!;
      const nameLength = buffer.write(name, p + 2, 'utf8');
      buffer.writeUInt16LE(nameLength, p);
      p += 2 + nameLength;
      const valueLength = buffer.write(headerValue, p + 4, 'utf8');
      buffer.writeUInt32LE(valueLength, p);
      p += 4 + valueLength;
    }
    buffer.writeInt32LE(value.length, p);
    p += 4;
    value.copy(buffer, p);
    p += value.length;
    buffer.writeInt32LE(p - start - 4, start);
    this.position = p;
    if (this.count === 0) {
      this.firstTimestamp = timestamp;
      this.maxTimestamp = timestamp;
    } else if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    this.count++;
  }

  /** Writes the batch header and hands over the bytes; the builder must not be used after. */
  finish(): Buffer {
    const buffer = this.buffer;
    writeInt64(buffer, 0, 0);
    buffer.writeInt32LE(this.position - BATCH_LENGTH_PREFIX, OFFSET_OF_LENGTH);
    buffer.writeUInt32LE(0, OFFSET_OF_CRC);
    buffer.writeUInt8(LEGACY_BATCH_MAGIC, OFFSET_OF_MAGIC);
    buffer.writeUInt8(0, OFFSET_OF_MAGIC + 1);
    buffer.writeUInt16LE(0, OFFSET_OF_MAGIC + 2);
    buffer.writeInt32LE(this.count, OFFSET_OF_COUNT);
    writeInt64(buffer, this.firstTimestamp, OFFSET_OF_FIRST_TIMESTAMP);
    writeInt64(buffer, this.maxTimestamp, OFFSET_OF_MAX_TIMESTAMP);
    return buffer.subarray(0, this.position);
  }

  private ensure(extra: number): void {
    if (this.position + extra <= this.buffer.length) return;
    const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.position + extra));
    this.buffer.copy(grown, 0, 0, this.position);
    this.buffer = grown;
  }
}

function writeString(buffer: Buffer, text: string | null, position: number): number {
  if (text === null) {
    buffer.writeInt32LE(-1, position);
    return position + 4;
  }
  const length = buffer.write(text, position + 4, 'utf8');
  buffer.writeInt32LE(length, position);
  return position + 4 + length;
}

/** Sets the base offset and seals the batch with its CRC, as the old partition log did on append. */
export function stampBatch(batch: Buffer, baseOffset: number): void {
  writeInt64(batch, baseOffset, 0);
  batch.writeUInt32LE(crc32c(batch.subarray(OFFSET_OF_MAGIC)), OFFSET_OF_CRC);
}

export function readBatchInfo(buffer: Buffer, position = 0): BatchInfo {
  return {
    baseOffset: readInt64(buffer, position),
    size: buffer.readInt32LE(position + OFFSET_OF_LENGTH) + BATCH_LENGTH_PREFIX,
    recordCount: buffer.readInt32LE(position + OFFSET_OF_COUNT),
  };
}

/** The size a batch claims in its length field, or -1 if the claim is impossible. */
export function claimedBatchSize(buffer: Buffer, position: number): number {
  const size = buffer.readInt32LE(position + OFFSET_OF_LENGTH) + BATCH_LENGTH_PREFIX;
  return size < BATCH_HEADER_BYTES ? -1 : size;
}

/** Whether the whole batch at `position` is intact: magic, count and CRC. */
export function isBatchValid(buffer: Buffer, position: number, size: number): boolean {
  if (buffer[position + OFFSET_OF_MAGIC] !== LEGACY_BATCH_MAGIC) return false;
  if (buffer.readInt32LE(position + OFFSET_OF_COUNT) <= 0) return false;
  const crc = buffer.readUInt32LE(position + OFFSET_OF_CRC);
  return crc32c(buffer.subarray(position + OFFSET_OF_MAGIC, position + size)) === crc;
}

/** Calls `visit` for every record of a buffer of whole batches, in order. */
export function forEachRecord(batches: Buffer, visit: (record: StoredRecord) => void): void {
  let position = 0;
  while (position + BATCH_HEADER_BYTES <= batches.length) {
    const info = readBatchInfo(batches, position);
    const end = position + info.size;
    if (end > batches.length) break;
    let p = position + BATCH_HEADER_BYTES;
    for (let i = 0; i < info.recordCount; i++) {
      const length = batches.readInt32LE(p);
      visit(decodeRecord(batches, p + 4, info.baseOffset + i));
      p += 4 + length;
    }
    position = end;
  }
}

function decodeRecord(buffer: Buffer, start: number, offset: number): StoredRecord {
  let p = start;
  const timestamp = readInt64(buffer, p);
  p += 8;
  const keyLength = buffer.readInt32LE(p);
  p += 4;
  const key = keyLength < 0 ? null : buffer.toString('utf8', p, p + keyLength);
  if (keyLength > 0) p += keyLength;
  const idLength = buffer.readInt32LE(p);
  p += 4;
  const messageId = idLength < 0 ? null : buffer.toString('utf8', p, p + idLength);
  if (idLength > 0) p += idLength;
  const headerCount = buffer.readUInt16LE(p);
  p += 2;
  const headers: Array<[string, string]> = [];
  for (let i = 0; i < headerCount; i++) {
    const nameLength = buffer.readUInt16LE(p);
    const name = buffer.toString('utf8', p + 2, p + 2 + nameLength);
    p += 2 + nameLength;
    const valueLength = buffer.readUInt32LE(p);
    headers.push([name, buffer.toString('utf8', p + 4, p + 4 + valueLength)]);
    p += 4 + valueLength;
  }
  const valueLength = buffer.readInt32LE(p);
  p += 4;
  // The old format had no null values: no tombstones.
  return { offset, timestamp, key, messageId, headers, value: buffer.subarray(p, p + valueLength), tombstone: false };
}

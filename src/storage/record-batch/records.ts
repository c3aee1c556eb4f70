import { readInt64BE } from '../int64.js';
import { type BatchInfo, isControlBatch, readBatchInfo } from './batch-header.js';
import { codecOfAttributes, decompressRecords, type CompressionCodec } from './compression.js';
import { BATCH_HEADER_BYTES, COMPRESSION_MASK, MESSAGE_ID_HEADER, OFFSET_OF_BASE_TIMESTAMP } from './layout.js';
import { CorruptRecordsError, VarintReader } from './varint.js';

export interface StoredRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  /** The record header `message-id`, if it has one. */
  messageId: string | null;
  /** Every other record header, in order. */
  headers: Array<[string, string]>;
  /** Empty for a tombstone (a null value). */
  value: Buffer;
  /** A null value: the key's deletion, in a compacted topic. */
  tombstone: boolean;
}

/**
 * Calls `visit` for every message at or after `fromOffset` in a buffer of whole batches, until it
 * returns false. Control batches (transaction markers) are stepped over: they take offsets, but
 * are never messages. Compressed batches are decompressed here, on the reader's side.
 *
 * Returns the offset to read from next: the offset of the record `visit` refused, or else the
 * offset after the last batch walked (past trailing markers too, so a reader never stalls on them).
 */
export function forEachRecord(
  batches: Buffer,
  fromOffset: number,
  // biome-ignore lint/suspicious/noConfusingVoidType: a visitor returns nothing to go on, or false to stop
  visit: (record: StoredRecord) => boolean | void,
): number {
  return walkRecords(batches, fromOffset, (reader, recordEnd, offset, timestamp) => visit(decodeRecord(reader, recordEnd, offset, timestamp)));
}

/**
 * Calls `visit` with the offset and the `message-id` header (null when it has none) of every
 * message at or after `fromOffset`, decoding nothing else: the walk that rebuilds the
 * deduplication window from the log at start-up. Returns as forEachRecord does.
 */
export function forEachMessageId(batches: Buffer, fromOffset: number, visit: (offset: number, messageId: string | null) => void): number {
  return walkRecords(batches, fromOffset, (reader, recordEnd, offset) => {
    skipField(reader, recordEnd); // key
    skipField(reader, recordEnd); // value
    const headerCount = reader.read();
    if (headerCount < 0 || headerCount > recordEnd - reader.position) throw new CorruptRecordsError(`record at offset ${offset} claims ${headerCount} headers`);
    let messageId: string | null = null;
    for (let h = 0; h < headerCount && messageId === null; h++) {
      const name = readString(reader, recordEnd);
      const value = readString(reader, recordEnd);
      if (name === MESSAGE_ID_HEADER) messageId = value ?? '';
    }
    visit(offset, messageId);
  });
}

/** Given the reader just past a record's offset delta: returns false to stop at this record. */
// biome-ignore lint/suspicious/noConfusingVoidType: as forEachRecord's visitor
type RecordVisitor = (reader: VarintReader, recordEnd: number, offset: number, timestamp: number) => boolean | void;

function walkRecords(batches: Buffer, fromOffset: number, visit: RecordVisitor): number {
  let position = 0;
  let next = fromOffset;
  while (position + BATCH_HEADER_BYTES <= batches.length) {
    const info = readBatchInfo(batches, position);
    // A length shorter than a header would never move on: the bytes are not a batch.
    if (info.size < BATCH_HEADER_BYTES) throw new CorruptRecordsError(`the batch at position ${position} claims ${info.size} bytes, less than its header`);
    const end = position + info.size;
    if (end > batches.length) break;
    if (info.nextOffset > fromOffset && !isControlBatch(info.attributes) && info.recordCount > 0) {
      const stoppedAt = visitBatch(batches, position, end, info, fromOffset, visit);
      if (stoppedAt >= 0) return stoppedAt;
    }
    if (info.nextOffset > next) next = info.nextOffset;
    position = end;
  }
  return next;
}

/** Visits one batch's records; returns the offset of the record `visit` refused, or -1. */
function visitBatch(batches: Buffer, position: number, end: number, info: BatchInfo, fromOffset: number, visit: RecordVisitor): number {
  const baseTimestamp = readInt64BE(batches, position + OFFSET_OF_BASE_TIMESTAMP);
  const codec = codecOf(info);
  const records = codec === 'none' ? batches : decompressed(codec, batches.subarray(position + BATCH_HEADER_BYTES, end), info.baseOffset);
  const reader = codec === 'none' ? new VarintReader(records, position + BATCH_HEADER_BYTES, end) : new VarintReader(records, 0, records.length);
  for (let i = 0; i < info.recordCount; i++) {
    const length = reader.read();
    const recordEnd = reader.position + length;
    if (length < 0 || recordEnd > reader.end) throw new CorruptRecordsError(`record ${i} of the batch at offset ${info.baseOffset} runs past its batch`);
    reader.position++; // record attributes: none are defined
    const timestamp = baseTimestamp + reader.read();
    const offset = info.baseOffset + reader.read();
    if (offset >= fromOffset && visit(reader, recordEnd, offset, timestamp) === false) return offset;
    reader.position = recordEnd;
  }
  return -1;
}

function codecOf(info: BatchInfo): CompressionCodec {
  try {
    return codecOfAttributes(info.attributes & COMPRESSION_MASK);
  } catch (error) {
    throw new CorruptRecordsError(`the batch at offset ${info.baseOffset}: ${(error as Error).message}`, { cause: error });
  }
}

function decompressed(codec: CompressionCodec, block: Buffer, baseOffset: number): Buffer {
  try {
    return decompressRecords(codec, block);
  } catch (error) {
    throw new CorruptRecordsError(`the ${codec} records of the batch at offset ${baseOffset} cannot be decompressed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The rest of a record, after its length, attributes, timestamp delta and offset delta. */
function decodeRecord(reader: VarintReader, recordEnd: number, offset: number, timestamp: number): StoredRecord {
  const key = readString(reader, recordEnd);
  const raw = readBytes(reader, recordEnd);
  const headerCount = reader.read();
  if (headerCount < 0 || headerCount > recordEnd - reader.position) throw new CorruptRecordsError(`record at offset ${offset} claims ${headerCount} headers`);
  let messageId: string | null = null;
  const headers: Array<[string, string]> = [];
  for (let h = 0; h < headerCount; h++) {
    const name = readString(reader, recordEnd) ?? '';
    const headerValue = readBytes(reader, recordEnd);
    const text = headerValue === null ? '' : headerValue.toString('utf8');
    if (messageId === null && name === MESSAGE_ID_HEADER) messageId = text;
    else headers.push([name, text]);
  }
  if (reader.position > recordEnd) throw new CorruptRecordsError(`record at offset ${offset} runs past its length`);
  return { offset, timestamp, key, messageId, headers, value: raw ?? EMPTY, tombstone: raw === null };
}

const EMPTY = Buffer.alloc(0);

function readBytes(reader: VarintReader, recordEnd: number): Buffer | null {
  const length = reader.read();
  if (length < 0) return null;
  const start = reader.position;
  if (start + length > recordEnd) throw new CorruptRecordsError('a record field runs past its record');
  reader.position = start + length;
  return reader.buffer.subarray(start, start + length);
}

function skipField(reader: VarintReader, recordEnd: number): void {
  const length = reader.read();
  if (length <= 0) return;
  if (reader.position + length > recordEnd) throw new CorruptRecordsError('a record field runs past its record');
  reader.position += length;
}

function readString(reader: VarintReader, recordEnd: number): string | null {
  const length = reader.read();
  if (length < 0) return null;
  const start = reader.position;
  if (start + length > recordEnd) throw new CorruptRecordsError('a record field runs past its record');
  reader.position = start + length;
  return reader.buffer.toString('utf8', start, start + length);
}

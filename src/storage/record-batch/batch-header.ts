import { crc32c } from '@node-rs/crc32';
import { readInt64BE, writeInt64BE } from '../int64.js';
import {
  BATCH_HEADER_BYTES,
  BATCH_LENGTH_PREFIX,
  BATCH_MAGIC,
  COMPRESSION_MASK,
  CONTROL_FLAG,
  OFFSET_OF_ATTRIBUTES,
  OFFSET_OF_BASE_SEQUENCE,
  OFFSET_OF_BASE_TIMESTAMP,
  OFFSET_OF_CRC,
  OFFSET_OF_LAST_OFFSET_DELTA,
  OFFSET_OF_LEADER_EPOCH,
  OFFSET_OF_LENGTH,
  OFFSET_OF_MAGIC,
  OFFSET_OF_MAX_TIMESTAMP,
  OFFSET_OF_PRODUCER_EPOCH,
  OFFSET_OF_PRODUCER_ID,
  OFFSET_OF_RECORD_COUNT,
  TRANSACTIONAL_FLAG,
} from './layout.js';

/** What the log needs of a batch: read from its header alone, never from its records. */
export interface BatchInfo {
  baseOffset: number;
  /** The offset after the batch's last: baseOffset + lastOffsetDelta + 1. */
  nextOffset: number;
  /** Whole size of the batch in bytes, header included. */
  size: number;
  recordCount: number;
  maxTimestamp: number;
  attributes: number;
}

/**
 * The offset after the last whole batch in a buffer of batches (markers included), read from
 * their headers alone; 0 if it holds no whole batch.
 */
export function offsetAfter(batches: Buffer): number {
  let position = 0;
  let next = 0;
  while (position + BATCH_HEADER_BYTES <= batches.length) {
    const size = claimedBatchSize(batches, position);
    if (size < 0 || position + size > batches.length) break;
    next = readInt64BE(batches, position) + batches.readInt32BE(position + OFFSET_OF_LAST_OFFSET_DELTA) + 1;
    position += size;
  }
  return next;
}

/** Who wrote a batch: Kafka's idempotent-producer fields (-1 throughout for a plain producer). */
export interface BatchProducer {
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  transactional: boolean;
}

export function readBatchInfo(buffer: Buffer, position = 0): BatchInfo {
  const baseOffset = readInt64BE(buffer, position);
  return {
    baseOffset,
    nextOffset: baseOffset + buffer.readInt32BE(position + OFFSET_OF_LAST_OFFSET_DELTA) + 1,
    size: buffer.readInt32BE(position + OFFSET_OF_LENGTH) + BATCH_LENGTH_PREFIX,
    recordCount: buffer.readInt32BE(position + OFFSET_OF_RECORD_COUNT),
    maxTimestamp: readInt64BE(buffer, position + OFFSET_OF_MAX_TIMESTAMP),
    attributes: buffer.readInt16BE(position + OFFSET_OF_ATTRIBUTES),
  };
}

export function readBatchProducer(buffer: Buffer, position = 0): BatchProducer {
  return {
    producerId: readInt64BE(buffer, position + OFFSET_OF_PRODUCER_ID),
    producerEpoch: buffer.readInt16BE(position + OFFSET_OF_PRODUCER_EPOCH),
    baseSequence: buffer.readInt32BE(position + OFFSET_OF_BASE_SEQUENCE),
    transactional: (buffer.readInt16BE(position + OFFSET_OF_ATTRIBUTES) & TRANSACTIONAL_FLAG) !== 0,
  };
}

/** Marks a batch built by RecordBatchBuilder as a transaction's (before it is stored: the log seals it). */
export function setTransactional(batch: Buffer): void {
  batch.writeInt16BE(batch.readInt16BE(OFFSET_OF_ATTRIBUTES) | TRANSACTIONAL_FLAG, OFFSET_OF_ATTRIBUTES);
}

/**
 * Names the producer of a batch built by RecordBatchBuilder (which leaves them -1): a transaction
 * applied by the broker marks its batches so, to find them again after a crash. Before it is
 * stored: the log seals the batch (CRC) on append.
 */
export function setBatchProducer(batch: Buffer, producerId: number, producerEpoch: number, baseSequence: number): void {
  writeInt64BE(batch, producerId, OFFSET_OF_PRODUCER_ID);
  batch.writeInt16BE(producerEpoch, OFFSET_OF_PRODUCER_EPOCH);
  batch.writeInt32BE(baseSequence, OFFSET_OF_BASE_SEQUENCE);
}

/** Whether the batch holds commit or abort markers, never delivered as messages. */
export function isControlBatch(attributes: number): boolean {
  return (attributes & CONTROL_FLAG) !== 0;
}

/** The size a batch claims in its length field, or -1 if the claim is impossible. */
export function claimedBatchSize(buffer: Buffer, position: number): number {
  const size = buffer.readInt32BE(position + OFFSET_OF_LENGTH) + BATCH_LENGTH_PREFIX;
  return size < BATCH_HEADER_BYTES ? -1 : size;
}

/**
 * Whether the whole batch at `position` is intact: magic, a known codec, sane counts and its
 * CRC32C (which covers attributes to the end, as Kafka's does: not the base offset, the length or
 * the leader epoch, which the reader checks against what it expects).
 */
export function isBatchValid(buffer: Buffer, position: number, size: number): boolean {
  if (buffer[position + OFFSET_OF_MAGIC] !== BATCH_MAGIC) return false;
  if ((buffer.readInt16BE(position + OFFSET_OF_ATTRIBUTES) & COMPRESSION_MASK) > 4) return false;
  const lastOffsetDelta = buffer.readInt32BE(position + OFFSET_OF_LAST_OFFSET_DELTA);
  const recordCount = buffer.readInt32BE(position + OFFSET_OF_RECORD_COUNT);
  if (lastOffsetDelta < 0 || recordCount < 0 || recordCount > lastOffsetDelta + 1) return false;
  const crc = buffer.readUInt32BE(position + OFFSET_OF_CRC);
  return crc32c(buffer.subarray(position + OFFSET_OF_ATTRIBUTES, position + size)) === crc;
}

/** What a new batch's header says; the base offset, leader epoch and CRC come when the log stamps it. */
export interface BatchHeaderFields {
  attributes: number;
  recordCount: number;
  /** Offsets the batch spans, less one (recordCount - 1 for a batch fresh from a producer). */
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
}

/** Writes the header of a batch of `size` bytes at the start of `batch`, unstamped (base offset 0, CRC 0). */
export function writeBatchHeader(batch: Buffer, size: number, fields: BatchHeaderFields): void {
  writeInt64BE(batch, 0, 0);
  batch.writeInt32BE(size - BATCH_LENGTH_PREFIX, OFFSET_OF_LENGTH);
  batch.writeInt32BE(0, OFFSET_OF_LEADER_EPOCH);
  batch[OFFSET_OF_MAGIC] = BATCH_MAGIC;
  batch.writeUInt32BE(0, OFFSET_OF_CRC);
  batch.writeInt16BE(fields.attributes, OFFSET_OF_ATTRIBUTES);
  batch.writeInt32BE(fields.lastOffsetDelta, OFFSET_OF_LAST_OFFSET_DELTA);
  writeInt64BE(batch, fields.baseTimestamp, OFFSET_OF_BASE_TIMESTAMP);
  writeInt64BE(batch, fields.maxTimestamp, OFFSET_OF_MAX_TIMESTAMP);
  writeInt64BE(batch, fields.producerId, OFFSET_OF_PRODUCER_ID);
  batch.writeInt16BE(fields.producerEpoch, OFFSET_OF_PRODUCER_EPOCH);
  batch.writeInt32BE(fields.baseSequence, OFFSET_OF_BASE_SEQUENCE);
  batch.writeInt32BE(fields.recordCount, OFFSET_OF_RECORD_COUNT);
}

/** Gives a batch its base offset without sealing it (a copy of a stored batch, for readers in memory). */
export function setBaseOffset(batch: Buffer, baseOffset: number): void {
  writeInt64BE(batch, baseOffset, 0);
}

/**
 * Gives a batch its base offset and seals it with its CRC; done by the log on append. Records hold
 * offset deltas, so nothing inside them changes.
 */
export function stampBatch(batch: Buffer, baseOffset: number): void {
  writeInt64BE(batch, baseOffset, 0);
  batch.writeInt32BE(0, OFFSET_OF_LEADER_EPOCH);
  batch.writeUInt32BE(crc32c(batch.subarray(OFFSET_OF_ATTRIBUTES)), OFFSET_OF_CRC);
}

import { crc32c } from '@node-rs/crc32';
import { BATCH_HEADER_BYTES, claimedBatchSize } from '../record-batch/index.js';

/*
 * A journal record: one record batch, already stamped with its offsets, and the partition it was
 * appended to. The journal's own integers are little-endian
 * (the batch inside is Kafka's RecordBatch v2, big-endian):
 *
 *   0 recordLength uint32   the whole record, this field included
 *   4 crc uint32            CRC32C of bytes 8 to the batch's own CRC, included (the batch's
 *                           CRC covers the rest of it: together every byte is checked once)
 *   8 fileSequence uint32   the low 32 bits of the sequence number of the file it was written to
 *  12 keyLength uint16
 *  14 key                   the partition's directory relative to the data directory, UTF-8
 *  14 + keyLength           the record batch, byte for byte as in the segment
 *
 * The file sequence lets a journal file be reused: the stale records a reused file still holds
 * past what was written into it carry an older sequence, and reading stops at them.
 */
const OFFSET_OF_CRC = 4;
const OFFSET_OF_SEQUENCE = 8;
const OFFSET_OF_KEY_LENGTH = 12;
const RECORD_HEADER_BYTES = 14;
const MAX_KEY_BYTES = 0xffff;
/**
 * The batch's baseOffset (8), batchLength (4), partitionLeaderEpoch (4), magic (1) and CRC (4):
 * the bytes its own CRC does not cover (it starts at the attributes, byte 21), and the CRC itself.
 */
const BATCH_CRC_END = 21;

export interface JournalEntry {
  /** The partition's directory relative to the data directory. */
  key: string;
  /** The batch as written to the partition's segment (a view into the journal's bytes). */
  batch: Buffer;
}

/** Builds the records of one append request into one buffer, so that they cost one write. */
export class JournalRecordWriter {
  private buffer = Buffer.allocUnsafe(64 * 1024);
  private length = 0;

  get byteLength(): number {
    return this.length;
  }

  /** Adds a record; `key` is the partition's key, as `encodeKey` made it. */
  add(key: Buffer, batch: Buffer): void {
    const size = RECORD_HEADER_BYTES + key.length + batch.length;
    this.ensure(size);
    const at = this.length;
    const buffer = this.buffer;
    buffer.writeUInt32LE(size, at);
    buffer.writeUInt16LE(key.length, at + OFFSET_OF_KEY_LENGTH);
    key.copy(buffer, at + RECORD_HEADER_BYTES);
    batch.copy(buffer, at + RECORD_HEADER_BYTES + key.length);
    this.length += size;
  }

  /** Stamps every record with the sequence of the file it goes to and its CRC; returns the bytes to write. */
  seal(fileSequence: number): Buffer {
    let at = 0;
    while (at < this.length) {
      const size = this.buffer.readUInt32LE(at);
      this.buffer.writeUInt32LE(fileSequence >>> 0, at + OFFSET_OF_SEQUENCE);
      this.buffer.writeUInt32LE(crc32c(this.buffer.subarray(at + OFFSET_OF_SEQUENCE, checkedEnd(this.buffer, at))), at + OFFSET_OF_CRC);
      at += size;
    }
    return this.buffer.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
}

/** Where the record's own CRC stops: after the batch's baseOffset, batchLength, leader epoch, magic and CRC fields. */
function checkedEnd(buffer: Buffer, position: number): number {
  return position + RECORD_HEADER_BYTES + buffer.readUInt16LE(position + OFFSET_OF_KEY_LENGTH) + BATCH_CRC_END;
}

/** A partition's key in journal records: its directory relative to the data directory. */
export function encodeKey(relativeDirectory: string): Buffer {
  const key = Buffer.from(relativeDirectory, 'utf8');
  if (key.length > MAX_KEY_BYTES) throw new Error(`partition directory ${relativeDirectory} is too long for the journal`);
  return key;
}

/**
 * Reads the record at `position` of `chunk`: the entry and its size, 'incomplete' when the chunk
 * ends inside it (read more and try again), or 'end' when there is no valid record there (zeros,
 * a torn or corrupt record, a stale one from an earlier use of the file). The batch's own CRC is
 * not checked here: only a batch that is going to be used needs it (`isBatchValid`), and after a
 * crash most of them are already in their segments.
 */
export function readJournalRecord(chunk: Buffer, position: number, fileSequence: number): { entry: JournalEntry; size: number } | 'incomplete' | 'end' {
  if (position + RECORD_HEADER_BYTES > chunk.length) return 'incomplete';
  const size = chunk.readUInt32LE(position);
  const keyLength = chunk.readUInt16LE(position + OFFSET_OF_KEY_LENGTH);
  if (size < RECORD_HEADER_BYTES + keyLength + BATCH_HEADER_BYTES) return 'end';
  if (chunk.readUInt32LE(position + OFFSET_OF_SEQUENCE) !== fileSequence >>> 0) return 'end';
  if (position + size > chunk.length) return 'incomplete';
  if (crc32c(chunk.subarray(position + OFFSET_OF_SEQUENCE, checkedEnd(chunk, position))) !== chunk.readUInt32LE(position + OFFSET_OF_CRC)) return 'end';
  const batchStart = position + RECORD_HEADER_BYTES + keyLength;
  const batchSize = size - RECORD_HEADER_BYTES - keyLength;
  if (claimedBatchSize(chunk, batchStart) !== batchSize) return 'end';
  const key = chunk.toString('utf8', position + RECORD_HEADER_BYTES, batchStart);
  return { entry: { key, batch: chunk.subarray(batchStart, position + size) }, size };
}

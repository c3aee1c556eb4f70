import { crc32c } from '@node-rs/crc32';
import fs from 'node:fs';
import path from 'node:path';
import { listEntries, readHead } from './data-layout.js';
import { BATCH_HEADER_BYTES, claimedBatchSize, LEGACY_BATCH_MAGIC } from './legacy-batch.js';

/*
 * The broker workers' journals as Rill wrote them before 0.2, read-only (the format is frozen
 * here: the journal's own code follows the new one). `journal/<worker>/<20-digit sequence>.journal`
 * are live files, `.spare` ones are kept for reuse; a record, integers little-endian:
 *
 *   0 recordLength uint32   the whole record, this field included
 *   4 crc uint32            CRC32C of bytes 8 to the batch's own CRC, included
 *   8 fileSequence uint32   the low 32 bits of the sequence number of the file it was written to
 *  12 keyLength uint16
 *  14 key                   the partition's directory relative to the data directory, UTF-8
 *  14 + keyLength           the record batch (legacy-batch.ts), byte for byte as in the segment
 *
 * Reading a file stops at its first record that is not whole and intact, or that carries another
 * file's sequence (a stale record of a reused file): nothing past it was ever acknowledged.
 */
const OFFSET_OF_CRC = 4;
const OFFSET_OF_SEQUENCE = 8;
const OFFSET_OF_KEY_LENGTH = 12;
const RECORD_HEADER_BYTES = 14;
const MAX_KEY_BYTES = 0xffff;
/** The batch's baseOffset, batchLength and CRC: where the record's own CRC stops. */
const BATCH_CRC_END = 16;
/** Both formats have their magic byte at byte 16 of the batch. */
const OFFSET_OF_MAGIC = 16;
const CURRENT_BATCH_MAGIC = 2;
const READ_CHUNK_BYTES = 4 * 1024 * 1024;

const FILE_NAME = /^(\d{20})\.(journal|spare)$/;

export interface JournalFileRef {
  file: string;
  sequence: number;
  /** A live file (to replay), not a spare. */
  live: boolean;
}

/** A record of a legacy journal file. */
export interface LegacyJournalEntry {
  key: string;
  /** The batch: a view into the bytes read, valid only during the visit. */
  batch: Buffer;
  /** Where the batch starts in the file. */
  position: number;
}

/** The journal files of one worker's journal directory, live ones and spares, by sequence. */
export function listJournalFiles(directory: string): JournalFileRef[] {
  const files: JournalFileRef[] = [];
  for (const name of listEntries(directory)) {
    const match = FILE_NAME.exec(name);
    if (match !== null) files.push({ file: path.join(directory, name), sequence: Number(match[1]), live: match[2] === 'journal' });
  }
  return files.sort((a, b) => a.sequence - b.sequence);
}

/**
 * The format of a journal file's first record: 'legacy', 'current' (a batch with Kafka's magic),
 * or 'none' when it has no record (zeros allocated ahead, a torn first write).
 */
export function journalFileFormat({ file, sequence }: JournalFileRef): 'legacy' | 'current' | 'none' {
  const head = readHead(file, RECORD_HEADER_BYTES + MAX_KEY_BYTES + OFFSET_OF_MAGIC + 1);
  if (head.length < RECORD_HEADER_BYTES || head.readUInt32LE(OFFSET_OF_SEQUENCE) !== sequence >>> 0) return 'none';
  const batchStart = RECORD_HEADER_BYTES + head.readUInt16LE(OFFSET_OF_KEY_LENGTH);
  if (head.length <= batchStart + OFFSET_OF_MAGIC || head.readUInt32LE(0) <= batchStart + OFFSET_OF_MAGIC) return 'none';
  const magic = head[batchStart + OFFSET_OF_MAGIC];
  // The new format's records are only looked at this far: whatever else changes in them, a batch
  // with magic 2 is never taken for an old one, nor its file deleted.
  if (magic === CURRENT_BATCH_MAGIC) return 'current';
  return magic === LEGACY_BATCH_MAGIC && recordCrcMatches(head, 0) ? 'legacy' : 'none';
}

/** Calls `visit` for each valid record of a legacy journal file, in order, until the first invalid one. */
export function forEachLegacyRecord({ file, sequence }: JournalFileRef, visit: (entry: LegacyJournalEntry) => void): void {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, Math.max(size, RECORD_HEADER_BYTES)));
    let chunkStart = 0;
    let chunkLength = fs.readSync(fd, chunk, 0, chunk.length, 0);
    let at = 0;
    while (at < size) {
      const result = readRecord(chunk.subarray(0, chunkLength), at - chunkStart, sequence);
      if (result === 'end') return;
      if (result === 'incomplete') {
        if (at === chunkStart) {
          // The file ends inside the record (a torn write), or the record is larger than the buffer.
          if (chunkLength < chunk.length) return;
          const claimed = chunk.readUInt32LE(0);
          if (at + claimed > size) return;
          chunk = Buffer.allocUnsafe(claimed);
        }
        chunkStart = at;
        chunkLength = fs.readSync(fd, chunk, 0, chunk.length, at);
        continue;
      }
      visit({ key: result.key, batch: result.batch, position: at + result.batchOffset });
      at += result.size;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** `batchOffset`: where the batch starts in the record. */
type ReadResult = { key: string; batch: Buffer; batchOffset: number; size: number } | 'incomplete' | 'end';

/** The record at `position` of `chunk`, as the old journal read it (the batch's own CRC is checked by whoever uses it). */
function readRecord(chunk: Buffer, position: number, fileSequence: number): ReadResult {
  if (position + RECORD_HEADER_BYTES > chunk.length) return 'incomplete';
  const size = chunk.readUInt32LE(position);
  const keyLength = chunk.readUInt16LE(position + OFFSET_OF_KEY_LENGTH);
  if (size < RECORD_HEADER_BYTES + keyLength + BATCH_HEADER_BYTES) return 'end';
  if (chunk.readUInt32LE(position + OFFSET_OF_SEQUENCE) !== fileSequence >>> 0) return 'end';
  if (position + size > chunk.length) return 'incomplete';
  if (!recordCrcMatches(chunk, position)) return 'end';
  const batchStart = position + RECORD_HEADER_BYTES + keyLength;
  if (claimedBatchSize(chunk, batchStart) !== size - RECORD_HEADER_BYTES - keyLength) return 'end';
  const key = chunk.toString('utf8', position + RECORD_HEADER_BYTES, batchStart);
  return { key, batch: chunk.subarray(batchStart, position + size), batchOffset: batchStart - position, size };
}

/** The record's CRC covers its sequence, key length, key, and the batch up to and including the batch's own CRC. */
function recordCrcMatches(chunk: Buffer, position: number): boolean {
  const end = position + RECORD_HEADER_BYTES + chunk.readUInt16LE(position + OFFSET_OF_KEY_LENGTH) + BATCH_CRC_END;
  return end <= chunk.length && crc32c(chunk.subarray(position + OFFSET_OF_SEQUENCE, end)) === chunk.readUInt32LE(position + OFFSET_OF_CRC);
}

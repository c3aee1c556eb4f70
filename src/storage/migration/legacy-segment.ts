import fs from 'node:fs';
import { BATCH_HEADER_BYTES, type BatchInfo, claimedBatchSize, isBatchValid, readBatchInfo } from './legacy-batch.js';

const READ_CHUNK_BYTES = 1024 * 1024;

/** Where the intact batches of a legacy segment end. */
export interface LegacySegmentScan {
  /** The offset after the last intact batch (`expectedOffset` when there is none). */
  nextOffset: number;
  /** Bytes from the start of the file taken by intact batches. */
  validBytes: number;
  /** Bytes the file has. */
  size: number;
}

/**
 * Calls `visit` with each batch of a legacy segment file, from its start, as the old recovery
 * kept them: whole, intact (magic, count, CRC) and continuing the offsets from `expectedOffset`.
 * Stops at the first that is not (a torn or corrupt tail: the old broker cut it off too).
 * The batch passed is a view, valid only during the visit.
 */
export function forEachLegacyBatch(file: string, expectedOffset: number, visit: (batch: Buffer, info: BatchInfo) => void): LegacySegmentScan {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    let chunkStart = 0;
    let chunkLength = 0;
    let nextOffset = expectedOffset;
    let at = 0;
    while (at + BATCH_HEADER_BYTES <= size) {
      if (at + BATCH_HEADER_BYTES > chunkStart + chunkLength) {
        chunkStart = at;
        chunkLength = fs.readSync(fd, chunk, 0, chunk.length, at);
      }
      const batchSize = claimedBatchSize(chunk, at - chunkStart);
      if (batchSize < 0 || at + batchSize > size) break;
      if (at + batchSize > chunkStart + chunkLength) {
        if (batchSize > chunk.length) chunk = Buffer.allocUnsafe(batchSize);
        chunkStart = at;
        chunkLength = fs.readSync(fd, chunk, 0, chunk.length, at);
        if (chunkLength < batchSize) break;
      }
      const local = at - chunkStart;
      const info = readBatchInfo(chunk, local);
      if (info.baseOffset !== nextOffset || !isBatchValid(chunk, local, batchSize)) break;
      visit(chunk.subarray(local, local + batchSize), info);
      nextOffset += info.recordCount;
      at += batchSize;
    }
    return { nextOffset, validBytes: at, size };
  } finally {
    fs.closeSync(fd);
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { failpointError, failpointsActive, noSpaceError, writeFailpoint } from './failpoints.js';
import { OffsetIndex } from './offset-index.js';
import { openFiles, type CachedFile } from './open-files.js';
import { BATCH_HEADER_BYTES, claimedBatchSize, isBatchValid, readBatchInfo, type BatchInfo } from './record-batch/index.js';
import { TimeIndex } from './time-index.js';

const SCAN_CHUNK_BYTES = 1024 * 1024;

/** A segment whose file could not be put back after a failed write: nothing may be appended to it again. */
export class SegmentDamagedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SegmentDamagedError';
  }
}

/** A segment's file name without its extension: its base offset in 20 digits, as Kafka names them. */
export function segmentFileBase(baseOffset: number): string {
  return String(baseOffset).padStart(20, '0');
}

export interface ScanResult {
  /** Position after the last intact batch. */
  validBytes: number;
  nextOffset: number;
  maxTimestamp: number;
}

/**
 * One log file of a partition and its two indexes, as Kafka's LogSegment: the file is named by
 * the offset of its first record and only ever appended to (or truncated by recovery).
 *
 * Descriptors: the log file is opened through this thread's cache of open files (open-files.ts),
 * which may close it between calls and reopens it when needed; so every call takes the descriptor
 * afresh (`this.file.fd`). The indexes keep none open: their entries live in memory and are
 * written to their files at persist points (`seal`, `persistIndexes`, `close`).
 */
export class LogSegment {
  nextOffset: number;
  maxTimestamp = -1;
  /** When the segment got its first batch: the clock for age-based rolls. */
  createdAt: number;
  /** When a batch was last appended: the clock for time-based retention. */
  lastAppendAt: number;
  private bytesSinceIndexEntry = 0;

  private constructor(
    readonly directory: string,
    readonly baseOffset: number,
    private readonly file: CachedFile,
    public size: number,
    private readonly offsetIndex: OffsetIndex,
    private readonly timeIndex: TimeIndex,
    private readonly indexIntervalBytes: number,
  ) {
    this.nextOffset = baseOffset;
    this.createdAt = Date.now();
    this.lastAppendAt = this.createdAt;
  }

  static create(directory: string, baseOffset: number, indexIntervalBytes: number): LogSegment {
    const base = path.join(directory, segmentFileBase(baseOffset));
    const file = openFiles().create(`${base}.log`);
    fs.rmSync(`${base}.index`, { force: true });
    fs.rmSync(`${base}.timeindex`, { force: true });
    return new LogSegment(
      directory,
      baseOffset,
      file,
      0,
      OffsetIndex.open(`${base}.index`, baseOffset),
      TimeIndex.open(`${base}.timeindex`, baseOffset),
      indexIntervalBytes,
    );
  }

  /**
   * Opens an existing segment. `checkFrom` is the offset from which batches are not known to be
   * durable (the partition's recovery point after a crash; null after a clean shutdown): every
   * batch from there on is checked, and the indexes rebuilt past it. Batches before it are
   * trusted, except the tail past the last index entry, which is always read. Either way a torn or
   * corrupt tail is cut off; the number of bytes cut is returned beside the segment.
   */
  static open(directory: string, baseOffset: number, indexIntervalBytes: number, checkFrom: number | null): { segment: LogSegment; truncatedBytes: number } {
    const base = path.join(directory, segmentFileBase(baseOffset));
    const file = openFiles().file(`${base}.log`);
    const stat = fs.fstatSync(file.fd);
    const segment = new LogSegment(
      directory,
      baseOffset,
      file,
      stat.size,
      OffsetIndex.open(`${base}.index`, baseOffset),
      TimeIndex.open(`${base}.timeindex`, baseOffset),
      indexIntervalBytes,
    );
    segment.createdAt = stat.birthtimeMs > 0 ? stat.birthtimeMs : stat.mtimeMs;
    segment.lastAppendAt = stat.mtimeMs;
    const fullRecovery = (checkFrom !== null && checkFrom <= baseOffset) || !segment.indexesAreSane();
    const truncatedBytes = fullRecovery ? segment.recover() : segment.recoverFrom(checkFrom ?? Number.MAX_SAFE_INTEGER);
    // What recovery rebuilt goes to the index files now, so that the next start need not rebuild it again.
    segment.persistIndexes();
    return { segment, truncatedBytes };
  }

  private indexesAreSane(): boolean {
    return this.offsetIndex.isSane(this.size) && this.timeIndex.isSane();
  }

  /**
   * Checks the batches from the index entry at or before `checkFrom` to the end. If they do not
   * even reach `checkFrom` (the index pointed into damage: it is never fsynced), every batch is
   * checked again from the start instead.
   */
  private recoverFrom(checkFrom: number): number {
    const from = this.offsetIndex.lookup(checkFrom);
    this.offsetIndex.truncateToPosition(from.position + 1);
    this.maxTimestamp = this.timeIndex.lastTimestamp;
    this.nextOffset = from.offset;
    this.bytesSinceIndexEntry = 0;
    const result = this.scan(from.position, from.offset, (info, position) => this.indexBatch(info, position));
    // A cut at or before the recovery point, past an index entry, may come from a stale index
    // (never fsynced), not from damage: check the whole segment before cutting durable data.
    if (result.nextOffset <= checkFrom && result.validBytes < this.size && from.position > 0) return this.recover();
    this.nextOffset = result.nextOffset;
    if (result.maxTimestamp > this.maxTimestamp) this.maxTimestamp = result.maxTimestamp;
    const truncated = this.size - result.validBytes;
    if (truncated === 0) return 0;
    this.truncateTo(result.validBytes);
    // The time index may name offsets that were just cut off: rebuild both from what is left.
    return truncated + this.recover();
  }

  /** Checks every batch from the start and rebuilds both indexes; cuts off a torn or corrupt tail. */
  private recover(): number {
    this.offsetIndex.reset();
    this.timeIndex.reset();
    this.maxTimestamp = -1;
    this.nextOffset = this.baseOffset;
    this.bytesSinceIndexEntry = 0;
    const result = this.scan(0, this.baseOffset, (info, position) => this.indexBatch(info, position));
    this.nextOffset = result.nextOffset;
    const truncated = this.size - result.validBytes;
    if (truncated > 0) this.truncateTo(result.validBytes);
    return truncated;
  }

  /**
   * Walks the batches from `position` (where a batch with `expectedOffset` should start) to the end
   * of the file, stopping at the first batch that is incomplete, fails its CRC or breaks the
   * sequence of offsets.
   */
  private scan(position: number, expectedOffset: number, visit: (info: BatchInfo, position: number) => void): ScanResult {
    let chunk = Buffer.allocUnsafe(SCAN_CHUNK_BYTES);
    let chunkStart = position;
    let chunkLength = 0;
    let nextOffset = expectedOffset;
    let maxTimestamp = -1;
    let at = position;
    for (;;) {
      if (at + BATCH_HEADER_BYTES > this.size) break;
      if (at + BATCH_HEADER_BYTES > chunkStart + chunkLength) {
        chunkStart = at;
        chunkLength = fs.readSync(this.file.fd, chunk, 0, chunk.length, at);
        if (chunkLength < BATCH_HEADER_BYTES) break;
      }
      const size = claimedBatchSize(chunk, at - chunkStart);
      if (size < 0 || at + size > this.size) break;
      if (at + size > chunkStart + chunkLength) {
        if (size > chunk.length) chunk = Buffer.allocUnsafe(size);
        chunkStart = at;
        chunkLength = fs.readSync(this.file.fd, chunk, 0, chunk.length, at);
        if (chunkLength < size) break;
      }
      const local = at - chunkStart;
      const info = readBatchInfo(chunk, local);
      if (info.baseOffset !== nextOffset || !isBatchValid(chunk, local, size)) break;
      visit(info, at);
      nextOffset = info.nextOffset;
      if (info.maxTimestamp > maxTimestamp) maxTimestamp = info.maxTimestamp;
      at += size;
    }
    return { validBytes: at, nextOffset, maxTimestamp };
  }

  /**
   * Appends one stamped batch; the caller has checked it fits the segment. Either the whole batch
   * is written, or the file is left exactly as it was (a short or failed write, as a full disk
   * makes, is cut off and the cut checked) and the write's error is thrown. If the file cannot be
   * put back, SegmentDamagedError is thrown: the segment must not be appended to again.
   */
  append(batch: Buffer, info: BatchInfo, now: number): void {
    const position = this.size;
    // Taken (reopened, if the cache had closed it) before anything is written: a file that cannot
    // be opened (EMFILE) fails the append with the segment untouched. Nothing else uses the cache
    // before the write and its undo are done, so the descriptor stays open meanwhile.
    const fd = this.file.fd;
    try {
      this.writeFully(fd, batch, position);
    } catch (error) {
      this.restoreSize(fd, position, error);
      throw error;
    }
    if (position === 0) this.createdAt = now;
    this.size += batch.length;
    this.lastAppendAt = now;
    this.indexBatch(info, position);
  }

  /** pwrite until every byte is written: a write may write less than asked without failing. */
  private writeFully(fd: number, batch: Buffer, position: number): void {
    let written = 0;
    if (failpointsActive) {
      const fault = writeFailpoint();
      if (fault === 'short') written = fs.writeSync(fd, batch, 0, batch.length >>> 1, position);
      if (fault !== null) throw noSpaceError('write');
    }
    while (written < batch.length) {
      const count = fs.writeSync(fd, batch, written, batch.length - written, position + written);
      if (count <= 0) throw Object.assign(new Error(`write made no progress at position ${position + written}`), { code: 'EIO' });
      written += count;
    }
  }

  /** Cuts the file back to `size` after a failed write and checks that it is so. */
  private restoreSize(fd: number, size: number, cause: unknown): void {
    try {
      fs.ftruncateSync(fd, size);
      const actual = fs.fstatSync(fd).size;
      if (actual !== size) throw new Error(`the file is ${actual} bytes after truncating it to ${size}`);
    } catch (error) {
      throw new SegmentDamagedError(`${this.describe()}: a failed write could not be undone (${(error as Error).message})`, { cause });
    }
  }

  /**
   * Removes every batch from `offset` on (a batch boundary), then rebuilds what the segment knows
   * of itself (indexes, next offset, newest timestamp) from what is left, and makes the cut durable.
   */
  truncateToOffset(offset: number): void {
    const position = this.positionOf(offset);
    const fd = this.file.fd;
    fs.ftruncateSync(fd, position);
    fs.fsyncSync(fd);
    this.size = position;
    this.recover();
  }

  /** The file name shared by the segment's log and indexes, without extension. */
  get fileBase(): string {
    return segmentFileBase(this.baseOffset);
  }

  private describe(): string {
    return path.join(this.directory, `${segmentFileBase(this.baseOffset)}.log`);
  }

  /** Once the segment is no longer the active one: its index entries go to their files (it gets no more). */
  seal(): void {
    this.persistIndexes();
  }

  /**
   * Writes to the index files the entries they do not have yet (one open, write and close each;
   * nothing when they are up to date). Never throws: a failed write stops writing that file, and
   * recovery rebuilds what it lacks.
   */
  persistIndexes(): void {
    this.offsetIndex.persist();
    this.timeIndex.persist();
  }

  private indexBatch(info: BatchInfo, position: number): void {
    if (this.bytesSinceIndexEntry >= this.indexIntervalBytes) {
      this.offsetIndex.append(info.baseOffset, position);
      this.bytesSinceIndexEntry = 0;
    }
    this.bytesSinceIndexEntry += info.size;
    const lastOffset = info.nextOffset - 1;
    this.timeIndex.maybeAppend(info.maxTimestamp, lastOffset);
    this.nextOffset = lastOffset + 1;
    if (info.maxTimestamp > this.maxTimestamp) this.maxTimestamp = info.maxTimestamp;
  }

  /** The position of the batch holding `offset`, or of the first batch after it; `size` if none. */
  positionOf(offset: number): number {
    if (offset <= this.baseOffset) return 0;
    const start = this.offsetIndex.lookup(offset);
    const header = Buffer.allocUnsafe(BATCH_HEADER_BYTES);
    let position = start.position;
    while (position + BATCH_HEADER_BYTES <= this.size) {
      fs.readSync(this.file.fd, header, 0, BATCH_HEADER_BYTES, position);
      const info = readBatchInfo(header);
      if (info.nextOffset > offset) return position;
      position += info.size;
    }
    return this.size;
  }

  /** The offset from which to scan for the first record with a timestamp >= `timestamp`. */
  timestampScanStart(timestamp: number): number {
    return this.timeIndex.scanStart(timestamp);
  }

  /**
   * Reads whole batches from `position`, about `maxBytes` of them but always at least one, and
   * none that starts at or after `endPosition`. The buffer owns its memory, so it can be
   * transferred to another thread.
   */
  read(position: number, maxBytes: number, endPosition = this.size): Buffer {
    const available = Math.min(endPosition, this.size) - position;
    if (available < BATCH_HEADER_BYTES) return Buffer.alloc(0);
    let length = Math.min(available, Math.max(maxBytes, BATCH_HEADER_BYTES));
    let data = Buffer.allocUnsafeSlow(length);
    fs.readSync(this.file.fd, data, 0, length, position);
    const first = claimedBatchSize(data, 0);
    if (first > length && first <= available) {
      length = first;
      data = Buffer.allocUnsafeSlow(length);
      fs.readSync(this.file.fd, data, 0, length, position);
    }
    let end = 0;
    while (end + BATCH_HEADER_BYTES <= length) {
      const size = claimedBatchSize(data, end);
      if (size < 0 || end + size > length) break;
      end += size;
    }
    return data.subarray(0, end);
  }

  truncateTo(bytes: number): void {
    fs.ftruncateSync(this.file.fd, bytes);
    this.size = bytes;
    this.offsetIndex.truncateToPosition(bytes);
  }

  /** fdatasync of the log file; its descriptor stays open (pinned in the cache) until it ends. */
  flush(): Promise<void> {
    if (failpointsActive) {
      const injected = failpointError('fsync', 'fdatasync');
      if (injected !== null) return Promise.reject(injected);
    }
    return this.file.sync();
  }

  /** Writes the indexes' last entries and closes the log file, once no fdatasync runs on it (a checkpoint may be syncing it). */
  close(): void {
    if (this.file.closed) return;
    this.persistIndexes();
    this.file.close();
  }

  /** Closes and removes the segment's files (its indexes are not written first). */
  delete(): void {
    this.file.delete();
    this.offsetIndex.delete();
    this.timeIndex.delete();
  }
}

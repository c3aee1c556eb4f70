import fs from 'node:fs';
import path from 'node:path';
import { CorruptBatchError, OffsetOutOfRangeError } from './errors.js';
import { LogSegment, SegmentDamagedError, segmentFileBase } from './log-segment.js';
import { forEachRecord, isBatchValid, offsetAfter, readBatchInfo, stampBatch, BATCH_HEADER_BYTES, type BatchInfo } from './record-batch/index.js';
import { syncDirectory, syncDirectoryNow } from './sync-directory.js';

export interface LogConfig {
  /** A segment rolls when the next batch would take it past this size. */
  segmentBytes: number;
  /** A segment rolls when it is older than this, in ms. */
  segmentMs: number;
  /** Bytes of log between two offset index entries. */
  indexIntervalBytes: number;
  /** Closed segments whose last append is older than this are deleted; -1 keeps them forever. */
  retentionMs: number;
  /** Oldest closed segments are deleted while the log is larger than this; -1 for no limit. */
  retentionBytes: number;
  /** `delete`: retention deletes old segments; `compact`: the log cleaner keeps each key's latest record instead (log-cleaner.ts). */
  cleanupPolicy?: 'delete' | 'compact';
}

/** Where the log cleaner builds a segment's replacement, inside the partition's directory. */
export const CLEANING_DIRECTORY = '.cleaning';

export interface RecoveryReport {
  /** Bytes cut from torn or corrupt tails. */
  truncatedBytes: number;
  /** Segments removed because they followed a corrupt one. */
  droppedSegments: number;
  /** Whether the log was closed cleanly last time. */
  cleanShutdown: boolean;
}

const CLEAN_SHUTDOWN_MARKER = '.clean-shutdown';
/** `{"v":1,"offset":N}`: every batch below offset N is durable and was checked; recovery starts there. */
const RECOVERY_POINT_FILE = 'recovery-point.json';

/** A partition that refuses appends until the broker restarts: a failed write or fsync could not be undone. */
export class PartitionOfflineError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PartitionOfflineError';
  }
}

/**
 * The log of one partition (Kafka's UnifiedLog, without replication): an ordered list of
 * segments, the newest of which is appended to. Offsets are dense, start at 0 and are never
 * reused, even after retention has deleted every closed segment.
 *
 * Two ends trail the log end. The durable end: what a group commit made durable (in a broker
 * worker, the journal's fdatasync, told by `markDurable`; alone, `flush`), which is what may be
 * acknowledged and read. The segments' synced end: what the segment files themselves hold
 * durably, advanced by `checkpoint` in the background and written down as the recovery point.
 */
export class PartitionLog {
  private durableEnd: number;
  /** Every offset below this is durable in the segment files themselves. */
  private segmentsSyncedEnd: number;
  /** A segment file was created since the directory was last fsynced (or, after a crash, may have been). */
  private directoryChanged: boolean;
  /** The offset below which recovery need not check batches, as last written to disk. */
  private recoveryPoint: number;
  /** Set when a failed write or fsync could not be undone: appends are refused. */
  private offline: PartitionOfflineError | null = null;
  private closed = false;
  private rollbacks = 0;
  /** Why the log last rolled back (the failed fsync's error). */
  lastRollbackCause: unknown = null;

  private constructor(
    readonly directory: string,
    private config: LogConfig,
    private segments: LogSegment[],
    recoveryPoint: number,
  ) {
    this.durableEnd = this.logEndOffset;
    this.recoveryPoint = Math.min(recoveryPoint, this.durableEnd);
    // After a crash, what recovery kept past the recovery point may still be only in the page cache.
    this.segmentsSyncedEnd = this.recoveryPoint;
    this.directoryChanged = this.recoveryPoint < this.durableEnd;
  }

  static open(directory: string, config: LogConfig): { log: PartitionLog; recovery: RecoveryReport } {
    if (!fs.existsSync(directory)) {
      fs.mkdirSync(directory, { recursive: true });
      // The new directory's entry must survive a crash before anything in it counts as stored.
      syncDirectoryNow(path.dirname(directory));
    }
    // A rewrite the log cleaner had not put in place when the broker stopped: the segment it was for is intact.
    fs.rmSync(path.join(directory, CLEANING_DIRECTORY), { recursive: true, force: true });
    completeSwaps(directory);
    const markerPath = path.join(directory, CLEAN_SHUTDOWN_MARKER);
    const cleanShutdown = fs.existsSync(markerPath);
    fs.rmSync(markerPath, { force: true });
    const baseOffsets = fs
      .readdirSync(directory)
      .filter((name) => /^\d{20}\.log$/.test(name))
      .map((name) => Number(name.slice(0, 20)))
      .sort((a, b) => a - b);
    const segments: LogSegment[] = [];
    const recovery: RecoveryReport = { truncatedBytes: 0, droppedSegments: 0, cleanShutdown };
    // After a crash, every batch past the recovery point is checked (CRC, length, offsets): a full
    // disk or a torn write may have damaged any of them, not only the tail. What is before it was
    // durable and checked; each segment's tail past its last index entry is still read.
    const savedPoint = readRecoveryPoint(directory);
    const checkFrom = cleanShutdown ? null : savedPoint;
    for (let i = 0; i < baseOffsets.length; i++) {
      const baseOffset = baseOffsets[i]!;
      const previous = segments[segments.length - 1];
      if (previous !== undefined && previous.nextOffset !== baseOffset) {
        // A gap means the previous segment lost its tail: what follows cannot be trusted.
        dropSegmentsFrom(directory, baseOffsets.slice(i));
        recovery.droppedSegments += baseOffsets.length - i;
        break;
      }
      const { segment, truncatedBytes } = LogSegment.open(directory, baseOffset, config.indexIntervalBytes, checkFrom);
      segments.push(segment);
      recovery.truncatedBytes += truncatedBytes;
    }
    const created = segments.length === 0;
    if (created) segments.push(LogSegment.create(directory, 0, config.indexIntervalBytes));
    const log = new PartitionLog(directory, config, segments, cleanShutdown ? Number.MAX_SAFE_INTEGER : savedPoint);
    if (created) log.directoryChanged = true;
    return { log, recovery };
  }

  /** A partition log always has at least one segment: the active one. */
  private get active(): LogSegment {
    return this.segments[this.segments.length - 1]!;
  }

  get logStartOffset(): number {
    return this.segments[0]!.baseOffset;
  }

  /** The offset the next record will get. */
  get logEndOffset(): number {
    return this.active.nextOffset;
  }

  /** Every offset below this has been flushed to disk. */
  get durableEndOffset(): number {
    return this.durableEnd;
  }

  get sizeInBytes(): number {
    let total = 0;
    for (const segment of this.segments) total += segment.size;
    return total;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /**
   * Assigns offsets to a batch built by RecordBatchBuilder and writes it. On a failed write (a full
   * disk: ENOSPC) the log is left as it was and the error is thrown; if it could not be left as it
   * was, the partition goes offline (PartitionOfflineError) until the broker restarts.
   */
  append(batch: Buffer, now = Date.now()): BatchInfo {
    if (this.offline !== null) throw this.offline;
    try {
      return this.write(batch, now);
    } catch (error) {
      if (error instanceof SegmentDamagedError) this.goOffline(error.message, error);
      throw error;
    }
  }

  get isOffline(): boolean {
    return this.offline !== null;
  }

  /**
   * Counts the roll-backs to the durable end. A batch appended under one count and answered under
   * another was cut off: whoever waits on it must report it failed, even if its offset is in the
   * log again (written by a later batch).
   */
  get epoch(): number {
    return this.rollbacks;
  }

  private goOffline(reason: string, cause: unknown): never {
    this.offline = new PartitionOfflineError(`${this.directory} is offline: ${reason}; restart the broker to recover it`, { cause });
    throw this.offline;
  }

  private write(batch: Buffer, now: number): BatchInfo {
    const active = this.active;
    if (active.size > 0 && (active.size + batch.length > this.config.segmentBytes || now - active.createdAt >= this.config.segmentMs)) {
      this.roll();
    }
    stampBatch(batch, this.logEndOffset);
    const info = readBatchInfo(batch);
    this.active.append(batch, info, now);
    return info;
  }

  /**
   * Starts a new segment. The full one is not fsynced here: what it holds is as durable as the
   * group commit made it, and `checkpoint` syncs it in the background.
   */
  private roll(): void {
    const previous = this.active;
    previous.seal();
    this.segments.push(LogSegment.create(this.directory, previous.nextOffset, this.config.indexIntervalBytes));
    this.directoryChanged = true;
  }

  /**
   * Reads whole batches holding `offset` and what follows, about `maxBytes` (at least one batch),
   * stopping before `endOffset`. The first batch may start before `offset`.
   */
  read(offset: number, maxBytes: number, endOffset = this.logEndOffset): Buffer {
    if (offset < this.logStartOffset || offset > this.logEndOffset) {
      throw new OffsetOutOfRangeError(offset, this.logStartOffset, this.logEndOffset);
    }
    let index = this.segmentIndexFor(offset);
    let from = offset;
    while (from < endOffset && index < this.segments.length) {
      const segment = this.segments[index]!;
      const position = segment.positionOf(from);
      if (position < segment.size) {
        const read = segment.read(position, maxBytes);
        // Bytes are there but no whole batch: its length field is damaged.
        if (read.length === 0) throw new CorruptBatchError(this.directory, from);
        return this.checked(cutAt(read, endOffset), from);
      }
      from = segment.nextOffset;
      index++;
    }
    return Buffer.alloc(0);
  }

  /**
   * The batches read for `from`, each checked first: recovery checked them once, but a disk can
   * damage them later, and a reader must get an error, never altered records. Each batch must pass
   * its CRC32C and take up the offsets where the last one ended (the first must hold `from`): the
   * CRC does not cover the base offset. The intact batches before a damaged one are returned; a
   * read that starts at a damaged one throws.
   */
  private checked(batches: Buffer, from: number): Buffer {
    let position = 0;
    let expected = from;
    while (position + BATCH_HEADER_BYTES <= batches.length) {
      const info = readBatchInfo(batches, position);
      const inSequence = position === 0 ? info.baseOffset <= from && from < info.nextOffset : info.baseOffset === expected;
      if (!inSequence || !isBatchValid(batches, position, info.size)) {
        if (position === 0) throw new CorruptBatchError(this.directory, from);
        return batches.subarray(0, position);
      }
      expected = info.nextOffset;
      position += info.size;
    }
    return batches;
  }

  /**
   * The base offset of the oldest segment appended to at or after `time` (the broker's clock, not
   * the records' timestamps, which producers set); the log end if none. Every record appended
   * since `time` is at or after it.
   */
  firstOffsetAppendedSince(time: number): number {
    const segment = this.segments.find((s) => s.lastAppendAt >= time);
    return segment === undefined ? this.logEndOffset : Math.max(segment.baseOffset, this.logStartOffset);
  }

  /** The first offset whose record has a timestamp at or after `timestamp`; the log end if none. */
  offsetForTimestamp(timestamp: number): number {
    const segment = this.segments.find((s) => s.maxTimestamp >= timestamp);
    if (segment === undefined) return this.logEndOffset;
    let offset = Math.max(segment.timestampScanStart(timestamp), this.logStartOffset);
    while (offset < this.logEndOffset) {
      const batches = this.read(offset, 256 * 1024);
      if (batches.length === 0) break;
      let found = -1;
      forEachRecord(batches, offset, (record) => {
        if (record.timestamp < timestamp) return true;
        found = record.offset;
        return false;
      });
      if (found !== -1) return found;
      const next = offsetAfter(batches);
      // Checked batches always move on; if they did not, looping would never end.
      if (next <= offset) throw new CorruptBatchError(this.directory, offset);
      offset = next;
    }
    return this.logEndOffset;
  }

  /**
   * Makes everything written so far durable by syncing the segments themselves (what a log
   * without a journal does; a broker worker's group commit syncs its journal and calls
   * `markDurable` instead); resolves to the new durable end offset.
   */
  async flush(): Promise<number> {
    const target = this.logEndOffset;
    const epoch = this.rollbacks;
    if (target > this.segmentsSyncedEnd) await this.syncSegments();
    if (this.directoryChanged) {
      // On this thread: a worker flushes every log at once on close, and each would hold a descriptor.
      syncDirectoryNow(this.directory);
      this.directoryChanged = false;
    }
    if (epoch === this.rollbacks) {
      if (target > this.durableEnd) this.durableEnd = target;
      if (target > this.segmentsSyncedEnd) this.segmentsSyncedEnd = target;
    }
    return this.durableEnd;
  }

  /** Every offset below `offset` was made durable elsewhere (the journal): it may be acknowledged and read. */
  markDurable(offset: number): void {
    const end = Math.min(offset, this.logEndOffset);
    if (end > this.durableEnd) this.durableEnd = end;
  }

  /**
   * Makes the segments durable up to the current end and writes that down as the recovery point:
   * after this, the journal no longer needs its records of this log, and recovery after a crash
   * trusts the batches before it. Runs beside appends; a roll-back meanwhile leaves both as they were.
   */
  async checkpoint(): Promise<void> {
    const target = this.logEndOffset;
    const epoch = this.rollbacks;
    if (target > this.segmentsSyncedEnd) await this.syncSegments();
    // Index entries reach their files here too (they are never fsynced: recovery checks them).
    for (const segment of this.segments) segment.persistIndexes();
    await this.syncDirectoryIfChanged();
    if (epoch !== this.rollbacks || this.offline !== null) return;
    if (target > this.segmentsSyncedEnd) this.segmentsSyncedEnd = target;
    const point = this.segmentsSyncedEnd;
    if (point <= this.recoveryPoint) return;
    // Written off the thread (thousands of partitions checkpoint at once after a crash), and only
    // if no roll-back came meanwhile: that one wrote its own, lower, recovery point.
    await writeRecoveryPointAsync(this.directory, point, () => epoch === this.rollbacks && this.offline === null);
    if (epoch === this.rollbacks && point > this.recoveryPoint) this.recoveryPoint = point;
  }

  /** fsync of the directory when a segment file was created in it since the last one. */
  private async syncDirectoryIfChanged(): Promise<void> {
    if (!this.directoryChanged) return;
    this.directoryChanged = false;
    try {
      await syncDirectory(this.directory);
    } catch (error) {
      this.directoryChanged = true;
      throw error;
    }
  }

  /** The offset below which recovery trusts the batches (`recovery-point.json`, as last written). */
  get recoveryPointOffset(): number {
    return this.recoveryPoint;
  }

  /**
   * After a crash, removes the batches from `end` on: what the segments hold that no journal has,
   * so that was never acknowledged, and is not durable either. Left there, it would be read, and
   * then lost to a power cut with its offsets given again to other messages.
   */
  cutUnjournaledTail(end: number): number {
    const removed = this.logEndOffset - end;
    if (removed <= 0) return 0;
    this.durableEnd = Math.min(this.durableEnd, end);
    this.cutBackTo(end, 'after a crash (batches no journal has)');
    return removed;
  }

  /** fdatasync of every segment holding offsets past the synced end (the active one, and any rolled since). */
  private async syncSegments(): Promise<void> {
    const pending = this.segments.filter((segment) => segment.nextOffset > this.segmentsSyncedEnd && segment.size > 0);
    await Promise.all(pending.map((segment) => segment.flush()));
  }

  /**
   * After a failed fsync, what was written since the last good one may or may not be on disk, and
   * a later fsync may report success without it (Linux forgets the error once reported). So the
   * batches past the durable end are cut off, and the cut is made durable, before anything else
   * is written: what the broker reported as failed can never come back. If even that fails, the
   * partition goes offline. Returns the offsets removed.
   */
  rollBackToDurableEnd(cause: unknown): number {
    const end = this.durableEnd;
    const removed = this.logEndOffset - end;
    this.rollbacks++;
    this.lastRollbackCause = cause;
    if (removed <= 0) return 0;
    this.cutBackTo(end, 'after a failed fsync');
    return removed;
  }

  /**
   * Removes the batches from `end` on (a batch boundary at or past the durable end) and makes the
   * cut durable: what a failed journal write left in the segments. What waits on the durable end
   * is not affected. If the cut cannot be made, the partition goes offline.
   */
  discardFrom(end: number): void {
    if (end < this.durableEnd) throw new Error(`cannot discard below the durable end (${end} < ${this.durableEnd})`);
    this.cutBackTo(end, 'after a failed journal write');
  }

  private cutBackTo(end: number, when: string): void {
    if (this.logEndOffset <= end) return;
    try {
      while (this.segments.length > 1 && this.active.baseOffset >= end) {
        this.active.delete();
        this.segments.pop();
      }
      this.active.truncateToOffset(end);
      if (this.active.nextOffset !== end) throw new Error(`the log ends at ${this.active.nextOffset} after cutting it back to ${end}`);
      if (this.segmentsSyncedEnd > end) this.segmentsSyncedEnd = end;
      if (this.recoveryPoint > end) {
        writeRecoveryPoint(this.directory, end);
        this.recoveryPoint = end;
      }
    } catch (error) {
      this.goOffline(`the batches past offset ${end} could not be removed ${when} (${(error as Error).message})`, error);
    }
  }

  /** The topic's own retention and cleanup policy (its configuration changed, or differs from the broker's default). */
  configure(settings: Partial<Pick<LogConfig, 'retentionMs' | 'retentionBytes' | 'cleanupPolicy' | 'segmentBytes'>>): void {
    this.config = { ...this.config, ...settings };
  }

  get indexIntervalBytes(): number {
    return this.config.indexIntervalBytes;
  }

  get cleanupPolicy(): 'delete' | 'compact' {
    return this.config.cleanupPolicy ?? 'delete';
  }

  /** Whether the log was closed (a cleaner working on it in the background stops). */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * The segments the log cleaner may rewrite: closed ones (not the active one) that are wholly
   * below the recovery point, so durable and checked, and never touched by recovery or the journal.
   */
  cleanableSegments(): readonly LogSegment[] {
    return this.segments.slice(0, -1).filter((segment) => segment.nextOffset <= this.recoveryPoint);
  }

  /**
   * Puts the cleaner's rewrite of `old` (its files, durable, in `cleaned`) in its place: the old
   * indexes go first, then the new log file replaces the old one in one rename, then its indexes
   * come; a crash anywhere in between leaves a segment whose missing indexes are rebuilt at start.
   * Returns false, changing nothing, when `old` is no longer a segment of the log.
   */
  replaceSegment(old: LogSegment, cleaned: string): boolean {
    const at = this.segments.indexOf(old);
    if (at < 0 || at === this.segments.length - 1 || this.closed) return false;
    old.close();
    const name = segmentFileBase(old.baseOffset);
    for (const extension of ['.index', '.timeindex']) fs.rmSync(path.join(this.directory, name + extension), { force: true });
    fs.renameSync(path.join(cleaned, `${name}.log`), path.join(this.directory, `${name}.log`));
    // An index with no entry is never written: a missing one is rebuilt (or not needed) at open.
    for (const extension of ['.index', '.timeindex']) {
      const from = path.join(cleaned, name + extension);
      if (fs.existsSync(from)) fs.renameSync(from, path.join(this.directory, name + extension));
    }
    syncDirectoryNow(this.directory);
    this.segments[at] = LogSegment.open(this.directory, old.baseOffset, this.config.indexIntervalBytes, null).segment;
    return true;
  }

  /**
   * Puts one segment (its files, durable, in `merged`) in the place of the consecutive segments
   * `group`, whose batches it holds: the log cleaner's merge of small segments. The new log file
   * first takes a `.swap` name beside them, naming the offsets it covers: from then on a start
   * completes the swap (completeSwaps), so a crash never leaves two files for the same offsets.
   * Returns false, changing nothing, when the group is no longer a run of the log's closed segments.
   */
  replaceSegments(group: readonly LogSegment[], merged: string): boolean {
    const at = this.segments.indexOf(group[0]!);
    if (at < 0 || this.closed || at + group.length >= this.segments.length) return false;
    if (group.some((segment, i) => this.segments[at + i] !== segment)) return false;
    const first = group[0]!;
    const last = group[group.length - 1]!;
    const name = segmentFileBase(first.baseOffset);
    const swap = path.join(this.directory, swapFileName(first.baseOffset, last.nextOffset));
    fs.renameSync(path.join(merged, `${name}.log`), swap);
    syncDirectoryNow(this.directory);
    for (const segment of group) {
      segment.close();
      for (const extension of ['.log', '.index', '.timeindex']) fs.rmSync(path.join(this.directory, segment.fileBase + extension), { force: true });
    }
    fs.renameSync(swap, path.join(this.directory, `${name}.log`));
    for (const extension of ['.index', '.timeindex']) {
      const from = path.join(merged, name + extension);
      if (fs.existsSync(from)) fs.renameSync(from, path.join(this.directory, name + extension));
    }
    syncDirectoryNow(this.directory);
    this.segments.splice(at, group.length, LogSegment.open(this.directory, first.baseOffset, this.config.indexIntervalBytes, null).segment);
    return true;
  }

  /** A partition's own segment size (the log cleaner merges small segments up to it). */
  get segmentBytes(): number {
    return this.config.segmentBytes;
  }

  /** Deletes closed segments past the retention limits (never in a compacted log); returns how many. */
  deleteExpiredSegments(now = Date.now()): number {
    if (this.cleanupPolicy === 'compact') return 0;
    let deleted = 0;
    let total = this.sizeInBytes;
    while (this.segments.length > 1) {
      const oldest = this.segments[0]!;
      const expired = this.config.retentionMs >= 0 && now - oldest.lastAppendAt > this.config.retentionMs;
      const oversized = this.config.retentionBytes >= 0 && total > this.config.retentionBytes;
      if (!expired && !oversized) break;
      oldest.delete();
      this.segments.shift();
      total -= oldest.size;
      deleted++;
    }
    return deleted;
  }

  /**
   * Closes the files. A log whose segments hold everything durably (after `flush`), and that is
   * not offline, is marked clean, so that the next start checks nothing; returns whether it was.
   */
  close(): boolean {
    this.closed = true;
    for (const segment of this.segments) segment.close();
    if (this.offline !== null || this.segmentsSyncedEnd < this.logEndOffset) return false;
    if (this.segmentsSyncedEnd > this.recoveryPoint) writeRecoveryPoint(this.directory, this.segmentsSyncedEnd);
    fs.writeFileSync(path.join(this.directory, CLEAN_SHUTDOWN_MARKER), '');
    return true;
  }

  private segmentIndexFor(offset: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (this.segments[middle]!.baseOffset <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  }
}

/** `<base>.<end>.swap`: a merged segment about to replace the segments from `base` to `end` (exclusive). */
function swapFileName(baseOffset: number, endOffset: number): string {
  return `${segmentFileBase(baseOffset)}.${segmentFileBase(endOffset)}.swap`;
}

/**
 * Finishes a merge of segments that a crash interrupted: the `.swap` file is complete and durable
 * (it got its name only once it was), so the segments it covers go and it takes their place.
 */
function completeSwaps(directory: string): void {
  for (const name of fs.readdirSync(directory)) {
    const match = /^(\d{20})\.(\d{20})\.swap$/.exec(name);
    if (match === null) continue;
    const [base, end] = [Number(match[1]), Number(match[2])];
    for (const other of fs.readdirSync(directory)) {
      const segment = /^(\d{20})\.(log|index|timeindex)$/.exec(other);
      if (segment !== null && Number(segment[1]) >= base && Number(segment[1]) < end) fs.rmSync(path.join(directory, other), { force: true });
    }
    fs.renameSync(path.join(directory, name), path.join(directory, `${segmentFileBase(base)}.log`));
    syncDirectoryNow(directory);
  }
}

function dropSegmentsFrom(directory: string, baseOffsets: number[]): void {
  for (const baseOffset of baseOffsets) {
    const base = path.join(directory, String(baseOffset).padStart(20, '0'));
    for (const ext of ['.log', '.index', '.timeindex']) fs.rmSync(base + ext, { force: true });
  }
}

/** Drops the batches that start at or after `endOffset`. */
function cutAt(batches: Buffer, endOffset: number): Buffer {
  let position = 0;
  while (position + BATCH_HEADER_BYTES <= batches.length) {
    const info = readBatchInfo(batches, position);
    if (info.baseOffset >= endOffset) break;
    position += info.size;
  }
  return position === batches.length ? batches : batches.subarray(0, position);
}

/** A partition directory's recovery point; 0 when it has none (then everything is checked). */
export function readRecoveryPoint(directory: string): number {
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(directory, RECOVERY_POINT_FILE), 'utf8')) as { v?: unknown; offset?: unknown };
    return parsed.v === 1 && typeof parsed.offset === 'number' && Number.isSafeInteger(parsed.offset) && parsed.offset >= 0 ? parsed.offset : 0;
  } catch {
    // None yet (a new partition, or a data directory from before recovery points): check everything.
    return 0;
  }
}

/** Written atomically: a temporary file, fsynced, renamed over the old one. */
/** Checkpoints of one log may overlap (a replay's, the journal's): each writes its own temporary file. */
let checkpointFiles = 0;

/** As writeRecoveryPoint, with asynchronous calls; renamed into place only if `stillValid()` says so then. */
async function writeRecoveryPointAsync(directory: string, offset: number, stillValid: () => boolean): Promise<void> {
  const file = path.join(directory, RECOVERY_POINT_FILE);
  const temporary = `${file}.checkpoint-${++checkpointFiles}`;
  const handle = await fs.promises.open(temporary, 'w');
  try {
    await handle.writeFile(JSON.stringify({ v: 1, offset }));
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (stillValid()) await fs.promises.rename(temporary, file);
  else await fs.promises.rm(temporary, { force: true });
}

function writeRecoveryPoint(directory: string, offset: number): void {
  const file = path.join(directory, RECOVERY_POINT_FILE);
  const temporary = `${file}.tmp`;
  const fd = fs.openSync(temporary, 'w');
  try {
    fs.writeSync(fd, JSON.stringify({ v: 1, offset }));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
}

import fs from 'node:fs';
import path from 'node:path';
import { OffsetOutOfRangeError } from './errors.js';
import { LogSegment } from './log-segment.js';
import { forEachRecord, readBatchInfo, stampBatch, BATCH_HEADER_BYTES, type BatchInfo } from './record-batch.js';

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
  /** fsync a segment when it is rolled (every policy but "leave it to the OS"). */
  flushOnRoll: boolean;
}

export interface RecoveryReport {
  /** Bytes cut from torn or corrupt tails. */
  truncatedBytes: number;
  /** Segments removed because they followed a corrupt one. */
  droppedSegments: number;
  /** Whether the log was closed cleanly last time. */
  cleanShutdown: boolean;
}

const CLEAN_SHUTDOWN_MARKER = '.clean-shutdown';

/**
 * The log of one partition (Kafka's UnifiedLog, without replication): an ordered list of
 * segments, the newest of which is appended to. Offsets are dense, start at 0 and are never
 * reused, even after retention has deleted every closed segment.
 */
export class PartitionLog {
  private durableEnd: number;

  private constructor(
    readonly directory: string,
    private readonly config: LogConfig,
    private segments: LogSegment[],
  ) {
    this.durableEnd = this.logEndOffset;
  }

  static open(directory: string, config: LogConfig): { log: PartitionLog; recovery: RecoveryReport } {
    fs.mkdirSync(directory, { recursive: true });
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
    for (let i = 0; i < baseOffsets.length; i++) {
      const baseOffset = baseOffsets[i]!;
      const previous = segments[segments.length - 1];
      if (previous !== undefined && previous.nextOffset !== baseOffset) {
        // A gap means the previous segment lost its tail: what follows cannot be trusted.
        dropSegmentsFrom(directory, baseOffsets.slice(i));
        recovery.droppedSegments += baseOffsets.length - i;
        break;
      }
      const isLast = i === baseOffsets.length - 1;
      const { segment, truncatedBytes } = LogSegment.open(directory, baseOffset, config.indexIntervalBytes, isLast && !cleanShutdown);
      segments.push(segment);
      recovery.truncatedBytes += truncatedBytes;
    }
    if (segments.length === 0) segments.push(LogSegment.create(directory, 0, config.indexIntervalBytes));
    return { log: new PartitionLog(directory, config, segments), recovery };
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

  /** Assigns offsets to a batch built by RecordBatchBuilder and writes it. */
  append(batch: Buffer, now = Date.now()): BatchInfo {
    const active = this.active;
    if (active.size > 0 && (active.size + batch.length > this.config.segmentBytes || now - active.createdAt >= this.config.segmentMs)) {
      this.roll();
    }
    stampBatch(batch, this.logEndOffset);
    const info = readBatchInfo(batch);
    this.active.append(batch, info, now);
    return info;
  }

  private roll(): void {
    const previous = this.active;
    if (this.config.flushOnRoll) previous.flushSync();
    previous.seal();
    this.segments.push(LogSegment.create(this.directory, previous.nextOffset, this.config.indexIntervalBytes));
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
      if (position < segment.size) return cutAt(segment.read(position, maxBytes), endOffset);
      from = segment.nextOffset;
      index++;
    }
    return Buffer.alloc(0);
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
        if (found === -1 && record.timestamp >= timestamp) found = record.offset;
      });
      if (found !== -1) return found;
      offset = lastOffsetIn(batches) + 1;
    }
    return this.logEndOffset;
  }

  /** Makes everything written so far durable; resolves to the new durable end offset. */
  async flush(): Promise<number> {
    const target = this.logEndOffset;
    if (target > this.durableEnd) {
      await this.active.flush();
      if (target > this.durableEnd) this.durableEnd = target;
    }
    return this.durableEnd;
  }

  /** Deletes closed segments past the retention limits; returns how many. */
  deleteExpiredSegments(now = Date.now()): number {
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

  close(): void {
    for (const segment of this.segments) segment.close();
    fs.writeFileSync(path.join(this.directory, CLEAN_SHUTDOWN_MARKER), '');
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

function lastOffsetIn(batches: Buffer): number {
  let position = 0;
  let last = -1;
  while (position + BATCH_HEADER_BYTES <= batches.length) {
    const info = readBatchInfo(batches, position);
    last = info.baseOffset + info.recordCount - 1;
    position += info.size;
  }
  return last;
}

import fs from 'node:fs';
import path from 'node:path';
import { LogSegment } from './log-segment.js';
import { CLEANING_DIRECTORY, type PartitionLog } from './partition-log.js';
import {
  compressBatch,
  forEachRecord,
  isControlBatch,
  readBatchInfo,
  readBatchProducer,
  RecordBatchBuilder,
  stampBatch,
  BATCH_HEADER_BYTES,
  type CompressionCodec,
} from './record-batch/index.js';
import { syncDirectoryNow } from './sync-directory.js';

export interface CleanerSettings {
  /** A tombstone is kept this long after its segment's last append, so that consumers behind see the deletion. */
  tombstoneRetentionMs: number;
  /** How the rewritten batches are stored (the topic's codec). */
  compression: CompressionCodec;
  /** Awaited after each chunk of work (`bytes` read or written): lets appends and reads run between, and throttles. */
  pace(bytes: number): Promise<void>;
}

export interface CleanReport {
  segments: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsRemoved: number;
}

const READ_CHUNK_BYTES = 1024 * 1024;
/** Kept records of consecutive batches are gathered into batches of about this many bytes. */
const GATHERED_BATCH_BYTES = 1024 * 1024;

/**
 * Log compaction, as Kafka's LogCleaner does it for `cleanup.policy=compact`: the latest record of
 * each key is kept, older ones go, and a tombstone (a null value) goes too once its segment is older
 * than the tombstone retention. It works on the closed segments below the recovery point only
 * (the active segment and anything recovery or the journal may touch are left alone), in the
 * background: it reads and writes in chunks, pacing itself between them.
 *
 * Offsets never change, and a segment still covers the same offsets: a record's place is kept in
 * the batch that holds it (its offset delta), and the kept records of consecutive batches are
 * gathered into one batch spanning the offsets of all of them (an empty one when none is kept),
 * so the log's batches stay contiguous, as recovery and readers check. Batches of transactions and
 * idempotent producers, and control batches, are copied as they are.
 */
export class LogCleaner {
  /** Per log: where its cleanable segments ended when it was last cleaned (nothing new: nothing to do). */
  private readonly cleanedThrough = new WeakMap<PartitionLog, number>();

  /** Cleans the log's cleanable segments; null when there was nothing to clean, or the log was closed meanwhile. */
  async clean(log: PartitionLog, now: number, settings: CleanerSettings): Promise<CleanReport | null> {
    const segments = log.cleanableSegments();
    if (segments.length === 0) return null;
    const end = segments[segments.length - 1]!.nextOffset;
    if (this.cleanedThrough.get(log) === end) return null;
    // Each key's latest offset in the segments to clean (a tombstone is a key's latest too).
    const latest = new Map<string, number>();
    for (const segment of segments) {
      const read = await eachChunk(log, segment, settings, (chunk) => {
        forEachRecord(chunk, segment.baseOffset, (record) => {
          if (record.key !== null) latest.set(record.key, record.offset);
        });
      });
      if (!read) return null;
    }
    const report: CleanReport = { segments: 0, bytesBefore: 0, bytesAfter: 0, recordsRemoved: 0 };
    for (const segment of segments) {
      const rewritten = await rewrite(log, segment, latest, now, settings);
      if (rewritten === null) return null;
      if (rewritten.recordsRemoved === 0) continue;
      report.segments++;
      report.bytesBefore += rewritten.bytesBefore;
      report.bytesAfter += rewritten.bytesAfter;
      report.recordsRemoved += rewritten.recordsRemoved;
    }
    this.cleanedThrough.set(log, end);
    return report;
  }
}

/** Calls `visit` with the segment's batches, a chunk at a time; false when the log was closed meanwhile. */
async function eachChunk(log: PartitionLog, segment: LogSegment, settings: CleanerSettings, visit: (chunk: Buffer) => void): Promise<boolean> {
  let position = 0;
  while (position < segment.size) {
    if (log.isClosed) return false;
    const chunk = segment.read(position, READ_CHUNK_BYTES);
    if (chunk.length === 0) throw new Error(`segment ${segment.baseOffset} of ${log.directory} has no whole batch at position ${position}`);
    visit(chunk);
    position += chunk.length;
    await settings.pace(chunk.length);
  }
  return !log.isClosed;
}

/** Kept records of consecutive batches, gathered into one batch spanning their offsets. */
class GatheredBatch {
  readonly builder = new RecordBatchBuilder(64 * 1024);
  lastOffset: number;
  maxTimestamp = -1;

  constructor(readonly baseOffset: number) {
    this.lastOffset = baseOffset - 1;
  }
}

/**
 * Writes the segment's cleaned copy beside it and puts it in its place; null when the log was
 * closed (or the segment went) meanwhile. A segment that loses no record is left as it is.
 */
async function rewrite(
  log: PartitionLog,
  segment: LogSegment,
  latest: ReadonlyMap<string, number>,
  now: number,
  settings: CleanerSettings,
): Promise<{ recordsRemoved: number; bytesBefore: number; bytesAfter: number } | null> {
  const directory = path.join(log.directory, CLEANING_DIRECTORY);
  fs.rmSync(directory, { recursive: true, force: true });
  fs.mkdirSync(directory);
  const cleaned = LogSegment.create(directory, segment.baseOffset, log.indexIntervalBytes);
  const appendedAt = segment.lastAppendAt;
  const dropTombstones = appendedAt < now - settings.tombstoneRetentionMs;
  let recordsRemoved = 0;
  let gathered: GatheredBatch | null = null;
  const writeGathered = (): void => {
    if (gathered === null) return;
    const { builder, baseOffset, lastOffset, maxTimestamp } = gathered;
    const batch = compressBatch(builder.finish({ lastOffsetDelta: lastOffset - baseOffset, emptyTimestamp: Math.max(0, maxTimestamp) }), settings.compression);
    stampBatch(batch, baseOffset);
    cleaned.append(batch, readBatchInfo(batch), appendedAt);
    gathered = null;
  };
  try {
    const read = await eachChunk(log, segment, settings, (chunk) => {
      for (let position = 0; position + BATCH_HEADER_BYTES <= chunk.length; ) {
        const info = readBatchInfo(chunk, position);
        const batch = chunk.subarray(position, position + info.size);
        position += info.size;
        const producer = readBatchProducer(batch);
        if (isControlBatch(info.attributes) || producer.transactional || producer.producerId !== -1) {
          // A transaction's batch or marker, or an idempotent producer's batch: their headers mean something, kept whole.
          writeGathered();
          cleaned.append(Buffer.from(batch), info, appendedAt);
          continue;
        }
        const into: GatheredBatch = gathered ?? new GatheredBatch(info.baseOffset);
        gathered = into;
        forEachRecord(batch, info.baseOffset, (record) => {
          // A record without a key names nothing to replace it: kept as it is.
          const superseded = record.key !== null && (latest.get(record.key) !== record.offset || (record.tombstone && dropTombstones));
          if (superseded) {
            recordsRemoved++;
            return;
          }
          into.builder.append(
            record.timestamp,
            record.key,
            record.messageId,
            record.headers.length === 0 ? null : record.headers,
            record.tombstone ? null : record.value,
            record.offset - into.baseOffset,
          );
        });
        into.lastOffset = info.nextOffset - 1;
        if (info.maxTimestamp > into.maxTimestamp) into.maxTimestamp = info.maxTimestamp;
        if (into.builder.byteLength >= GATHERED_BATCH_BYTES) writeGathered();
      }
    });
    writeGathered();
    if (!read || recordsRemoved === 0) {
      cleaned.close();
      fs.rmSync(directory, { recursive: true, force: true });
      return read ? { recordsRemoved: 0, bytesBefore: 0, bytesAfter: 0 } : null;
    }
    await cleaned.flush();
    const bytesAfter = cleaned.size;
    cleaned.close();
    // The copy keeps the segment's age: time-based rules (tombstones, retention) read it from the file.
    const seconds = appendedAt / 1000;
    fs.utimesSync(path.join(directory, `${cleaned.fileBase}.log`), seconds, seconds);
    syncDirectoryNow(directory);
    const bytesBefore = segment.size;
    if (!log.replaceSegment(segment, directory)) return null;
    return { recordsRemoved, bytesBefore, bytesAfter };
  } finally {
    fs.rmSync(directory, { recursive: true, force: true });
  }
}

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
  setBatchProducer,
  setTransactional,
  stampBatch,
  BATCH_HEADER_BYTES,
  type BatchInfo,
  type CompressionCodec,
  type StoredRecord,
} from './record-batch/index.js';
import { syncDirectoryNow } from './sync-directory.js';

export interface CleanerSettings {
  /** A tombstone is kept this long after its segment's last append, so that consumers behind see the deletion. */
  tombstoneRetentionMs: number;
  /**
   * Segments appended to less than this long ago are left alone (the topic's deduplication window:
   * the window is read back from the log after a restart, and must find the messageIDs there).
   */
  minCompactionLagMs: number;
  /** How the rewritten batches are stored (the topic's codec). */
  compression: CompressionCodec;
  /** Keys one run maps at most (their latest offsets): past it, the run cleans up to the segment where it stopped. */
  maxKeys: number;
  /** Awaited after each chunk of work (`bytes` read or written): lets appends and reads run between, throttles, and may throw to stop the run. */
  pace(bytes: number): Promise<void>;
}

export interface CleanReport {
  segments: number;
  /** Segments merged into others (small ones, consecutive, up to the log's segment size). */
  segmentsMerged: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsRemoved: number;
}

/**
 * What the cleaner reads, and then works through on the broker worker's thread, before it gives
 * the thread back to appends: 64 KiB of small records (an offsets topic's commits) take about a
 * millisecond; 1 MiB held appends for 30 to 50 ms, every run (p99.9 of publish-to-deliver 40 ms).
 * A batch larger than this is still read whole.
 */
const READ_CHUNK_BYTES = 64 * 1024;
/** Kept records of consecutive batches are gathered into batches of about this many bytes. */
const GATHERED_BATCH_BYTES = 1024 * 1024;
/** A log is cleaned again once the segments added since its last cleaning are this share of its cleanable bytes (Kafka's min.cleanable.dirty.ratio). */
export const MIN_DIRTY_RATIO = 0.5;

/** What the cleaner remembers of a log between runs. */
interface LogState {
  /** Offsets below this are clean: no record there is superseded by another record below it. */
  cleanThrough: number;
  /** When the earliest tombstone kept becomes removable (Infinity: none kept). */
  tombstonesDueAt: number;
}

/**
 * Log compaction, as Kafka's LogCleaner does it for `cleanup.policy=compact`: the latest record of
 * each key is kept, older ones go, and a tombstone (a null value) goes too once its segment is older
 * than the tombstone retention. It works on the closed segments below the recovery point only
 * (the active segment and anything recovery or the journal may touch are left alone), older than
 * the minimum compaction lag, in the background: it reads and writes in chunks, pacing itself.
 *
 * As Kafka's, a run maps the keys of the dirty part of the log (the segments added since the last
 * run) to their latest offsets, then rewrites every cleanable segment that holds a record the map
 * supersedes; a log is cleaned again once its dirty part is half of it, or a tombstone is due.
 *
 * Offsets never change, and a segment still covers the same offsets: a record keeps its place in
 * the batch that holds it (its offset delta), and the kept records of consecutive batches are
 * gathered into one batch spanning all their offsets (an empty one when none is kept), so the
 * log's batches stay contiguous, as recovery and readers check. A transaction's or an idempotent
 * producer's batch is rewritten on its own, its header (producer, transactional flag) kept;
 * control batches are copied as they are.
 */
export class LogCleaner {
  private readonly state = new WeakMap<PartitionLog, LogState>();

  /** Cleans the log if it is due; null when there was nothing to do, or the log was closed meanwhile. */
  async clean(log: PartitionLog, now: number, settings: CleanerSettings): Promise<CleanReport | null> {
    const segments = log.cleanableSegments().filter((segment) => segment.lastAppendAt <= now - settings.minCompactionLagMs);
    if (segments.length === 0) return null;
    const state = this.state.get(log) ?? { cleanThrough: log.logStartOffset, tombstonesDueAt: Number.POSITIVE_INFINITY };
    const total = segments.reduce((sum, segment) => sum + segment.size, 0);
    const dirty = segments.filter((segment) => segment.nextOffset > state.cleanThrough);
    const dirtyBytes = dirty.reduce((sum, segment) => sum + segment.size, 0);
    if (dirtyBytes === 0 ? state.tombstonesDueAt > now : dirtyBytes < total * MIN_DIRTY_RATIO && state.tombstonesDueAt > now) return null;

    // The latest offset of each key of the dirty segments (a tombstone is a key's latest too), up to maxKeys.
    const latest = new Map<string, number>();
    let mappedThrough = state.cleanThrough;
    for (const segment of dirty) {
      const read = await eachChunk(log, segment, settings, (chunk) => {
        forEachRecord(chunk, segment.baseOffset, (record) => {
          if (record.key !== null) latest.set(record.key, record.offset);
        });
      });
      if (!read) return null;
      mappedThrough = segment.nextOffset;
      if (latest.size >= settings.maxKeys) break;
    }
    const cleaning = new SegmentCleaning(latest, now, settings);
    const report: CleanReport = { segments: 0, segmentsMerged: 0, bytesBefore: 0, bytesAfter: 0, recordsRemoved: 0 };
    for (const segment of segments) {
      if (segment.baseOffset >= mappedThrough) break;
      const removable = await cleaning.countRemovable(log, segment);
      if (removable === null) return null;
      if (removable === 0) continue;
      const rewritten = await cleaning.rewrite(log, segment);
      if (rewritten === null) return null;
      report.segments++;
      report.bytesBefore += rewritten.bytesBefore;
      report.bytesAfter += rewritten.bytesAfter;
      report.recordsRemoved += rewritten.recordsRemoved;
    }
    this.state.set(log, { cleanThrough: mappedThrough, tombstonesDueAt: cleaning.tombstonesDueAt });
    const merged = await mergeSmallSegments(log, now, settings);
    if (merged === null) return null;
    report.segmentsMerged = merged;
    return report;
  }
}

/**
 * Merges runs of consecutive small segments (cleaned ones shrink) into one, up to the log's
 * segment size, as Kafka's cleaner groups segments: a compacted log does not pile up files.
 * Returns how many segments went; null when the log was closed meanwhile.
 */
async function mergeSmallSegments(log: PartitionLog, now: number, settings: CleanerSettings): Promise<number | null> {
  const cleanable = log.cleanableSegments().filter((segment) => segment.lastAppendAt <= now - settings.minCompactionLagMs);
  const groups: LogSegment[][] = [];
  let group: LogSegment[] = [];
  let bytes = 0;
  for (const segment of cleanable) {
    if (group.length > 0 && (bytes + segment.size > log.segmentBytes || group[group.length - 1]!.nextOffset !== segment.baseOffset)) {
      if (group.length > 1) groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(segment);
    bytes += segment.size;
  }
  if (group.length > 1) groups.push(group);
  let merged = 0;
  for (const run of groups) {
    const directory = path.join(log.directory, CLEANING_DIRECTORY);
    fs.rmSync(directory, { recursive: true, force: true });
    fs.mkdirSync(directory);
    const first = run[0]!;
    const last = run[run.length - 1]!;
    const combined = LogSegment.create(directory, first.baseOffset, log.indexIntervalBytes);
    try {
      for (const segment of run) {
        // The batches as they are: consecutive segments hold consecutive offsets.
        const read = await eachChunk(log, segment, settings, (chunk) =>
          eachBatch(chunk, (batch, info) => combined.append(Buffer.from(batch), info, last.lastAppendAt)),
        );
        if (!read) return null;
      }
      if (combined.nextOffset !== last.nextOffset) {
        throw new Error(
          `the merge of segments ${first.baseOffset} to ${last.baseOffset} of ${log.directory} ends at ${combined.nextOffset}, not ${last.nextOffset}`,
        );
      }
      await combined.flush();
      combined.close();
      const seconds = last.lastAppendAt / 1000;
      fs.utimesSync(path.join(directory, `${combined.fileBase}.log`), seconds, seconds);
      syncDirectoryNow(directory);
      if (!log.replaceSegments(run, directory)) return null;
      merged += run.length - 1;
    } finally {
      combined.close();
      fs.rmSync(directory, { recursive: true, force: true });
    }
  }
  return merged;
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

/** Calls `visit` with each batch of a chunk of whole batches. */
function eachBatch(chunk: Buffer, visit: (batch: Buffer, info: BatchInfo) => void): void {
  for (let position = 0; position + BATCH_HEADER_BYTES <= chunk.length; ) {
    const info = readBatchInfo(chunk, position);
    visit(chunk.subarray(position, position + info.size), info);
    position += info.size;
  }
}

/** Kept records of batches, gathered into one batch spanning their offsets. */
class GatheredBatch {
  readonly builder = new RecordBatchBuilder(64 * 1024);
  lastOffset: number;
  maxTimestamp = -1;

  constructor(readonly baseOffset: number) {
    this.lastOffset = baseOffset - 1;
  }

  add(record: StoredRecord): void {
    this.builder.append(
      record.timestamp,
      record.key,
      record.messageId,
      record.headers.length === 0 ? null : record.headers,
      record.tombstone ? null : record.value,
      record.offset - this.baseOffset,
    );
  }

  /** The batch, spanning its offsets, compressed with `codec`, stamped with its base offset. */
  finish(codec: CompressionCodec, producer?: { producerId: number; producerEpoch: number; baseSequence: number; transactional: boolean }): Buffer {
    const built = this.builder.finish({ lastOffsetDelta: this.lastOffset - this.baseOffset, emptyTimestamp: Math.max(0, this.maxTimestamp) });
    if (producer !== undefined) {
      setBatchProducer(built, producer.producerId, producer.producerEpoch, producer.baseSequence);
      if (producer.transactional) setTransactional(built);
    }
    const batch = compressBatch(built, codec);
    stampBatch(batch, this.baseOffset);
    return batch;
  }
}

/**
 * One cleaning run's rules, whatever stores the batches (segment files, or database rows): which
 * records go (superseded by a later record of their key in `latest`, or a tombstone past its
 * retention), and the rewrite of a run of consecutive batches without them. The rewrite keeps
 * every offset where it was: the kept records of consecutive ordinary batches are gathered into
 * batches of about GATHERED_BATCH_BYTES spanning all their offsets (an empty one when none is
 * kept); a transaction's or an idempotent producer's batch is rewritten on its own, its header
 * kept (transactions find their batches by it); control batches go as they are.
 */
export class BatchCompaction {
  /** When the earliest tombstone kept in this run becomes removable. */
  tombstonesDueAt = Number.POSITIVE_INFINITY;
  recordsRemoved = 0;
  private gathered: GatheredBatch | null = null;
  private emit: ((batch: Buffer, info: BatchInfo) => void) | null = null;

  constructor(
    private readonly latest: ReadonlyMap<string, number>,
    private readonly now: number,
    private readonly settings: Pick<CleanerSettings, 'tombstoneRetentionMs' | 'compression'>,
  ) {}

  /**
   * Whether a record goes: superseded by a later one of its key, or a tombstone whose batch was
   * appended (`appendedAt`) longer than the tombstone retention ago. A record without a key names
   * nothing: kept.
   */
  superseded(record: StoredRecord, appendedAt: number): boolean {
    if (record.key === null) return false;
    const latest = this.latest.get(record.key);
    if (latest !== undefined && latest > record.offset) return true;
    if (!record.tombstone) return false;
    const dueAt = appendedAt + this.settings.tombstoneRetentionMs;
    if (dueAt <= this.now) return true;
    if (dueAt < this.tombstonesDueAt) this.tombstonesDueAt = dueAt;
    return false;
  }

  /** How many records of a batch (stamped with its base offset) would go. */
  removable(batch: Buffer, info: BatchInfo, appendedAt: number): number {
    if (isControlBatch(info.attributes)) return 0;
    let removable = 0;
    forEachRecord(batch, info.baseOffset, (record) => {
      if (this.superseded(record, appendedAt)) removable++;
    });
    return removable;
  }

  /**
   * Whether a batch keeps a tombstone (one neither superseded nor past its retention). A store that
   * keeps an append time per batch rewrites such a batch on its own, so that it keeps its own time:
   * gathered with newer batches, it would take theirs, and the retention its tombstone waits out
   * would start again at each rewrite.
   */
  keepsTombstone(batch: Buffer, info: BatchInfo, appendedAt: number): boolean {
    if (isControlBatch(info.attributes)) return false;
    let keeps = false;
    forEachRecord(batch, info.baseOffset, (record) => {
      if (record.tombstone && !this.superseded(record, appendedAt)) keeps = true;
    });
    return keeps;
  }

  /** Starts the rewrite of a run of consecutive batches: what `add` keeps goes to `emit`, batch by batch, in offset order. */
  begin(emit: (batch: Buffer, info: BatchInfo) => void): void {
    this.emit = emit;
    this.gathered = null;
  }

  /** The next batch of the run (stamped with its base offset), appended at `appendedAt`. */
  add(batch: Buffer, info: BatchInfo, appendedAt: number): void {
    if (isControlBatch(info.attributes)) {
      // A transaction marker: no records to clean, and it means something as it is.
      this.flush();
      this.emit!(Buffer.from(batch), info);
      return;
    }
    const producer = readBatchProducer(batch);
    if (producer.transactional || producer.producerId !== -1) {
      this.flush();
      const own = new GatheredBatch(info.baseOffset);
      this.keep(own, batch, info, appendedAt);
      const rewritten = own.finish(this.settings.compression, producer);
      this.emit!(rewritten, readBatchInfo(rewritten));
      return;
    }
    const into: GatheredBatch = this.gathered ?? new GatheredBatch(info.baseOffset);
    this.gathered = into;
    this.keep(into, batch, info, appendedAt);
    if (into.builder.byteLength >= GATHERED_BATCH_BYTES) this.flush();
  }

  /** Ends the run: what is still gathered goes out. */
  end(): void {
    this.flush();
    this.emit = null;
  }

  private keep(into: GatheredBatch, batch: Buffer, info: BatchInfo, appendedAt: number): void {
    forEachRecord(batch, info.baseOffset, (record) => {
      if (this.superseded(record, appendedAt)) this.recordsRemoved++;
      else into.add(record);
    });
    into.lastOffset = info.nextOffset - 1;
    if (info.maxTimestamp > into.maxTimestamp) into.maxTimestamp = info.maxTimestamp;
  }

  private flush(): void {
    if (this.gathered === null) return;
    const batch = this.gathered.finish(this.settings.compression);
    this.gathered = null;
    this.emit!(batch, readBatchInfo(batch));
  }
}

/** One run's decisions over a log's segments: which records go, and the rewrite of a segment without them. */
class SegmentCleaning {
  private readonly compaction: BatchCompaction;

  constructor(
    latest: ReadonlyMap<string, number>,
    now: number,
    private readonly settings: CleanerSettings,
  ) {
    this.compaction = new BatchCompaction(latest, now, settings);
  }

  /** When the earliest tombstone kept in this run becomes removable. */
  get tombstonesDueAt(): number {
    return this.compaction.tombstonesDueAt;
  }

  /** How many records of the segment would go (read only); null when the log was closed meanwhile. */
  async countRemovable(log: PartitionLog, segment: LogSegment): Promise<number | null> {
    let removable = 0;
    const read = await eachChunk(log, segment, this.settings, (chunk) =>
      eachBatch(chunk, (batch, info) => {
        removable += this.compaction.removable(batch, info, segment.lastAppendAt);
      }),
    );
    return read ? removable : null;
  }

  /**
   * Writes the segment's cleaned copy beside it and puts it in its place; null when the log was
   * closed (or the segment went) meanwhile.
   */
  async rewrite(log: PartitionLog, segment: LogSegment): Promise<{ recordsRemoved: number; bytesBefore: number; bytesAfter: number } | null> {
    const directory = path.join(log.directory, CLEANING_DIRECTORY);
    fs.rmSync(directory, { recursive: true, force: true });
    fs.mkdirSync(directory);
    const cleaned = LogSegment.create(directory, segment.baseOffset, log.indexIntervalBytes);
    const appendedAt = segment.lastAppendAt;
    const removedBefore = this.compaction.recordsRemoved;
    try {
      this.compaction.begin((batch, info) => cleaned.append(batch, info, appendedAt));
      const read = await eachChunk(log, segment, this.settings, (chunk) => eachBatch(chunk, (batch, info) => this.compaction.add(batch, info, appendedAt)));
      this.compaction.end();
      if (!read) return null;
      // The copy covers the offsets the segment did, or it is not put in its place.
      if (cleaned.nextOffset !== segment.nextOffset) {
        throw new Error(`the cleaned copy of segment ${segment.baseOffset} of ${log.directory} ends at ${cleaned.nextOffset}, not ${segment.nextOffset}`);
      }
      await cleaned.flush();
      const bytesAfter = cleaned.size;
      cleaned.close();
      // The copy keeps the segment's age: time-based rules (tombstones, the compaction lag) read it from the file.
      const seconds = appendedAt / 1000;
      fs.utimesSync(path.join(directory, `${cleaned.fileBase}.log`), seconds, seconds);
      syncDirectoryNow(directory);
      const bytesBefore = segment.size;
      if (!log.replaceSegment(segment, directory)) return null;
      return { recordsRemoved: this.compaction.recordsRemoved - removedBefore, bytesBefore, bytesAfter };
    } finally {
      // Closed whatever happened (an error leaves no descriptor holding the removed file's space).
      cleaned.close();
      fs.rmSync(directory, { recursive: true, force: true });
    }
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { PartitionLog, readRecoveryPoint, type LogConfig } from '../partition-log.js';
import { RecordBatchBuilder, stampBatch } from '../record-batch/index.js';
import { syncDirectoryNow, syncPathNow } from '../sync-directory.js';
import { listEntries, listSegments, segmentFileName } from './data-layout.js';
import * as legacy from './legacy-batch.js';
import { forEachLegacyBatch } from './legacy-segment.js';
import { type JournaledBatch, readJournaledBatch } from './legacy-journals.js';

/** What converting one partition took and gave. */
export interface PartitionConversion {
  logStartOffset: number;
  logEndOffset: number;
  segments: number;
  batches: number;
  records: number;
  /** Batches the segments had lost and the journals gave back. */
  restored: number;
  /** Legacy bytes of the batches kept, and the same batches' bytes in the new format. */
  bytesBefore: number;
  bytesAfter: number;
  /** Legacy segment bytes the old recovery would have cut off too (torn tails, segments after a gap). */
  droppedBytes: number;
}

/** As PartitionLog's: `{"v":1,"offset":N}`, every batch below N durable and checked. */
const RECOVERY_POINT_FILE = 'recovery-point.json';
/** As PartitionLog's: present in a partition closed cleanly. */
const CLEAN_SHUTDOWN_MARKER = '.clean-shutdown';
const WRITE_BUFFER_BYTES = 1024 * 1024;

/**
 * Writes into `target` (created here: it must not exist) the records of the legacy partition in `source`,
 * as the old start-up would have recovered it, in Kafka's RecordBatch v2: the batches of its
 * segments that are intact and continue the offsets (one new segment for each legacy one, under
 * the same name), then the batches of the journals that continue them (what a crash took from the
 * segments). Same offsets, timestamps, keys, messageIDs, headers and values. Every file and the
 * directory are fsynced, the indexes built, and the result read back by PartitionLog before this
 * returns: from then on `target` is a complete copy.
 */
export function convertPartition(
  source: string,
  target: string,
  journaled: readonly JournaledBatch[],
  journalsLive: boolean,
  logConfig: LogConfig,
): PartitionConversion {
  const segments = listSegments(source);
  const log = new ConvertedLog(target, segments[0]?.baseOffset ?? 0);
  const keepBelow = journalsLive ? acknowledgeableEnd(source, journaled) : Number.POSITIVE_INFINITY;
  const droppedBytes = copySegments(segments, log, keepBelow);
  const restored = copyJournaled(journaled, log);
  log.finish();
  checkAndIndex(target, log, logConfig);
  return { ...log.counts(), restored, droppedBytes, segments: log.segmentCount };
}

/**
 * The offset past which the legacy segments hold nothing that was ever acknowledged, as the old
 * start-up cut after a crash (`cutUnjournaledTail`): batches past both the recovery point and
 * everything the journals hold were written but never made durable, so never acknowledged, and
 * their producers sent them again (kept, they would be stored twice). After a clean shutdown,
 * everything was acknowledged or answered: nothing is cut. Asked only when the old journals have
 * live files, as the old start-up cut only then.
 */
function acknowledgeableEnd(source: string, journaled: readonly JournaledBatch[]): number {
  if (fs.existsSync(path.join(source, CLEAN_SHUTDOWN_MARKER))) return Number.POSITIVE_INFINITY;
  const journalEnd = journaled.reduce((end, entry) => Math.max(end, entry.nextOffset), 0);
  return Math.max(readRecoveryPoint(source), journalEnd);
}

/**
 * The legacy segments' intact batches, as the old recovery kept them: each segment up to its
 * first batch that is torn, corrupt or out of sequence, and no segment after one that does not
 * start where the previous ended; none that starts at or past `keepBelow`. Returns the bytes left
 * behind.
 */
function copySegments(segments: ReadonlyArray<{ baseOffset: number; file: string }>, log: ConvertedLog, keepBelow: number): number {
  let dropped = 0;
  for (const [i, { baseOffset, file }] of segments.entries()) {
    if (i > 0 && baseOffset !== log.nextOffset) {
      for (const later of segments.slice(i)) dropped += fs.statSync(later.file).size;
      break;
    }
    log.startSegment(baseOffset, fs.statSync(file).mtimeMs);
    const scan = forEachLegacyBatch(file, baseOffset, (batch, info) => {
      if (info.baseOffset >= keepBelow) dropped += info.size;
      else log.append(batch, info);
    });
    dropped += scan.size - scan.validBytes;
  }
  return dropped;
}

/**
 * The journals' batches that continue the log, as the old start-up replayed them: in journal,
 * file and position order, skipping what the log has; a damaged batch ends its file, a batch
 * that does not start at the log's end (a gap: what lies between is lost) ends its journal.
 * Unlike the old replay, a damaged batch of another partition does not end the file for this one:
 * nothing after a damaged record was acknowledged, but what is intact is kept, never lost.
 */
function copyJournaled(journaled: readonly JournaledBatch[], log: ConvertedLog): number {
  let restored = 0;
  let endedFile: JournaledBatch['file'] | null = null;
  let endedJournal = -1;
  for (const entry of journaled) {
    if (entry.journal === endedJournal || entry.file === endedFile || entry.nextOffset <= log.nextOffset) continue;
    const batch = readJournaledBatch(entry);
    if (!legacy.isBatchValid(batch, 0, batch.length)) endedFile = entry.file;
    else if (entry.baseOffset !== log.nextOffset) endedJournal = entry.journal;
    else {
      log.append(batch, legacy.readBatchInfo(batch));
      restored++;
    }
  }
  return restored;
}

/**
 * Opens the converted partition with the new PartitionLog, which checks every batch (CRC,
 * offsets) and builds the offset and time indexes, and closes it clean; then makes every file
 * and the directory durable. A conversion the new code does not read back whole is an error,
 * and the partition is not swapped.
 */
function checkAndIndex(directory: string, converted: ConvertedLog, logConfig: LogConfig): void {
  writeRecoveryPoint(directory, converted.nextOffset);
  const { log } = PartitionLog.open(directory, logConfig);
  const read = { logStartOffset: log.logStartOffset, logEndOffset: log.logEndOffset };
  log.close();
  if (read.logStartOffset !== converted.logStartOffset || read.logEndOffset !== converted.nextOffset) {
    throw new Error(
      `${directory}: the converted log reads back as offsets ${read.logStartOffset} to ${read.logEndOffset}, not ${converted.logStartOffset} to ${converted.nextOffset}`,
    );
  }
  for (const name of listEntries(directory)) syncPathNow(path.join(directory, name));
  syncDirectoryNow(directory);
}

function writeRecoveryPoint(directory: string, offset: number): void {
  const fd = fs.openSync(path.join(directory, RECOVERY_POINT_FILE), 'wx');
  try {
    fs.writeSync(fd, JSON.stringify({ v: 1, offset }));
  } finally {
    fs.closeSync(fd);
  }
}

/** The new partition as it is written: its segments, one at a time, and what went into them. */
class ConvertedLog {
  nextOffset: number;
  segmentCount = 0;
  private segment: SegmentWriter | null = null;
  private batches = 0;
  private records = 0;
  private bytesBefore = 0;
  private bytesAfter = 0;

  constructor(
    private readonly directory: string,
    readonly logStartOffset: number,
  ) {
    this.nextOffset = logStartOffset;
    fs.mkdirSync(directory);
  }

  /** Ends the segment being written and starts the next, at the log's end (same name as its legacy one). */
  startSegment(baseOffset: number, modifiedMs: number | null): void {
    if (baseOffset !== this.nextOffset) throw new Error(`a segment at offset ${baseOffset} cannot follow the log's end ${this.nextOffset}`);
    this.segment?.finish();
    this.segment = new SegmentWriter(path.join(this.directory, segmentFileName(baseOffset)), modifiedMs);
    this.segmentCount++;
  }

  append(legacyBatch: Buffer, info: legacy.BatchInfo): void {
    if (this.segment === null) this.startSegment(this.nextOffset, null);
    const batch = convertBatch(legacyBatch, info);
    this.segment!.write(batch);
    this.nextOffset = info.baseOffset + info.recordCount;
    this.batches++;
    this.records += info.recordCount;
    this.bytesBefore += legacyBatch.length;
    this.bytesAfter += batch.length;
  }

  /** Ends the last segment (an empty one at the log's end when there was none, as PartitionLog makes). */
  finish(): void {
    if (this.segment === null) this.startSegment(this.nextOffset, null);
    this.segment!.finish();
  }

  counts(): Pick<PartitionConversion, 'logStartOffset' | 'logEndOffset' | 'batches' | 'records' | 'bytesBefore' | 'bytesAfter'> {
    const { logStartOffset, nextOffset: logEndOffset, batches, records, bytesBefore, bytesAfter } = this;
    return { logStartOffset, logEndOffset, batches, records, bytesBefore, bytesAfter };
  }
}

/**
 * One legacy batch as a RecordBatch v2 batch with the same base offset: its records in order
 * (offset deltas 0, 1, ... as the legacy offsets were consecutive), the messageID as the
 * `message-id` header.
 */
function convertBatch(legacyBatch: Buffer, info: legacy.BatchInfo): Buffer {
  const builder = new RecordBatchBuilder(legacyBatch.length + 256);
  legacy.forEachRecord(legacyBatch, (record) => builder.append(record.timestamp, record.key, record.messageId, record.headers, record.value));
  if (builder.recordCount !== info.recordCount) {
    throw new Error(`the legacy batch at offset ${info.baseOffset} claims ${info.recordCount} records and holds ${builder.recordCount}`);
  }
  const batch = builder.finish();
  stampBatch(batch, info.baseOffset);
  return batch;
}

/** A new segment file written through a buffer, then fsynced, with its legacy file's modification time. */
class SegmentWriter {
  private readonly fd: number;
  private readonly pending = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  private pendingLength = 0;
  private position = 0;

  constructor(
    private readonly file: string,
    /** Kept because retention counts a segment's age from it; null for a segment new here. */
    private readonly modifiedMs: number | null,
  ) {
    this.fd = fs.openSync(file, 'wx');
  }

  write(batch: Buffer): void {
    if (this.pendingLength + batch.length > this.pending.length) this.flush();
    if (batch.length > this.pending.length) this.writeFully(batch);
    else {
      batch.copy(this.pending, this.pendingLength);
      this.pendingLength += batch.length;
    }
  }

  finish(): void {
    try {
      this.flush();
      if (this.modifiedMs !== null) fs.futimesSync(this.fd, this.modifiedMs / 1000, this.modifiedMs / 1000);
      fs.fsyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
    }
  }

  private flush(): void {
    this.writeFully(this.pending.subarray(0, this.pendingLength));
    this.pendingLength = 0;
  }

  private writeFully(bytes: Buffer): void {
    let written = 0;
    while (written < bytes.length) {
      const count = fs.writeSync(this.fd, bytes, written, bytes.length - written, this.position + written);
      if (count <= 0) throw new Error(`a write to ${this.file} made no progress`);
      written += count;
    }
    this.position += bytes.length;
  }
}

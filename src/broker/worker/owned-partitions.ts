import path from 'node:path';
import type { Logger } from '../../logging/index.js';
import { compressBatch, CorruptBatchError, encodeKey, OffsetOutOfRangeError, PartitionLog, setBaseOffset, type LogConfig } from '../../storage/index.js';
import type { CallReply, PartitionAssignment, PartitionSettings, WorkerFailure } from '../protocol.js';
import { failureOf } from './failures.js';

export interface OwnedPartition {
  assignment: PartitionAssignment;
  readonly log: PartitionLog;
  /** An internal topic (`__consumer_offsets`): it may write into the free-space reserve. */
  readonly internal: boolean;
  /** The partition's name in journal records: its directory relative to the data directory. */
  readonly journalKey: Buffer;
}

/** Recovery already reported by the journal's recovery, which opened the log. */
const NOTHING_TRUNCATED = { truncatedBytes: 0, droppedSegments: 0, cleanShutdown: false };

const UNKNOWN_PARTITION: WorkerFailure = { code: 'unknown-partition', message: 'partition is not open on this broker worker' };

/**
 * The partitions one worker owns, by global id: opening (with recovery), appends, reads, offsets
 * and retention over their logs. `readableEnd` decides how far readers may see.
 */
export class OwnedPartitions {
  private readonly partitions = new Map<number, OwnedPartition>();
  /** The same partitions by journal key (their directory relative to the data directory). */
  private readonly byKey = new Map<string, OwnedPartition>();
  /** Damaged batches already logged (partition key @ offset): a reader retrying one logs it once. */
  private readonly reportedCorruption = new Set<string>();

  constructor(
    /** The data directory, absolute: journal keys are relative to it. */
    private readonly dataDir: string,
    private readonly logConfig: LogConfig,
    private readonly readableEnd: (log: PartitionLog) => number,
    private readonly logger: Logger,
    /** Logs already opened (and recovered) by the journal's recovery, by journal key: taken over when assigned. */
    private readonly preopened = new Map<string, PartitionLog>(),
    /**
     * After a crash, per journal key, where the journal's records of the partition end (null when
     * the worker had no journal to recover, as with a data directory from before journals).
     */
    private readonly journaledEnds: Map<string, number> | null = null,
  ) {}

  byJournalKey(key: string): OwnedPartition | undefined {
    return this.byKey.get(key);
  }

  /**
   * Opens (and recovers) partitions, in order. Stops at the first that cannot be opened (too many
   * open files, a damaged directory), logs it with its topic and partition, and returns it with
   * its error; null when every one is open.
   */
  open(assignments: PartitionAssignment[]): { assignment: PartitionAssignment; error: Error } | null {
    for (const assignment of assignments) {
      if (this.partitions.has(assignment.id)) continue;
      const key = path.relative(this.dataDir, assignment.directory);
      let opened: ReturnType<typeof PartitionLog.open>;
      try {
        const preopened = this.preopened.get(key);
        this.preopened.delete(key);
        opened = preopened === undefined ? PartitionLog.open(assignment.directory, this.logConfig) : { log: preopened, recovery: NOTHING_TRUNCATED };
      } catch (error) {
        const { topic, partition, directory } = assignment;
        this.logger.error({ err: error, topic, partition, directory }, 'partition could not be opened');
        return { assignment, error: error instanceof Error ? error : new Error(String(error)) };
      }
      const { log, recovery } = opened;
      const { retentionMs, retentionBytes, cleanupPolicy, segmentBytes } = assignment;
      // A partition's own segment size only ever rolls sooner than storage.segmentBytes.
      log.configure({
        retentionMs,
        retentionBytes,
        cleanupPolicy,
        segmentBytes: Math.min(segmentBytes ?? this.logConfig.segmentBytes, this.logConfig.segmentBytes),
      });
      if (this.journaledEnds !== null) {
        // What the segments hold past both the recovery point and the journal was never acknowledged.
        try {
          const cut = log.cutUnjournaledTail(Math.max(log.recoveryPointOffset, this.journaledEnds.get(key) ?? 0));
          if (cut > 0)
            this.logger.info({ topic: assignment.topic, partition: assignment.partition, offsets: cut }, 'removed batches no journal had (never acknowledged)');
        } catch (error) {
          this.logger.error(
            { err: error, topic: assignment.topic, partition: assignment.partition },
            'could not remove batches no journal had: the partition is offline',
          );
        }
      }
      // The free-space reserve is for committed offsets and metadata, not for the transaction log's message data.
      const internal = assignment.topic.startsWith('__') && assignment.topic !== '__transaction_state';
      const owned: OwnedPartition = { assignment, log, internal, journalKey: encodeKey(key) };
      this.partitions.set(assignment.id, owned);
      this.byKey.set(key, owned);
      if (recovery.truncatedBytes > 0 || recovery.droppedSegments > 0) {
        this.logger.warn({ topic: assignment.topic, partition: assignment.partition, ...recovery }, 'recovery truncated a damaged log tail');
      }
    }
    return null;
  }

  get(id: number): OwnedPartition | undefined {
    return this.partitions.get(id);
  }

  /** A topic's configuration changed: its compression and retention, for the batches and checks to come. */
  configure(settings: readonly PartitionSettings[]): void {
    for (const setting of settings) {
      const owned = this.partitions.get(setting.id);
      if (owned === undefined) continue;
      owned.assignment = { ...owned.assignment, ...setting };
      owned.log.configure({ retentionMs: setting.retentionMs, retentionBytes: setting.retentionBytes, cleanupPolicy: setting.cleanupPolicy });
    }
  }

  /** Closes and forgets the partitions of a deleted topic; returns them (their files are the front's to remove). */
  remove(ids: readonly number[]): OwnedPartition[] {
    const removed: OwnedPartition[] = [];
    for (const id of ids) {
      const owned = this.partitions.get(id);
      if (owned === undefined) continue;
      this.partitions.delete(id);
      this.byKey.delete(owned.journalKey.toString('utf8'));
      owned.log.close();
      removed.push(owned);
    }
    return removed;
  }

  /**
   * Appends one batch, compressed first if the topic says so; returns its base offset and the bytes
   * stored (for the journal), or the failure. The batch handed in gets its base offset either way:
   * the front gives it, as it is, to readers waiting for it.
   */
  append(id: number, bytes: Uint8Array, now: number): { baseOffset: number; owned: OwnedPartition; stored: Buffer } | WorkerFailure {
    const owned = this.partitions.get(id);
    if (owned === undefined) return UNKNOWN_PARTITION;
    try {
      const batch = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const stored = compressBatch(batch, owned.assignment.compression);
      const info = owned.log.append(stored, now);
      if (stored !== batch) setBaseOffset(batch, info.baseOffset);
      return { baseOffset: info.baseOffset, owned, stored };
    } catch (error) {
      const failure = failureOf(error, 'storage error');
      // A full disk is an ordinary state, logged by the worker once per episode, not per batch.
      if (failure.code !== 'disk-full')
        this.logger.error({ err: error, topic: owned.assignment.topic, partition: owned.assignment.partition }, 'append failed');
      return failure;
    }
  }

  read(id: number, offset: number, maxBytes: number): CallReply<'read'> {
    const owned = this.partitions.get(id);
    if (owned === undefined) return { data: null, logStartOffset: 0, logEndOffset: 0, failure: UNKNOWN_PARTITION };
    const { log } = owned;
    const end = this.readableEnd(log);
    try {
      const bytes = offset >= end ? null : log.read(offset, maxBytes, end);
      const data = bytes === null || bytes.length === 0 ? null : bytes;
      return { data, logStartOffset: log.logStartOffset, logEndOffset: end };
    } catch (error) {
      return { data: null, logStartOffset: log.logStartOffset, logEndOffset: end, failure: this.readFailure(owned, error) };
    }
  }

  /** A read's error as a failure for the front; a damaged batch is logged, once per batch (readers retry). */
  private readFailure(owned: OwnedPartition, error: unknown): WorkerFailure {
    if (error instanceof OffsetOutOfRangeError) return { code: 'offset-out-of-range', message: error.message };
    if (error instanceof CorruptBatchError) {
      const reported = `${owned.journalKey}@${error.baseOffset}`;
      if (!this.reportedCorruption.has(reported)) {
        this.reportedCorruption.add(reported);
        this.logger.error(
          { topic: owned.assignment.topic, partition: owned.assignment.partition, offset: error.baseOffset },
          'a stored batch is damaged: its readers are refused until it is repaired or retention removes it',
        );
      }
    }
    return { code: 'storage-error', message: `storage error: ${(error as Error).message}` };
  }

  offsets(id: number, timestamp: number | undefined, appendedSince?: number): CallReply<'offsets'> {
    const owned = this.partitions.get(id);
    if (owned === undefined) return { logStartOffset: 0, logEndOffset: 0, failure: UNKNOWN_PARTITION };
    const { log } = owned;
    const end = this.readableEnd(log);
    const result: CallReply<'offsets'> = { logStartOffset: log.logStartOffset, logEndOffset: end, sizeBytes: log.sizeInBytes, segments: log.segmentCount };
    if (appendedSince !== undefined) result.appendedSinceOffset = Math.min(log.firstOffsetAppendedSince(appendedSince), end);
    try {
      if (timestamp !== undefined) result.offsetForTimestamp = Math.min(log.offsetForTimestamp(timestamp), end);
    } catch (error) {
      // A damaged batch on the way (or a full disk refusing a read): an error for this request, never the worker's end.
      result.failure = this.readFailure(owned, error);
    }
    return result;
  }

  /** The partitions whose topic is compacted (the log cleaner's work). */
  compacted(): OwnedPartition[] {
    return [...this.partitions.values()].filter((owned) => owned.log.cleanupPolicy === 'compact');
  }

  enforceRetention(now: number): void {
    for (const { log, assignment } of this.partitions.values()) {
      const deleted = log.deleteExpiredSegments(now);
      if (deleted > 0) {
        this.logger.info(
          { topic: assignment.topic, partition: assignment.partition, deleted, logStartOffset: log.logStartOffset },
          'retention deleted segments',
        );
      }
    }
  }

  /**
   * Makes every log's segments durable and closes them; returns whether every one closed clean
   * (then the journal's records are no longer needed).
   */
  async close(): Promise<boolean> {
    const results = await Promise.allSettled([...this.partitions.values()].map((owned) => owned.log.flush()));
    for (const result of results) if (result.status === 'rejected') this.logger.error({ err: result.reason }, 'fsync on close failed');
    let clean = true;
    for (const owned of this.partitions.values()) if (!owned.log.close()) clean = false;
    // Logs recovered from the journal but never assigned here (none, unless the topic went away).
    for (const log of this.preopened.values()) {
      await log.flush().catch(() => undefined);
      if (!log.close()) clean = false;
    }
    this.partitions.clear();
    this.byKey.clear();
    this.preopened.clear();
    return clean;
  }
}

import type { Logger } from '../../logging/index.js';
import type { Journal } from '../../storage/index.js';
import type { CallReply, WorkerFailure } from '../protocol.js';
import { failureOf } from './failures.js';
import type { OwnedPartition } from './owned-partitions.js';

type AppendReply = CallReply<'append'>;

/** One append request waiting to be answered, and where each of its batches went. */
interface PendingAnswer {
  reply: AppendReply;
  /** Per batch: the partition written and its log's epoch then (null when the batch failed already). */
  written: Array<{ owned: OwnedPartition; epoch: number } | null>;
  send: (reply: AppendReply) => void;
}

/** How often `os` looks for full journal files to sync, so that they are checkpointed and reused. */
const OS_MODE_SYNC_MS = 1000;

/**
 * When an append may be answered, under `storage.durability.mode`. Every batch is in the worker's
 * journal as well as in its partition's segment; the journal's fdatasync is what makes a batch
 * durable, one for every partition the worker owns.
 * - `fsync`: after the journal's fdatasync. Group commit: appends that arrive while one runs wait
 *   for the next. If it fails, what was written since the last good one may or may not be on disk
 *   (and a later fdatasync may report success without it): the journal erases those records and
 *   every partition written since is cut back to its durable end (PartitionLog explains why); each
 *   such batch is answered as failed, never acknowledged.
 * - `interval`: at once; the journal is synced every `intervalMs`.
 * - `os`: at once; the journal is synced only when a full file is to be reused.
 */
export class Durability {
  /** Appends written but not yet covered by a sync (fsync mode only). */
  private waiting: PendingAnswer[] = [];
  /** Partitions written since the last sync began. */
  private readonly dirty = new Set<OwnedPartition>();
  private syncScheduled = false;
  private readonly timer: NodeJS.Timeout | null = null;

  constructor(
    readonly mode: 'fsync' | 'interval' | 'os',
    intervalMs: number,
    private readonly journal: Journal,
    private readonly logger: Logger,
  ) {
    if (mode !== 'fsync') {
      const sync = mode === 'interval' ? () => this.backgroundSync() : () => (this.journal.hasFullFiles ? this.backgroundSync() : undefined);
      this.timer = setInterval(sync, mode === 'interval' ? intervalMs : OS_MODE_SYNC_MS);
      this.timer.unref();
    }
  }

  /** A partition was written to (its batch is in the journal). */
  written(owned: OwnedPartition): void {
    this.dirty.add(owned);
  }

  /**
   * Sends `reply` once the appends it answers are as durable as the mode promises. `written` says,
   * per batch, which partition took it (null for a batch that failed already).
   */
  answer(reply: AppendReply, written: Array<OwnedPartition | null>, send: (reply: AppendReply) => void): void {
    if (this.mode !== 'fsync') {
      send(reply);
      return;
    }
    this.waiting.push({ reply, written: written.map((owned) => (owned === null ? null : { owned, epoch: owned.log.epoch })), send });
    this.scheduleSync();
  }

  /** Syncs what is written (on shutdown). */
  drain(): void {
    if (this.mode === 'fsync') this.groupCommit();
    else this.backgroundSync();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }

  private scheduleSync(): void {
    if (this.syncScheduled) return;
    this.syncScheduled = true;
    // Let every append already queued on the port be written first: one fdatasync then covers them all.
    setImmediate(() => {
      this.syncScheduled = false;
      this.groupCommit();
    });
  }

  /**
   * One journal fdatasync, on this thread (Journal.syncBlocking says why), for every append
   * written since the last: the partitions written become durable up to where they are now, and
   * the answers go out. If it fails, everything written since the last good one is erased from
   * the journal and cut back from its partitions, and those appends are answered as failed.
   */
  private groupCommit(): void {
    const covered = this.waiting;
    this.waiting = [];
    const logs = [...this.dirty];
    this.dirty.clear();
    try {
      const started = performance.now();
      this.journal.syncBlocking();
      // One measure per fdatasync, whatever the number of answers it covers (the front's fsync histogram).
      if (covered.length > 0) covered[0]!.reply.syncMs = performance.now() - started;
      for (const owned of logs) owned.log.markDurable(owned.log.logEndOffset);
    } catch (error) {
      this.logger.error(
        { err: error },
        'journal fsync failed: the partitions written since the last good one are cut back to it, and those appends are reported as failed',
      );
      try {
        this.journal.discardUnsynced(error);
      } catch (discardError) {
        this.logger.fatal({ err: discardError }, 'the journal refuses writes until the broker restarts');
      }
      for (const owned of logs) {
        try {
          owned.log.rollBackToDurableEnd(error);
        } catch (rollbackError) {
          this.logger.fatal({ err: rollbackError, topic: owned.assignment.topic, partition: owned.assignment.partition }, 'partition offline');
        }
      }
    }
    for (const pending of covered) {
      failRolledBack(pending);
      pending.send(pending.reply);
    }
    // After the answers, not before: no acknowledgment waits for zeros to be written.
    this.journal.allocateAhead();
  }

  /**
   * The journal sync of `interval` and `os`, on this thread as the group commit's: the answers
   * went out already, so nothing is cut back.
   */
  private backgroundSync(): void {
    const logs = [...this.dirty];
    this.dirty.clear();
    try {
      this.journal.syncBlocking();
      for (const owned of logs) owned.log.markDurable(owned.log.logEndOffset);
    } catch (error) {
      for (const owned of logs) this.dirty.add(owned);
      this.logger.error({ err: error }, 'periodic journal fsync failed');
    }
    this.journal.allocateAhead();
  }
}

/** Marks failed every batch of `pending` whose partition rolled back since it was written. */
function failRolledBack(pending: PendingAnswer): void {
  const { reply, written } = pending;
  for (let i = 0; i < written.length; i++) {
    const batch = written[i];
    if (batch === null || batch === undefined || batch.owned.log.epoch === batch.epoch) continue;
    const failure: WorkerFailure = failureOf(batch.owned.log.lastRollbackCause, 'fsync failed');
    reply.failures[i] = failure;
    reply.baseOffsets[i] = -1;
    written[i] = null;
  }
}

import type { Logger } from '../../logging/index.js';
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

/**
 * When an append may be answered, under `storage.durability.mode`:
 * - `fsync`: after an fsync of every partition it wrote. Group commit: appends that arrive while
 *   an fsync runs wait for the next one, and one fsync per dirty partition covers them all. A
 *   partition whose fsync fails is rolled back to its durable end (PartitionLog explains why), and
 *   every batch written to it since is answered as failed, never acknowledged.
 * - `interval`: at once; dirty partitions are fsynced every `intervalMs`.
 * - `os`: at once; the OS flushes when it likes.
 */
export class Durability {
  /** Appends written but not yet covered by an fsync (fsync mode only). */
  private waiting: PendingAnswer[] = [];
  private readonly dirty = new Set<OwnedPartition>();
  private syncRunning = false;
  private syncScheduled = false;
  private readonly intervalTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly mode: 'fsync' | 'interval' | 'os',
    intervalMs: number,
    private readonly logger: Logger,
  ) {
    if (mode === 'interval') {
      this.intervalTimer = setInterval(() => this.flushDirty(), intervalMs);
      this.intervalTimer.unref();
    }
  }

  /** A partition was written to. */
  written(owned: OwnedPartition): void {
    if (this.mode !== 'os') this.dirty.add(owned);
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

  stop(): void {
    if (this.intervalTimer !== null) clearInterval(this.intervalTimer);
  }

  private scheduleSync(): void {
    if (this.syncRunning || this.syncScheduled) return;
    this.syncScheduled = true;
    // Let every append already queued on the port be written first: one fsync then covers them all.
    setImmediate(() => {
      this.syncScheduled = false;
      void this.groupCommit();
    });
  }

  private async groupCommit(): Promise<void> {
    this.syncRunning = true;
    const covered = this.waiting;
    this.waiting = [];
    const logs = [...this.dirty];
    this.dirty.clear();
    const results = await Promise.allSettled(logs.map((owned) => owned.log.flush()));
    results.forEach((result, i) => {
      if (result.status === 'fulfilled') return;
      const owned = logs[i]!;
      this.logger.error(
        { err: result.reason, topic: owned.assignment.topic, partition: owned.assignment.partition },
        'fsync failed: the partition is cut back to its last durable batch and the appends since are reported as failed',
      );
      try {
        owned.log.rollBackToDurableEnd(result.reason);
      } catch (error) {
        this.logger.fatal({ err: error, topic: owned.assignment.topic, partition: owned.assignment.partition }, 'partition offline');
      }
    });
    for (const pending of covered) {
      failRolledBack(pending);
      pending.send(pending.reply);
    }
    // Appends written while the fsync ran may have been cut off with their partition too.
    for (const pending of this.waiting) failRolledBack(pending);
    this.syncRunning = false;
    if (this.waiting.length > 0) this.scheduleSync();
  }

  private flushDirty(): void {
    const logs = [...this.dirty];
    this.dirty.clear();
    for (const owned of logs) owned.log.flush().catch((error: unknown) => this.logger.error({ err: error }, 'periodic fsync failed'));
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

import type { Logger } from '../../logging/index.js';
import type { CallReply, WorkerFailure } from '../protocol.js';
import type { OwnedPartition } from './owned-partitions.js';

type AppendReply = CallReply<'append'>;

/**
 * When an append may be answered, under `storage.durability.mode`:
 * - `fsync`: after an fsync of every partition it wrote. Group commit: appends that arrive while
 *   an fsync runs wait for the next one, and one fsync per dirty partition covers them all.
 * - `interval`: at once; dirty partitions are fsynced every `intervalMs`.
 * - `os`: at once; the OS flushes when it likes.
 */
export class Durability {
  /** Appends written but not yet covered by an fsync (fsync mode only). */
  private waiting: Array<{ reply: AppendReply; send: (reply: AppendReply) => void }> = [];
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

  /** Sends `reply` once the appends it answers are as durable as the mode promises. */
  answer(reply: AppendReply, send: (reply: AppendReply) => void): void {
    if (this.mode !== 'fsync') {
      send(reply);
      return;
    }
    this.waiting.push({ reply, send });
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
    let failure: WorkerFailure | null = null;
    try {
      await Promise.all(logs.map((owned) => owned.log.flush()));
    } catch (error) {
      failure = { code: 'storage-error', message: `fsync failed: ${(error as Error).message}` };
      this.logger.error({ err: error }, 'fsync failed: appends in this group commit are reported as failed');
    }
    for (const { reply, send } of covered) {
      if (failure !== null) {
        const failed = failure;
        reply.failures = reply.failures.map(() => failed);
        reply.baseOffsets = reply.baseOffsets.map(() => -1);
      }
      send(reply);
    }
    this.syncRunning = false;
    if (this.waiting.length > 0) this.scheduleSync();
  }

  private flushDirty(): void {
    const logs = [...this.dirty];
    this.dirty.clear();
    for (const owned of logs) owned.log.flush().catch((error: unknown) => this.logger.error({ err: error }, 'periodic fsync failed'));
  }
}

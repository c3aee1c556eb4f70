import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import type { StorageConfig } from '../../config/index.js';
import type { Logger } from '../../logging/index.js';
import { LogCleaner } from '../../storage/index.js';
import type { OwnedPartitions } from './owned-partitions.js';

/** Thrown into a cleaning run when the worker closes: the run ends at once, its rewrite left unused. */
class CompactionStopped extends Error {}

/**
 * The broker worker's log cleaner, for the partitions of compacted topics: every
 * `storage.compaction.intervalMs`, one partition after the other, in the background. Between
 * chunks it gives the thread back to appends and reads, and it keeps to
 * `storage.compaction.bytesPerSecond`.
 */
export class Compaction {
  private readonly cleaner = new LogCleaner();
  private readonly timer: NodeJS.Timeout;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Bytes the cleaner may still move in the current second, and when that second began. */
  private allowance: number;
  private windowStart = performance.now();

  constructor(
    private readonly partitions: OwnedPartitions,
    private readonly settings: StorageConfig['compaction'],
    private readonly logger: Logger,
  ) {
    this.allowance = settings.bytesPerSecond;
    this.timer = setInterval(() => this.runOnce(), settings.intervalMs);
    this.timer.unref();
  }

  /** Cleans what needs it, unless a run is still going. */
  runOnce(): void {
    if (this.running !== null || this.stopped) return;
    this.running = this.cleanAll().finally(() => {
      this.running = null;
    });
  }

  /** Stops starting runs and waits for the one going (before the logs are closed). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }

  private async cleanAll(): Promise<void> {
    for (const owned of this.partitions.compacted()) {
      if (this.stopped) return;
      const { topic, partition, compression } = owned.assignment;
      try {
        const report = await this.cleaner.clean(owned.log, Date.now(), {
          tombstoneRetentionMs: this.settings.tombstoneRetentionMs,
          minCompactionLagMs: owned.assignment.minCompactionLagMs ?? 0,
          maxKeys: this.settings.maxKeysPerRun,
          compression,
          pace: (bytes) => this.pace(bytes),
        });
        if (report !== null && report.segments > 0) this.logger.info({ topic, partition, ...report }, 'log compacted');
      } catch (error) {
        if (error instanceof CompactionStopped) return;
        // A log closed or changed under it (a topic deleted), a full disk: tried again at the next run.
        this.logger.warn({ err: error, topic, partition }, 'log compaction failed');
      }
    }
  }

  /** Yields the thread after each chunk, and sleeps out the rest of the second once its bytes are spent; stops a run when the worker closes. */
  private async pace(bytes: number): Promise<void> {
    if (this.stopped) throw new CompactionStopped();
    this.allowance -= bytes;
    if (this.allowance <= 0) {
      const elapsed = performance.now() - this.windowStart;
      if (elapsed < 1000) await sleep(1000 - elapsed, undefined, { ref: false });
      this.windowStart = performance.now();
      this.allowance = this.settings.bytesPerSecond;
      return;
    }
    await nextTurn();
  }
}

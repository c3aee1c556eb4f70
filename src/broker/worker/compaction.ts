import type { StorageConfig } from '../../config/index.js';
import type { Logger } from '../../logging/index.js';
import { CleaningPace, CleaningStopped, LogCleaner } from '../../storage/index.js';
import type { OwnedPartitions } from './owned-partitions.js';

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
  private readonly pace: CleaningPace;

  constructor(
    private readonly partitions: OwnedPartitions,
    private readonly settings: StorageConfig['compaction'],
    private readonly logger: Logger,
  ) {
    this.pace = new CleaningPace(settings.bytesPerSecond);
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
    this.pace.stop();
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
          pace: (bytes) => this.pace.pace(bytes),
        });
        if (report !== null && report.segments > 0) this.logger.info({ topic, partition, ...report }, 'log compacted');
      } catch (error) {
        if (error instanceof CleaningStopped) return;
        // A log closed or changed under it (a topic deleted), a full disk: tried again at the next run.
        this.logger.warn({ err: error, topic, partition }, 'log compaction failed');
      }
    }
  }
}

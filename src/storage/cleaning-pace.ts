import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';

/** Thrown into a cleaning run once its pace is stopped (the store closes): the run ends at once, its rewrite left unused. */
export class CleaningStopped extends Error {}

/**
 * The log cleaner's pace (`storage.compaction.bytesPerSecond`): awaited after each chunk the
 * cleaner reads or writes, it gives the thread back to appends and reads, and sleeps out the rest
 * of the second once the second's bytes are spent.
 */
export class CleaningPace {
  private stopped = false;
  /** Bytes the cleaner may still move in the current second, and when that second began. */
  private allowance: number;
  private windowStart = performance.now();

  constructor(private readonly bytesPerSecond: number) {
    this.allowance = bytesPerSecond;
  }

  /** Ends the run going at its next chunk, and every later one at its first. */
  stop(): void {
    this.stopped = true;
  }

  async pace(bytes: number): Promise<void> {
    if (this.stopped) throw new CleaningStopped();
    this.allowance -= bytes;
    if (this.allowance <= 0) {
      const elapsed = performance.now() - this.windowStart;
      if (elapsed < 1000) await sleep(1000 - elapsed, undefined, { ref: false });
      this.windowStart = performance.now();
      this.allowance = this.bytesPerSecond;
    } else await nextTurn();
    // Stopped while it waited: the run ends before its next write.
    if (this.stopped) throw new CleaningStopped();
  }
}

/** `brokers.restartBackoffMs` and `brokers.restartBackoffMaxMs`. */
export interface RestartPolicy {
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
}

/** A worker that stays up this many times its last backoff (at most STABLE_MAX_MS) is stable: its restarts in a row start again from zero. */
const STABLE_FACTOR = 10;
const STABLE_MAX_MS = 60_000;
/** Restarts in a row, each before the worker became stable, from which it is crash-looping. */
const CRASH_LOOP_IN_A_ROW = 3;
/** ... or restarts within CRASH_LOOP_WINDOW_MS, for a worker that dies just after each stable period. */
const CRASH_LOOP_IN_WINDOW = 10;
const CRASH_LOOP_WINDOW_MS = 60_000;

/**
 * When to restart one broker worker, and whether it is crash-looping. The first restart waits
 * `restartBackoffMs`; each further restart in a row waits twice as long as the one before, up to
 * `restartBackoffMaxMs`. A worker that then stays up for 10 times its last wait (a minute at most)
 * is stable again: its next death starts from `restartBackoffMs`.
 */
export class RestartBackoff {
  private inARow = 0;
  private lastWaitMs = 0;
  private upSince: number | null = null;
  private readonly recent: number[] = [];

  constructor(
    private readonly policy: RestartPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  /** Restarts in a row, the one pending included. */
  get restartsInARow(): number {
    return this.inARow;
  }

  /** The wait before the last (or pending) restart; 0 before any. */
  get lastBackoffMs(): number {
    return this.lastWaitMs;
  }

  /** The worker is up (it answered after opening its partitions). */
  up(): void {
    this.upSince = this.now();
  }

  /** The worker died: returns how long to wait before restarting it. */
  died(): number {
    const now = this.now();
    if (this.stable(now)) this.inARow = 0;
    this.upSince = null;
    const { restartBackoffMs: base, restartBackoffMaxMs: max } = this.policy;
    this.lastWaitMs = Math.min(Math.max(base, max), base * 2 ** Math.min(this.inARow, 30));
    this.inARow++;
    this.recent.push(now);
    while (this.recent.length > 0 && this.recent[0]! <= now - CRASH_LOOP_WINDOW_MS) this.recent.shift();
    return this.lastWaitMs;
  }

  /**
   * Whether the worker is crash-looping: restarted CRASH_LOOP_IN_A_ROW times in a row without
   * becoming stable in between, or CRASH_LOOP_IN_WINDOW times within a minute.
   */
  get crashLooping(): boolean {
    const now = this.now();
    if (this.inARow >= CRASH_LOOP_IN_A_ROW && !this.stable(now)) return true;
    return this.recent.filter((at) => at > now - CRASH_LOOP_WINDOW_MS).length >= CRASH_LOOP_IN_WINDOW;
  }

  /** Whether the worker is up and has been for its stable period. */
  private stable(now: number): boolean {
    return this.upSince !== null && now - this.upSince >= Math.min(STABLE_MAX_MS, STABLE_FACTOR * this.lastWaitMs);
  }
}

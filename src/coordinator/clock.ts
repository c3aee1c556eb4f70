/** A timer the clock handed out; only the clock that made it can clear it. */
export type TimerHandle = unknown;

/**
 * Time and timers, injected so that tests of session timeouts, heartbeats and long polls run on
 * fake time instead of sleeping.
 */
export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** A background chore: the system clock's intervals do not keep the process alive. */
  setInterval(callback: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
  /** Runs `callback` once the current event-loop turn is over (work of one turn is batched so). */
  setImmediate(callback: () => void): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (callback, ms) => setInterval(callback, ms).unref(),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
  setImmediate: (callback) => void setImmediate(callback),
};

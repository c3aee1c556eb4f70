import { HEARTBEAT_EOL } from '../../protocol/stomp/index.js';

/** The longest delay a Node timer keeps; a longer one fires after 1 ms instead. */
const TIMER_MAX_MS = 2 ** 31 - 1;

/**
 * STOMP heart-beats both ways, once CONNECT has negotiated them: an EOL whenever the server has
 * been silent for its interval (counted from the last frame or beat it wrote, CONNECTED first),
 * and a disconnect once the client has been silent for its interval times the grace factor
 * (counted from the last byte received, or from CONNECTED). A connection whose reads are paused
 * (backpressure) is not silent.
 *
 * Writes and reads only stamp a time; each direction has one timer that, when it fires, re-arms
 * itself for whatever is left of the interval since the last stamp, so a busy connection costs one
 * timer per interval, not one per frame.
 */
export class Heartbeats {
  private outgoingMs = 0;
  private silenceLimitMs = 0;
  private lastSent = 0;
  private lastReceived = 0;
  private beatTimer: NodeJS.Timeout | undefined;
  private silenceTimer: NodeJS.Timeout | undefined;
  private silenceConfirmation: NodeJS.Immediate | undefined;
  /** Bumped by start() and stop(): a callback of an earlier run does nothing. */
  private run = 0;

  constructor(
    private readonly write: (bytes: Buffer) => void,
    private readonly isReadingPaused: () => boolean,
    private readonly onSilence: (silentForMs: number) => void,
  ) {}

  start(outgoingMs: number, incomingMs: number, grace: number): void {
    this.stop();
    const now = performance.now();
    if (outgoingMs > 0) {
      this.outgoingMs = outgoingMs;
      this.lastSent = now;
      this.armBeat(outgoingMs);
    }
    if (incomingMs > 0) {
      this.silenceLimitMs = incomingMs * grace;
      this.lastReceived = now;
      this.armSilenceCheck(this.silenceLimitMs);
    }
  }

  /** The server wrote something: its silence starts again. */
  sent(): void {
    this.lastSent = performance.now();
  }

  /** The client's bytes arrived: its silence starts again. */
  received(): void {
    this.lastReceived = performance.now();
  }

  stop(): void {
    this.run++;
    clearTimeout(this.beatTimer);
    clearTimeout(this.silenceTimer);
    clearImmediate(this.silenceConfirmation);
    this.beatTimer = undefined;
    this.silenceTimer = undefined;
    this.silenceConfirmation = undefined;
  }

  private armBeat(delayMs: number): void {
    const run = this.run;
    this.beatTimer = setTimeout(() => this.beatDue(run), timerDelay(delayMs));
    this.beatTimer.unref();
  }

  private beatDue(run: number): void {
    if (run !== this.run) return;
    const silentFor = performance.now() - this.lastSent;
    if (silentFor < this.outgoingMs) {
      // Something was written since the timer was armed (or the timer fired early).
      this.armBeat(this.outgoingMs - silentFor);
      return;
    }
    this.write(HEARTBEAT_EOL);
    // Writing may have closed the session (and stopped the heart-beats).
    if (run !== this.run) return;
    this.lastSent = performance.now();
    this.armBeat(this.outgoingMs);
  }

  private armSilenceCheck(delayMs: number): void {
    const run = this.run;
    this.silenceTimer = setTimeout(() => this.checkSilence(run, false), timerDelay(delayMs));
    this.silenceTimer.unref();
  }

  /**
   * A silence long enough is confirmed once more after the event loop's next poll for I/O
   * (setImmediate): timers run before sockets are read, so bytes already waiting in the socket
   * (after reading resumes, or after the loop was held up) must count before the client is cut off.
   */
  private checkSilence(run: number, confirming: boolean): void {
    if (run !== this.run) return;
    this.silenceConfirmation = undefined;
    const now = performance.now();
    if (this.isReadingPaused()) {
      // The client may well be sending: it is the server that is not reading.
      this.lastReceived = now;
      this.armSilenceCheck(this.silenceLimitMs);
      return;
    }
    const silentFor = now - this.lastReceived;
    if (silentFor < this.silenceLimitMs) {
      this.armSilenceCheck(this.silenceLimitMs - silentFor);
      return;
    }
    if (!confirming) {
      this.silenceConfirmation = setImmediate(() => this.checkSilence(run, true));
      this.silenceConfirmation.unref();
      return;
    }
    this.stop();
    this.onSilence(Math.round(silentFor));
  }
}

/** A whole number of milliseconds a timer can wait, at least the time asked for. */
function timerDelay(ms: number): number {
  return Math.min(Math.max(1, Math.ceil(ms)), TIMER_MAX_MS);
}

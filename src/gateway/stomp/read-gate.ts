import type { Transport } from '../transport/index.js';

/** Why the server is not reading from a connection. */
export type ReadPause = 'storage' | 'backlog';

/**
 * Whether a session reads from its connection: the one owner of its transport's paused state.
 * Two reasons, independent of each other, hold reading: `storage`, while the broker holds more
 * unstored bytes than allowed (the gateway pauses every connection until it catches up), and
 * `backlog`, while this connection holds more unsent bytes than its high-water mark (its client
 * does not read what it is sent: answers to what it writes would pile up in memory). Reading
 * resumes when neither holds. Once the connection is closing the gate stays open, so that the
 * peer's end of the stream is seen and the socket can close.
 */
export class ReadGate {
  private storage = false;
  private backlog = false;
  private closing = false;

  constructor(private readonly transport: Pick<Transport, 'pauseReading' | 'resumeReading'>) {}

  get paused(): boolean {
    return this.storage || this.backlog;
  }

  /** The reasons reading is paused for, none when it is not. */
  reasons(): ReadPause[] {
    const reasons: ReadPause[] = [];
    if (this.storage) reasons.push('storage');
    if (this.backlog) reasons.push('backlog');
    return reasons;
  }

  has(reason: ReadPause): boolean {
    return reason === 'storage' ? this.storage : this.backlog;
  }

  /** Paused for the connection's backlog (a field read: checked after every settled publish). */
  get backlogged(): boolean {
    return this.backlog;
  }

  pause(reason: ReadPause): void {
    if (this.closing || this.has(reason)) return;
    const wasPaused = this.paused;
    if (reason === 'storage') this.storage = true;
    else this.backlog = true;
    if (!wasPaused) this.transport.pauseReading();
  }

  resume(reason: ReadPause): void {
    if (!this.has(reason)) return;
    if (reason === 'storage') this.storage = false;
    else this.backlog = false;
    if (!this.paused) this.transport.resumeReading();
  }

  /** The connection is closing: reading goes on (what arrives is dropped) until the peer's end, and stays on. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    const wasPaused = this.paused;
    this.storage = false;
    this.backlog = false;
    if (wasPaused) this.transport.resumeReading();
  }
}

import type { Transport } from '../transport/index.js';

/** Why the server is not reading from a connection. */
export type ReadPause = 'storage' | 'backlog' | 'authentication' | 'quota';
const READ_PAUSES: readonly ReadPause[] = ['storage', 'backlog', 'authentication', 'quota'];

/**
 * Whether a session reads from its connection: the one owner of its transport's paused state.
 * Independent reasons hold reading: `storage`, while the broker holds more unstored bytes than
 * allowed (the gateway pauses every connection until it catches up); `backlog`, while this
 * connection holds more unsent bytes than its high-water mark (its client does not read what it
 * is sent: answers to what it writes would pile up in memory); `authentication`, while its
 * CONNECT's credentials are being checked (frames after it wait, unread); `quota`, while its
 * principal publishes faster than its quota allows (auth.quotas). Reading resumes when
 * none holds. Once the connection is closing the gate stays open, so that the peer's end of the
 * stream is seen and the socket can close.
 */
export class ReadGate {
  private readonly holding = new Set<ReadPause>();
  private closing = false;

  constructor(private readonly transport: Pick<Transport, 'pauseReading' | 'resumeReading'>) {}

  get paused(): boolean {
    return this.holding.size > 0;
  }

  /** The reasons reading is paused for, none when it is not (in a fixed order). */
  reasons(): ReadPause[] {
    return READ_PAUSES.filter((reason) => this.holding.has(reason));
  }

  has(reason: ReadPause): boolean {
    return this.holding.has(reason);
  }

  /** Paused for the connection's backlog (checked after every settled publish). */
  get backlogged(): boolean {
    return this.holding.has('backlog');
  }

  pause(reason: ReadPause): void {
    if (this.closing || this.holding.has(reason)) return;
    const wasPaused = this.paused;
    this.holding.add(reason);
    if (!wasPaused) this.transport.pauseReading();
  }

  resume(reason: ReadPause): void {
    if (!this.holding.delete(reason)) return;
    if (!this.paused) this.transport.resumeReading();
  }

  /** The connection is closing: reading goes on (what arrives is dropped) until the peer's end, and stays on. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    const wasPaused = this.paused;
    this.holding.clear();
    if (wasPaused) this.transport.resumeReading();
  }
}

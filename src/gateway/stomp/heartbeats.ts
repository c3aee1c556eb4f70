import { HEARTBEAT_EOL } from '../../protocol/stomp/index.js';

/**
 * STOMP heart-beats both ways, once CONNECT has negotiated them: an EOL when the server has sent
 * nothing else for its interval, and a check that the client was heard from within its interval
 * times the grace factor. A connection whose reads are paused (backpressure) is not silent.
 */
export class Heartbeats {
  private sentSinceBeat = false;
  private receivedSinceCheck = true;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly write: (bytes: Buffer) => void,
    private readonly isReadingPaused: () => boolean,
    private readonly onSilence: (silentForMs: number) => void,
  ) {}

  start(outgoingMs: number, incomingMs: number, grace: number): void {
    if (outgoingMs > 0) {
      const timer = setInterval(() => {
        if (!this.sentSinceBeat) this.write(HEARTBEAT_EOL);
        this.sentSinceBeat = false;
      }, outgoingMs);
      timer.unref();
      this.timers.push(timer);
    }
    if (incomingMs > 0) {
      const limit = Math.ceil(incomingMs * grace);
      this.receivedSinceCheck = true;
      const timer = setInterval(() => {
        if (!this.receivedSinceCheck && !this.isReadingPaused()) {
          this.stop();
          this.onSilence(limit);
          return;
        }
        this.receivedSinceCheck = false;
      }, limit);
      timer.unref();
      this.timers.push(timer);
    }
  }

  sent(): void {
    this.sentSinceBeat = true;
  }

  received(): void {
    this.receivedSinceCheck = true;
  }

  stop(): void {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
  }
}

/**
 * What a STOMP session needs from a connection, whichever the wire: bytes in, frames out,
 * backpressure both ways, and a close that lets queued frames (an ERROR above all) leave first.
 */
export interface Transport {
  readonly kind: 'websocket' | 'tcp';
  readonly remoteAddress: string;
  /** The common name of a verified TLS client certificate; null without one. */
  readonly certificateSubject: string | null;
  send(bytes: Buffer): void;
  /** Bytes accepted by send() that have not left for the peer yet (the session's backpressure reads this). */
  readonly bufferedBytes: number;
  pauseReading(): void;
  resumeReading(): void;
  /** Holds writes until uncork(), so that a burst of frames leaves in one system call. */
  cork(): void;
  uncork(): void;
  /** Closes once queued bytes are written. */
  /** `code`: the WebSocket close code (1000 by default; 1001 when the server is going away). */
  end(code?: number): void;
  /** Closes at once. */
  destroy(): void;
}

export interface TransportEvents {
  onData(chunk: Buffer): void;
  /** What was buffered has been written out: after bufferedBytes passed the socket's own mark, one event once it is back to none. */
  onDrain(): void;
  onClose(): void;
  /** The transport refuses what the peer sent (a WebSocket text message that is not UTF-8): answer with an ERROR, then close with `closeCode`. */
  onRefused(closeCode: number, reason: string): void;
}

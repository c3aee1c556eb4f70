import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { verifiedCertificateSubject } from './peer-certificate.js';
import type { Transport, TransportEvents } from './transport.js';

/** WebSocket's close code for a message larger than the receiver takes. */
export const WEBSOCKET_MESSAGE_TOO_BIG = 1009;

/** STOMP over WebSocket: one STOMP frame (or several, or part of one) per WebSocket message. */
export class WebSocketTransport implements Transport {
  readonly kind = 'websocket';
  readonly remoteAddress: string;
  readonly certificateSubject: string | null;

  constructor(
    private readonly socket: WebSocket,
    private readonly rawSocket: Socket,
    events: TransportEvents,
  ) {
    this.remoteAddress = `${rawSocket.remoteAddress}:${rawSocket.remotePort}`;
    this.certificateSubject = verifiedCertificateSubject(rawSocket);
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      // The server skips ws's own UTF-8 check (which closes with 1007 and no word to the client), so that the client gets an ERROR first.
      if (!isBinary && !isUtf8(bytes))
        events.onRefused(1007, 'a WebSocket text message that is not valid UTF-8: send bodies that are not UTF-8 in binary messages');
      else events.onData(bytes);
    });
    socket.on('close', () => events.onClose());
    this.refuseOversizedMessages(socket, events);
    // ws has already closed (or been kept from closing, above) with the code the error calls for:
    // terminating here would cut its close frame off (1006 at the client).
    socket.on('error', () => {});
    // ws emits no 'drain' of its own: it writes each frame straight to the raw socket (no
    // compression here, nor Blob bodies, so its sender never queues), whose 'drain' is the one.
    rawSocket.on('drain', () => events.onDrain());
  }

  /**
   * A message over ws's maxPayload: ws stops reading and closes with 1009 at once, before any
   * word to the client. Its close is held back here so that the session can answer what it owes
   * and send its ERROR first; the session then ends the connection with 1009 itself (or its
   * closing grace drops it). ws reads the message's length from its header, so nothing of the
   * message itself is buffered meanwhile.
   */
  private refuseOversizedMessages(socket: WebSocket, events: TransportEvents): void {
    const close = socket.close.bind(socket);
    let refused = false;
    socket.close = (code?: number, reason?: string | Buffer) => {
      if (code !== WEBSOCKET_MESSAGE_TOO_BIG || refused) return close(code, reason);
      refused = true;
      events.onRefused(WEBSOCKET_MESSAGE_TOO_BIG, 'a WebSocket message larger than the server takes');
    };
  }

  send(bytes: Buffer): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    // Text frames are what browsers' STOMP clients expect; bodies that are not UTF-8 go binary.
    this.socket.send(bytes, { binary: !isUtf8(bytes) });
  }

  /** ws counts both what its sender holds and what the raw socket has not written yet. */
  get bufferedBytes(): number {
    return this.socket.bufferedAmount;
  }

  pauseReading(): void {
    this.socket.pause();
  }

  cork(): void {
    this.rawSocket.cork();
  }

  uncork(): void {
    this.rawSocket.uncork();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  end(code = 1000): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(code);
  }

  destroy(): void {
    this.socket.terminate();
  }
}

import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { verifiedCertificateSubject } from './peer-certificate.js';
import type { Transport, TransportEvents } from './transport.js';

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
    // ws has already closed with the code the error calls for (1009 for a message over its maxPayload):
    // terminating here would cut its close frame off (1006 at the client).
    socket.on('error', () => {});
    // ws emits no 'drain' of its own: it writes each frame straight to the raw socket (no
    // compression here, nor Blob bodies, so its sender never queues), whose 'drain' is the one.
    rawSocket.on('drain', () => events.onDrain());
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

import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Transport, TransportEvents } from './transport.js';

/** STOMP over WebSocket: one STOMP frame (or several, or part of one) per WebSocket message. */
export class WebSocketTransport implements Transport {
  readonly kind = 'websocket';
  readonly remoteAddress: string;

  constructor(
    private readonly socket: WebSocket,
    private readonly rawSocket: Socket,
    events: TransportEvents,
  ) {
    this.remoteAddress = `${rawSocket.remoteAddress}:${rawSocket.remotePort}`;
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      events.onData(Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data));
    });
    socket.on('close', () => events.onClose());
    socket.on('error', () => socket.terminate());
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

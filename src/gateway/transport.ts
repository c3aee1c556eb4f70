import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/**
 * What a STOMP session needs from a connection, whichever the wire: bytes in, frames out,
 * backpressure both ways, and a close that lets queued frames (an ERROR above all) leave first.
 */
export interface Transport {
  readonly kind: 'websocket' | 'tcp';
  readonly remoteAddress: string;
  send(bytes: Buffer): void;
  /** Bytes accepted by send() that the peer has not taken yet. */
  readonly bufferedBytes: number;
  pauseReading(): void;
  resumeReading(): void;
  /** Holds writes until uncork(), so that a burst of frames leaves in one system call. */
  cork(): void;
  uncork(): void;
  /** Closes once queued bytes are written. */
  end(): void;
  /** Closes at once. */
  destroy(): void;
}

export interface TransportEvents {
  onData(chunk: Buffer): void;
  onDrain(): void;
  onClose(): void;
}

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
    rawSocket.on('drain', () => events.onDrain());
  }

  send(bytes: Buffer): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    // Text frames are what browsers' STOMP clients expect; bodies that are not UTF-8 go binary.
    this.socket.send(bytes, { binary: !isUtf8(bytes) });
  }

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

  end(): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(1000);
  }

  destroy(): void {
    this.socket.terminate();
  }
}

export class TcpTransport implements Transport {
  readonly kind = 'tcp';
  readonly remoteAddress: string;

  constructor(
    private readonly socket: Socket,
    events: TransportEvents,
  ) {
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => events.onData(chunk));
    socket.on('drain', () => events.onDrain());
    socket.on('close', () => events.onClose());
    socket.on('error', () => socket.destroy());
  }

  send(bytes: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  pauseReading(): void {
    this.socket.pause();
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

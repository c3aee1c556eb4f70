import type { Socket } from 'node:net';
import { verifiedCertificateSubject } from './peer-certificate.js';
import type { Transport, TransportEvents } from './transport.js';

/** STOMP over plain TCP: a byte stream the session's parser frames. */
export class TcpTransport implements Transport {
  readonly kind = 'tcp';
  readonly remoteAddress: string;
  readonly certificateSubject: string | null;

  constructor(
    private readonly socket: Socket,
    events: TransportEvents,
  ) {
    this.remoteAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    this.certificateSubject = verifiedCertificateSubject(socket);
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

import net from 'node:net';
import { Client, type IFrame, type IMessage, type StompHeaders } from '@stomp/stompjs';
import { WebSocket } from 'ws';
import { encodeFrame, FrameParser, type Frame, type HeaderInput } from '../../src/protocol/stomp/index.js';

export async function waitFor<T>(check: () => T | undefined | false, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A connected @stomp/stompjs client over WebSocket, the reference client. */
export async function connectStompJs(url: string, connectHeaders: StompHeaders = {}): Promise<Client & { errors: IFrame[] }> {
  const errors: IFrame[] = [];
  const client = Object.assign(
    new Client({
      webSocketFactory: () => new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      connectHeaders,
    }),
    { errors },
  );
  client.onStompError = (frame) => errors.push(frame);
  await new Promise<void>((resolve, reject) => {
    client.onConnect = () => resolve();
    client.onWebSocketError = (event) => reject(new Error(`websocket error: ${String(event)}`));
    client.activate();
  });
  return client;
}

/** Sends with a receipt and waits for it. */
export function publishWithReceipt(client: Client, destination: string, body: string | Uint8Array, headers: StompHeaders = {}): Promise<void> {
  const receipt = `r-${Math.random().toString(36).slice(2)}`;
  return new Promise((resolve) => {
    client.watchForReceipt(receipt, () => resolve());
    if (typeof body === 'string') client.publish({ destination, body, headers: { ...headers, receipt } });
    else client.publish({ destination, binaryBody: body, headers: { ...headers, receipt, 'content-type': 'application/octet-stream' } });
  });
}

export function collect(client: Client, destination: string, headers: StompHeaders = {}): IMessage[] {
  const messages: IMessage[] = [];
  client.subscribe(destination, (message) => messages.push(message), headers);
  return messages;
}

export function canonical(messageID: string, key: string | null, message: unknown, timestamp = Date.now()): string {
  return JSON.stringify({ messageID, key, message, timestamp });
}

/** A raw STOMP-over-TCP peer, for sending what no well-behaved client would. */
export class RawStompClient {
  readonly frames: Frame[] = [];
  closed = false;
  readonly received: Buffer[] = [];
  private constructor(readonly socket: net.Socket) {
    const parser = new FrameParser((frame) => this.frames.push({ ...frame, body: Buffer.from(frame.body) }), {
      maxFrameBytes: 64 * 1024 * 1024,
      maxHeaders: 1000,
      maxHeaderBytes: 1024 * 1024,
    });
    socket.on('data', (chunk) => {
      this.received.push(chunk);
      parser.push(chunk);
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawStompClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new RawStompClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connects and waits for CONNECTED. */
  static async session(port: number, headers: HeaderInput = {}): Promise<RawStompClient> {
    const client = await RawStompClient.connect(port);
    client.send('CONNECT', { 'accept-version': '1.2', host: 'localhost', ...headers });
    await client.next('CONNECTED');
    return client;
  }

  send(command: string, headers: HeaderInput = {}, body?: string | Buffer): void {
    this.socket.write(encodeFrame(command, headers, body));
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  async next(command: string, timeoutMs = 5000): Promise<Frame> {
    return waitFor(() => this.frames.find((f) => f.command === command), timeoutMs, `a ${command} frame`);
  }

  async closedByServer(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, 'the server to close the connection');
  }

  close(): void {
    this.socket.destroy();
  }
}

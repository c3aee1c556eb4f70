import net from 'node:net';
import tls from 'node:tls';
import { Client, Versions, type IFrame, type IMessage, type StompHeaders, type StompSubscription } from '@stomp/stompjs';
import { vi } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import { encodeFrame, FrameParser, type Frame, type HeaderInput } from '../../src/protocol/stomp/index.js';

/**
 * How long a condition wait may take before the test fails. Generous on purpose: the machine may
 * be a loaded 2-core box running other suites; a wait ends as soon as its condition holds, so a
 * generous limit costs nothing when things work.
 */
export const WAIT = { timeout: 15_000, interval: 10 } as const;

/**
 * Waits (with vi.waitFor) until `check` returns (or resolves to) something other than undefined,
 * null or false, and resolves to it. The thin layer over vi.waitFor is for the failure message, which names what
 * was awaited (vi.waitFor alone reports "Timed out in waitFor!"), and for the timeout above. When
 * the condition is an assertion, call vi.waitFor(() => expect(...), WAIT) directly instead: its
 * failure message is then the last failed assertion.
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number = WAIT.timeout,
): Promise<T> {
  const started = Date.now();
  let last: unknown;
  const settled = (value: T | undefined | null | false): T => {
    last = value;
    if (value === undefined || value === null || value === false) throw new Error('not yet');
    return value;
  };
  try {
    return await vi.waitFor(
      () => {
        const value = check();
        // An asynchronous check is retried until its promise gives a value (vi.waitFor retries a rejected one).
        return value instanceof Promise ? value.then(settled) : settled(value);
      },
      { timeout: timeoutMs, interval: WAIT.interval },
    );
  } catch (error) {
    if ((error as Error).message !== 'not yet') throw error;
    throw new Error(`timed out after ${Date.now() - started} ms waiting for ${what} (last check gave ${String(last)})`);
  }
}

export type StompJsClient = Client & {
  errors: IFrame[];
  /** The CONNECTED frame. */
  connectedFrame: IFrame;
  /** The WebSocket under the client, for the negotiated subprotocol. */
  socket: WebSocket;
};

export interface StompJsOptions {
  /** STOMP versions offered, highest first: both the WebSocket subprotocols and accept-version. */
  versions?: string[];
  /** Options for the WebSocket (`ca`, `cert`, `key` for wss). */
  webSocket?: ClientOptions;
}

/** A connected @stomp/stompjs client over WebSocket, the reference client. */
export async function connectStompJs(url: string, connectHeaders: StompHeaders = {}, options: StompJsOptions = {}): Promise<StompJsClient> {
  const errors: IFrame[] = [];
  const versions = new Versions(options.versions ?? ['1.2', '1.1', '1.0']);
  let socket: WebSocket | undefined;
  const client = new Client({
    webSocketFactory: () => (socket = new WebSocket(url, versions.protocolVersions(), options.webSocket)),
    stompVersions: versions,
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    connectHeaders,
  });
  client.onStompError = (frame) => errors.push(frame);
  const connectedFrame = await new Promise<IFrame>((resolve, reject) => {
    client.onConnect = (frame) => resolve(frame);
    client.onWebSocketError = (event) => reject(new Error(`websocket error: ${String(event)}`));
    client.activate();
  });
  return Object.assign(client, { errors, connectedFrame, socket: socket! });
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

/** Subscribes, collecting what arrives. */
export function collect(client: Client, destination: string, headers: StompHeaders = {}): IMessage[] {
  const messages: IMessage[] = [];
  client.subscribe(destination, (message) => messages.push(message), headers);
  return messages;
}

/** Subscribes with a receipt and resolves once the server has confirmed the subscription (its RECEIPT). */
export async function subscribeConfirmed(
  client: Client,
  destination: string,
  onMessage: (message: IMessage) => void,
  headers: StompHeaders = {},
): Promise<StompSubscription> {
  const receipt = `s-${Math.random().toString(36).slice(2)}`;
  const confirmed = new Promise<void>((resolve) => client.watchForReceipt(receipt, () => resolve()));
  const subscription = client.subscribe(destination, onMessage, { ...headers, receipt });
  await confirmed;
  return subscription;
}

/** Subscribes with a receipt and resolves, with what will arrive, once the server has confirmed the subscription. */
export async function subscribed(client: Client, destination: string, headers: StompHeaders = {}): Promise<IMessage[]> {
  const messages: IMessage[] = [];
  await subscribeConfirmed(client, destination, (message) => messages.push(message), headers);
  return messages;
}

export function canonical(messageID: string, key: string | null, message: unknown, timestamp = Date.now()): string {
  return JSON.stringify({ messageID, key, message, timestamp });
}

/** A raw STOMP-over-TCP peer, for sending what no well-behaved client would. */
export class RawStompClient {
  /** Every frame received, in order. */
  readonly frames: Frame[] = [];
  closed = false;
  readonly received: Buffer[] = [];
  /** Frames received, by command. */
  private readonly byCommand = new Map<string, Frame[]>();
  /** For each command, how many of its frames `next` has handed out (or promised to a waiting call). */
  private readonly cursors = new Map<string, number>();

  private constructor(readonly socket: net.Socket) {
    const parser = new FrameParser(
      (frame) => {
        const copy = { ...frame, body: Buffer.from(frame.body) };
        this.frames.push(copy);
        const list = this.byCommand.get(frame.command) ?? [];
        list.push(copy);
        this.byCommand.set(frame.command, list);
      },
      { maxFrameBytes: 64 * 1024 * 1024, maxHeaders: 1000, maxHeaderBytes: 1024 * 1024 },
    );
    socket.on('data', (chunk) => {
      this.received.push(chunk);
      parser.push(chunk);
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  /** Over TLS: `options` carries the CA to trust and the client certificate, if any. */
  static connectTls(port: number, options: tls.ConnectionOptions = {}): Promise<RawStompClient> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ port, host: '127.0.0.1', ...options }, () => resolve(new RawStompClient(socket)));
      socket.once('error', reject);
    });
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

  /** The frames of one command received so far. */
  all(command: string): readonly Frame[] {
    return this.byCommand.get(command) ?? [];
  }

  /**
   * The next frame of `command` that no earlier call of `next` returned, waiting for it if it has
   * not arrived. The place is taken when the call is made, so concurrent calls get successive frames.
   */
  next(command: string, timeoutMs: number = WAIT.timeout): Promise<Frame> {
    const index = this.cursors.get(command) ?? 0;
    this.cursors.set(command, index + 1);
    return until(`${command} frame number ${index + 1}`, () => this.byCommand.get(command)?.[index], timeoutMs);
  }

  /** Waits for the next RECEIPT and checks that it answers `receiptId`. */
  async receipt(receiptId: string, timeoutMs: number = WAIT.timeout): Promise<Frame> {
    const frame = await this.next('RECEIPT', timeoutMs);
    if (frame.headers['receipt-id'] !== receiptId) {
      throw new Error(`expected the RECEIPT for "${receiptId}", got one for "${frame.headers['receipt-id']}"`);
    }
    return frame;
  }

  async closedByServer(timeoutMs: number = WAIT.timeout): Promise<void> {
    await until('the server to close the connection', () => this.closed, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface StoredMessage {
  messageId: string;
  partition: number;
  offset: number;
  body: Buffer;
}

/**
 * Reads every message a topic holds through a tail subscription from the earliest offset, over
 * STOMP on `stompPort`: as many as GET /v1/topics/<topic> on `httpPort` says it holds.
 */
export async function readTopic(server: { httpPort: number; stompPort: number }, topic: string, timeoutMs: number = WAIT.timeout): Promise<StoredMessage[]> {
  const base = `http://127.0.0.1:${server.httpPort}`;
  const answer = await fetch(`${base}/v1/topics/${encodeURIComponent(topic)}`);
  if (answer.status !== 200) throw new Error(`GET /v1/topics/${topic} answered ${answer.status}`);
  const { partitions } = (await answer.json()) as { partitions: Array<{ logStartOffset: number; logEndOffset: number }> };
  const total = partitions.reduce((sum, p) => sum + p.logEndOffset - p.logStartOffset, 0);
  const reader = await RawStompClient.session(server.stompPort);
  reader.send('SUBSCRIBE', { id: 'read', destination: `/topic/${topic}`, from: 'earliest', receipt: 'reading' });
  await reader.receipt('reading');
  await until(`${total} messages of ${topic}`, () => reader.all('MESSAGE').length >= total, timeoutMs);
  reader.close();
  return reader.all('MESSAGE').map((f) => ({
    messageId: f.headers['message-id'] ?? '',
    partition: Number(f.headers.partition),
    offset: Number(f.headers.offset),
    body: f.body,
  }));
}

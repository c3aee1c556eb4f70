import { asRillError, RillError, stompErrorHeaders } from '../../errors/index.js';
import { encodeFrame, FrameParser, StompProtocolError, type EscapeMode, type Frame, type HeaderInput } from '../../protocol/stomp/index.js';
import type { Producer, PublishRequest, ReceiptCountdown } from '../publishing/index.js';
import type { Transport, TransportEvents } from '../transport/index.js';
import type { CommandContext, SessionServices } from './command-context.js';
import { COMMAND_HANDLERS } from './commands/index.js';
import type { DeliveryChannel } from './delivery-channel.js';
import { Heartbeats } from './heartbeats.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import { Transactions } from './transactions.js';

type SessionState = 'awaiting-connect' | 'connected' | 'closing' | 'closed';

export interface ConnectionView {
  session: string;
  remote: string;
  transport: 'websocket' | 'tcp';
  state: SessionState;
  /** The ids of its subscriptions. */
  subscriptions: string[];
  /** Bytes written to the socket that the client has not taken yet. */
  bufferedBytes: number;
}

/** Stop writing deliveries to a socket that already holds this much unsent data. */
const SOCKET_HIGH_WATER_BYTES = 1024 * 1024;

let sessionCounter = 0;

/**
 * One STOMP connection, whatever its transport: parses the bytes that arrive, runs each frame
 * through its command handler, keeps heart-beats both ways, and turns any client mistake into an
 * ERROR frame that is flushed before the connection closes. Its state is its own: handlers see a
 * CommandContext, subscriptions a DeliveryChannel, the publish path a Producer.
 */
export class StompSession implements TransportEvents {
  readonly id = `${(++sessionCounter).toString(36)}-${Date.now().toString(36)}`;
  private state: SessionState = 'awaiting-connect';
  private version: EscapeMode = '1.2';
  private readonly parser: FrameParser;
  private readonly subscriptions = new SubscriptionRegistry();
  private readonly transactions: Transactions;
  private readonly heartbeats: Heartbeats;
  private readonly closeHandlers = new Set<(clean: boolean) => void>();
  private readonly connectTimer: NodeJS.Timeout;
  /** Publishes handed to the broker and not yet answered. */
  private inflightPublishes = 0;
  /** Set by DISCONNECT: the receipt to send once every publish is answered. */
  private disconnectReceipt: string | null | undefined = undefined;
  private messageCounter = 0;
  /** Set while the gateway has stopped reading from this connection (backpressure): not silence. */
  private readingPaused = false;
  private readonly context: CommandContext;
  private readonly channel: DeliveryChannel;
  readonly producer: Producer;

  constructor(
    private readonly transport: Transport,
    private readonly services: SessionServices,
    private readonly onClosed: (session: StompSession) => void,
  ) {
    const { stomp } = services;
    this.transactions = new Transactions(stomp.maxTransactionFrames);
    this.parser = new FrameParser((frame) => this.handleFrame(frame), {
      maxFrameBytes: stomp.maxFrameBytes,
      maxHeaders: stomp.maxHeaders,
      maxHeaderBytes: stomp.maxHeaderBytes,
    });
    this.heartbeats = new Heartbeats(
      (bytes) => this.transport.send(bytes),
      () => this.readingPaused,
      (silentForMs) => {
        this.services.logger.info({ session: this.id, remote: this.transport.remoteAddress, silentForMs }, 'client missed its heart-beats; disconnecting');
        this.transport.destroy();
        this.onClose();
      },
    );
    this.connectTimer = setTimeout(() => {
      if (this.state === 'awaiting-connect') this.fail(new RillError('timeout', `no CONNECT frame within ${stomp.connectTimeoutMs} ms`));
    }, stomp.connectTimeoutMs);
    this.connectTimer.unref();
    this.channel = this.deliveryChannel();
    this.producer = this.producerFace();
    this.context = this.commandContext();
  }

  /** What an operator (or a test) may see of the connection. */
  describe(): ConnectionView {
    return {
      session: this.id,
      remote: this.transport.remoteAddress,
      transport: this.transport.kind,
      state: this.state,
      subscriptions: this.subscriptions.ids(),
      bufferedBytes: this.transport.bufferedBytes,
    };
  }

  // ---- the transport's events ----

  onData(chunk: Buffer): void {
    this.heartbeats.received();
    if (this.state === 'closing' || this.state === 'closed') return;
    try {
      this.parser.push(chunk);
    } catch (error) {
      if (error instanceof StompProtocolError) this.fail(new RillError('invalid-frame', error.message), error.receipt);
      else {
        this.services.logger.error({ err: error, session: this.id }, 'internal error while handling a frame');
        this.fail(new RillError('internal', 'internal server error'));
      }
    }
  }

  onDrain(): void {
    this.subscriptions.resumeAll();
  }

  onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimers();
    // After DISCONNECT the members leave cleanly; a dropped connection leaves them to time out.
    const clean = this.disconnectReceipt !== undefined;
    this.subscriptions.closeAll(clean);
    for (const release of this.closeHandlers) release(clean);
    this.closeHandlers.clear();
    this.transactions.clear();
    this.onClosed(this);
  }

  // ---- the gateway's controls ----

  pauseReading(): void {
    this.readingPaused = true;
    this.transport.pauseReading();
  }

  resumeReading(): void {
    this.readingPaused = false;
    this.transport.resumeReading();
  }

  /** Refuses the connection before any frame: an ERROR, then close. */
  refuse(error: RillError): void {
    this.fail(error);
  }

  end(): void {
    this.transport.end();
  }

  destroy(): void {
    this.transport.destroy();
  }

  // ---- frames ----

  private handleFrame(frame: Frame): void {
    if (this.state !== 'connected' && this.state !== 'awaiting-connect') return;
    if (this.state === 'awaiting-connect' && frame.command !== 'CONNECT' && frame.command !== 'STOMP') {
      this.fail(new RillError('unexpected-frame', `expected CONNECT or STOMP as the first frame, got ${frame.command}`), frame.headers.receipt);
      return;
    }
    const handler = COMMAND_HANDLERS[frame.command];
    if (handler === undefined) {
      this.fail(new RillError('unknown-command', `unknown command ${frame.command}`), frame.headers.receipt);
      return;
    }
    try {
      handler(this.context, frame);
    } catch (error) {
      const failure = asRillError(error);
      if (failure.code === 'internal')
        this.services.logger.error({ err: error, session: this.id, command: frame.command }, 'internal error while handling a frame');
      this.fail(failure, frame.headers.receipt);
    }
  }

  private sendFrame(command: string, headers: HeaderInput, body?: Buffer | string): void {
    if (this.state === 'closed') return;
    this.heartbeats.sent();
    this.transport.send(encodeFrame(command, headers, body, this.version));
  }

  private sendBytes(frame: Buffer): void {
    if (this.state === 'closed') return;
    this.heartbeats.sent();
    this.transport.send(frame);
  }

  private sendReceipt(receipt: string | undefined | null): void {
    if (receipt !== undefined && receipt !== null) this.sendFrame('RECEIPT', { 'receipt-id': receipt });
  }

  /** Sends an ERROR frame and closes the connection once it is written. */
  private fail(error: RillError, receipt?: string | null, details?: { body?: string; headers?: HeaderInput }): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.services.logger.debug(
      { session: this.id, remote: this.transport.remoteAddress, code: error.code, reason: error.message },
      'closing session with ERROR',
    );
    const headers: HeaderInput = { ...details?.headers, ...stompErrorHeaders(error), message: error.message.slice(0, 1000), 'content-type': 'text/plain' };
    if (receipt !== undefined && receipt !== null) headers['receipt-id'] = receipt;
    this.sendFrame('ERROR', headers, details?.body ?? error.message);
    this.state = 'closing';
    this.stopTimers();
    this.transport.end();
  }

  private connected(version: EscapeMode, headers: HeaderInput, outgoingMs: number, incomingMs: number): void {
    this.sendFrame('CONNECTED', headers);
    this.state = 'connected';
    this.version = version;
    this.parser.escapeMode = version;
    clearTimeout(this.connectTimer);
    this.heartbeats.start(outgoingMs, incomingMs, this.services.stomp.heartbeat.grace);
  }

  private publish(request: PublishRequest, receipt: string | null, countdown: ReceiptCountdown | null): void {
    this.inflightPublishes++;
    this.services.publisher.publish(this.producer, request, receipt, countdown);
  }

  private publishSettled(): void {
    this.inflightPublishes--;
    if (this.inflightPublishes === 0 && this.disconnectReceipt !== undefined) this.finishDisconnect();
  }

  private disconnect(receipt: string | null): void {
    this.disconnectReceipt = receipt;
    this.transactions.clear();
    if (this.inflightPublishes === 0) this.finishDisconnect();
  }

  private finishDisconnect(): void {
    if (this.state !== 'connected') return;
    this.sendReceipt(this.disconnectReceipt);
    this.state = 'closing';
    this.transport.end();
  }

  private stopTimers(): void {
    clearTimeout(this.connectTimer);
    this.heartbeats.stop();
  }

  // ---- the faces others see ----

  private commandContext(): CommandContext {
    const session = this;
    return {
      sessionId: this.id,
      get version() {
        return session.version;
      },
      get isConnected() {
        return session.state === 'connected';
      },
      services: this.services,
      subscriptions: this.subscriptions,
      transactions: this.transactions,
      channel: this.channel,
      receipt: (receipt) => this.sendReceipt(receipt),
      fail: (error, receipt, details) => this.fail(error, receipt, details),
      connected: (version, headers, outgoingMs, incomingMs) => this.connected(version, headers, outgoingMs, incomingMs),
      publish: (request, receipt, countdown) => this.publish(request, receipt, countdown),
      disconnect: (receipt) => this.disconnect(receipt),
      nextMessageId: () => `${this.id}-${++this.messageCounter}`,
      onClose: (release) => {
        this.closeHandlers.add(release);
        return () => this.closeHandlers.delete(release);
      },
    };
  }

  private deliveryChannel(): DeliveryChannel {
    const session = this;
    return {
      sessionId: this.id,
      get version() {
        return session.version;
      },
      get open() {
        return session.state === 'connected';
      },
      get writable() {
        return session.state === 'connected' && session.transport.bufferedBytes <= SOCKET_HIGH_WATER_BYTES;
      },
      sendFrame: (command, headers, body) => this.sendFrame(command, headers, body),
      sendBytes: (frame) => this.sendBytes(frame),
      cork: () => this.transport.cork(),
      uncork: () => this.transport.uncork(),
    };
  }

  private producerFace(): Producer {
    const session = this;
    return {
      get open() {
        return session.state === 'connected';
      },
      acknowledgments: (topic) => this.subscriptions.acknowledgments(topic),
      receipt: (receipt) => this.sendReceipt(receipt),
      fail: (error, receipt) => this.fail(error, receipt),
      settled: () => this.publishSettled(),
    };
  }
}

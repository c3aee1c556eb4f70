import type { RillConfig } from '../config/index.js';
import type { Broker, RoundRobin } from '../broker/index.js';
import type { GroupCoordinator } from '../coordinator/index.js';
import type { Logger } from '../logging/index.js';
import {
  encodeFrame,
  FrameParser,
  HEARTBEAT_EOL,
  StompProtocolError,
  type EscapeMode,
  type Frame,
  type HeaderInput,
} from '../protocol/stomp/index.js';
import { COMMAND_HANDLERS } from './commands/index.js';
import type { AcknowledgmentSubscription } from './subscriptions/acknowledgments.js';
import type { ReplySubscription } from './subscriptions/replies.js';
import type { Subscription } from './subscriptions/subscription.js';
import type { Transport, TransportEvents } from './transport/index.js';

export interface GatewayContext {
  config: RillConfig;
  broker: Broker;
  coordinator: GroupCoordinator;
  roundRobin: RoundRobin;
  logger: Logger;
  serverName: string;
  /** Called once when a session has closed. */
  onSessionClosed(session: StompSession): void;
}

type SessionState = 'awaiting-connect' | 'connected' | 'closing' | 'closed';

let sessionCounter = 0;

/**
 * One STOMP connection, whatever its transport: parses the bytes that arrive, runs each frame
 * through its command handler, keeps heart-beats both ways, and turns any client mistake into
 * an ERROR frame that is flushed before the connection closes.
 */
export class StompSession implements TransportEvents {
  readonly id = `${(++sessionCounter).toString(36)}-${Date.now().toString(36)}`;
  transport!: Transport;
  state: SessionState = 'awaiting-connect';
  version: EscapeMode = '1.2';
  readonly subscriptions = new Map<string, Subscription>();
  readonly subscriptionsByNumber = new Map<number, Subscription>();
  readonly transactions = new Map<string, Frame[]>();
  /** This session's subscriptions to its own publish acknowledgments, by topic. */
  readonly acknowledgmentSubscriptions = new Map<string, AcknowledgmentSubscription>();
  /** Reply subscriptions by destination (`/user/...`). */
  readonly replySubscriptions = new Map<string, ReplySubscription>();
  /** Group members registered over this connection, each with what to do when it closes. */
  readonly members = new Map<string, () => void>();
  /** Publishes handed to the broker and not yet answered. */
  inflightPublishes = 0;
  /** Set by DISCONNECT: the receipt to send once every publish is answered. */
  disconnectReceipt: string | null | undefined = undefined;
  readonly parser: FrameParser;
  private messageCounter = 0;
  private subscriptionCounter = 0;
  private receivedSinceCheck = true;
  /** Set while the gateway has stopped reading from this connection (backpressure): not silence. */
  readingPaused = false;
  private sentSinceBeat = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(readonly context: GatewayContext) {
    const { stomp } = context.config;
    this.parser = new FrameParser((frame) => this.handleFrame(frame), {
      maxFrameBytes: stomp.maxFrameBytes,
      maxHeaders: stomp.maxHeaders,
      maxHeaderBytes: stomp.maxHeaderBytes,
    });
    const connectTimer = setTimeout(() => {
      if (this.state === 'awaiting-connect') this.fail(`no CONNECT frame within ${stomp.connectTimeoutMs} ms`);
    }, stomp.connectTimeoutMs);
    connectTimer.unref();
    this.timers.push(connectTimer);
  }

  get logger(): Logger {
    return this.context.logger;
  }

  attach(transport: Transport): void {
    this.transport = transport;
  }

  onData(chunk: Buffer): void {
    this.receivedSinceCheck = true;
    if (this.state === 'closing' || this.state === 'closed') return;
    try {
      this.parser.push(chunk);
    } catch (error) {
      if (error instanceof StompProtocolError) this.fail(error.message, error.receipt);
      else {
        this.logger.error({ err: error, session: this.id }, 'internal error while handling a frame');
        this.fail('internal server error');
      }
    }
  }

  onDrain(): void {
    for (const subscription of this.subscriptions.values()) subscription.resume();
  }

  onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const timer of this.timers) clearTimeout(timer);
    // After DISCONNECT the members leave cleanly; a dropped connection leaves them to time out.
    const clean = this.disconnectReceipt !== undefined;
    for (const subscription of this.subscriptions.values()) subscription.close(clean);
    this.subscriptions.clear();
    for (const [name, release] of this.members) {
      if (clean) this.context.coordinator.leave(name);
      else release();
    }
    this.members.clear();
    this.replySubscriptions.clear();
    this.subscriptionsByNumber.clear();
    this.acknowledgmentSubscriptions.clear();
    this.transactions.clear();
    this.context.onSessionClosed(this);
  }

  private handleFrame(frame: Frame): void {
    if (this.state !== 'connected' && this.state !== 'awaiting-connect') return;
    if (this.state === 'awaiting-connect' && frame.command !== 'CONNECT' && frame.command !== 'STOMP') {
      this.fail(`expected CONNECT or STOMP as the first frame, got ${frame.command}`, frame.headers.receipt);
      return;
    }
    const handler = COMMAND_HANDLERS[frame.command];
    if (handler === undefined) {
      this.fail(`unknown command ${frame.command}`, frame.headers.receipt);
      return;
    }
    handler(this, frame);
  }

  /** The negotiated version is known: headers are read and written with its escaping from now. */
  connected(version: EscapeMode, outgoingMs: number, incomingMs: number): void {
    this.state = 'connected';
    this.version = version;
    this.parser.escapeMode = version;
    if (outgoingMs > 0) {
      const timer = setInterval(() => {
        if (!this.sentSinceBeat) this.transport.send(HEARTBEAT_EOL);
        this.sentSinceBeat = false;
      }, outgoingMs);
      timer.unref();
      this.timers.push(timer);
    }
    if (incomingMs > 0) {
      const limit = Math.ceil(incomingMs * this.context.config.stomp.heartbeat.grace);
      this.receivedSinceCheck = true;
      const timer = setInterval(() => {
        if (!this.receivedSinceCheck && !this.readingPaused) {
          this.logger.info({ session: this.id, remote: this.transport.remoteAddress, silentForMs: limit }, 'client missed its heart-beats; disconnecting');
          this.transport.destroy();
          this.onClose();
          return;
        }
        this.receivedSinceCheck = false;
      }, limit);
      timer.unref();
      this.timers.push(timer);
    }
  }

  sendFrame(command: string, headers: HeaderInput, body?: Buffer | string): void {
    if (this.state === 'closed') return;
    this.sentSinceBeat = true;
    this.transport.send(encodeFrame(command, headers, body, this.version));
  }

  /** Sends a frame already encoded for this session's version. */
  sendBytes(frame: Buffer): void {
    if (this.state === 'closed') return;
    this.sentSinceBeat = true;
    this.transport.send(frame);
  }

  sendReceipt(receipt: string | undefined | null): void {
    if (receipt !== undefined && receipt !== null) this.sendFrame('RECEIPT', { 'receipt-id': receipt });
  }

  /** Sends an ERROR frame and closes the connection once it is written. */
  fail(message: string, receipt?: string | null, details?: string, extraHeaders?: HeaderInput): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.logger.debug({ session: this.id, remote: this.transport.remoteAddress, reason: message }, 'closing session with ERROR');
    const headers: HeaderInput = { ...extraHeaders, message: message.slice(0, 1000), 'content-type': 'text/plain' };
    if (receipt !== undefined && receipt !== null) headers['receipt-id'] = receipt;
    this.sendFrame('ERROR', headers, details ?? message);
    this.state = 'closing';
    for (const timer of this.timers) clearTimeout(timer);
    this.transport.end();
  }

  nextMessageId(): string {
    return `${this.id}-${++this.messageCounter}`;
  }

  nextSubscriptionNumber(): number {
    return ++this.subscriptionCounter;
  }

  /** Called as publishes settle: finishes a DISCONNECT that was waiting for them. */
  publishSettled(): void {
    this.inflightPublishes--;
    if (this.inflightPublishes === 0 && this.disconnectReceipt !== undefined) this.finishDisconnect();
  }

  finishDisconnect(): void {
    if (this.state !== 'connected') return;
    this.sendReceipt(this.disconnectReceipt);
    this.state = 'closing';
    this.transport.end();
  }

  get broker(): Broker {
    return this.context.broker;
  }

  get roundRobin(): RoundRobin {
    return this.context.roundRobin;
  }
}

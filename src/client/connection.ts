import { Client, type IFrame, type IMessage } from '@stomp/stompjs';
import { clientClosed, connectionLost, errorFromHeaders, type RillError } from './errors.js';
import type { ConnectionState, Settings } from './options.js';

/** A connection attempt that gets no CONNECTED in this time is dropped and tried again. */
const CONNECT_TIMEOUT_MS = 10_000;
/** disconnect() waits this long for the broker's answer to DISCONNECT (every publish stored), then closes the socket itself. */
const DISCONNECT_TIMEOUT_MS = 10_000;

/** How a frame sent with a receipt is answered: its RECEIPT, or an ERROR naming it (or the connection dropping first). */
export interface Answer {
  receipt?(): void;
  error?(error: RillError): void;
}

/** A part of the client that holds state across connections (publishes, subscriptions, requests): it hears of every change. */
export interface ConnectionUser {
  /** Connection number `epoch` is up: subscribe, and send again what the last one lost. */
  connected(epoch: number): void;
  /** The connection dropped: what was sent on it and not answered will not be answered. */
  disconnected(reason: RillError): void;
  /** The client stopped for good: fail whatever waits. */
  closed(reason: RillError): void;
}

/**
 * One stompjs client and the connections it makes in turn, numbered (`epoch`) so that nothing
 * belonging to one connection (an ACK id, a subscription id) is ever sent on a later one. ERROR
 * frames are routed to the frame they name (by its receipt), and every user hears of connections
 * coming and going, to subscribe and resend after a reconnect.
 */
export class Connection {
  private readonly stomp: Client;
  private readonly users = new Set<ConnectionUser>();
  private readonly answers = new Map<string, Answer>();
  private readonly waiting: { resolve: () => void; reject: (error: RillError) => void }[] = [];
  /** The first connection: a client connects once, and reconnects by itself after that. */
  private opened: Promise<void> | null = null;
  private opening: { resolve: () => void; reject: (error: RillError) => void } | null = null;
  private nextId = 0;
  private epochNumber = 0;
  /** The current socket got its CONNECTED (stompjs' own flag stays up while DISCONNECT awaits its receipt). */
  private socketUp = false;
  /** The ERROR the broker sent before closing the connection: why it closed. */
  private lastError: RillError | null = null;
  private currentState: ConnectionState = 'connecting';
  /** Why the client stopped, once it has. */
  private stoppedBy: RillError | null = null;
  private sessionId: string | null = null;

  constructor(private readonly settings: Settings) {
    this.stomp = new Client({
      webSocketFactory: settings.createSocket,
      connectHeaders: settings.connectHeaders,
      reconnectDelay: settings.reconnectDelayMs,
      heartbeatIncoming: settings.heartbeatMs,
      heartbeatOutgoing: settings.heartbeatMs,
      connectionTimeout: CONNECT_TIMEOUT_MS,
      debug: settings.debug ?? (() => {}),
    });
    this.stomp.onConnect = (frame) => this.onConnect(frame);
    this.stomp.onStompError = (frame) => this.onError(frame);
    this.stomp.onWebSocketClose = () => this.onClose();
    this.stomp.onUnhandledReceipt = (frame) => this.onReceipt(frame);
    // A MESSAGE of a subscription just ended, still on its way: nobody wants it.
    this.stomp.onUnhandledMessage = () => {};
  }

  /** The number of the current (or last) connection; 0 before the first. */
  get epoch(): number {
    return this.epochNumber;
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** The broker's id for the current (or last) connection: what `DELETE /v1/connections/<session>` names. */
  get session(): string | null {
    return this.sessionId;
  }

  /** Frames can be sent now. */
  get connected(): boolean {
    return this.currentState === 'connected' && this.socketUp;
  }

  /** Resolves at the first CONNECTED; rejects with what stopped the first attempt (unreachable broker, refused credentials). */
  open(): Promise<void> {
    if (this.stoppedBy !== null) return Promise.reject(this.stoppedBy);
    this.opened ??= new Promise((resolve, reject) => {
      this.opening = { resolve, reject };
      this.stomp.activate();
    });
    return this.opened;
  }

  /**
   * Disconnects: the broker answers DISCONNECT once every message published before it is stored,
   * so the publishes in flight get their acknowledgments first; what still waits then fails.
   */
  async close(): Promise<void> {
    if (this.currentState === 'closed') return;
    this.currentState = 'closed';
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, DISCONNECT_TIMEOUT_MS);
    });
    await Promise.race([this.stomp.deactivate(), late.then(() => this.stomp.deactivate({ force: true }))]);
    clearTimeout(timer);
    this.stop(clientClosed());
  }

  /** Registers a user; the function returned forgets it. */
  use(user: ConnectionUser): () => void {
    this.users.add(user);
    return () => this.users.delete(user);
  }

  /** Resolves once connected (at once when it is); rejects if the client stops first. */
  whenConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.currentState === 'closed') return Promise.reject(this.stoppedBy ?? clientClosed());
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** SENDs on the current connection; false, sending nothing, when there is none. With `answer`, the frame asks for a receipt. */
  send(destination: string, headers: Record<string, string>, body: string, answer?: Answer): boolean {
    if (!this.connected) return false;
    this.stomp.publish({ destination, body, headers: { ...headers, ...this.receiptFor(answer) } });
    return true;
  }

  /** SUBSCRIBEs on the current connection: the subscription's id, or null (nothing sent) when there is no connection. */
  subscribe(destination: string, headers: Record<string, string>, onMessage: (frame: IMessage) => void, answer?: Answer): string | null {
    if (!this.connected) return null;
    const id = `sub-${++this.nextId}`;
    this.stomp.subscribe(destination, onMessage, { ...headers, id, ...this.receiptFor(answer) });
    return id;
  }

  unsubscribe(id: string, answer?: Answer): boolean {
    if (!this.connected) return false;
    this.stomp.unsubscribe(id, this.receiptFor(answer));
    return true;
  }

  /**
   * ACKs (or NACKs) a MESSAGE, only on the connection it came over: an ACK id is the connection's
   * own numbering, and sent on a later connection it would name another message, or none (an
   * ERROR that closes the connection). False when that connection is gone.
   */
  settle(epoch: number, frame: IMessage, accept: boolean): boolean {
    if (epoch !== this.epochNumber || !this.connected) return false;
    if (accept) frame.ack();
    else frame.nack();
    return true;
  }

  /** The credentials for the next connections; the current one keeps its own. */
  setPasscode(passcode: string): void {
    this.stomp.connectHeaders = { ...this.stomp.connectHeaders, passcode };
  }

  private receiptFor(answer: Answer | undefined): { receipt?: string } {
    if (answer === undefined) return {};
    const receipt = `r-${++this.nextId}`;
    this.answers.set(receipt, answer);
    return { receipt };
  }

  private onConnect(frame: IFrame): void {
    if (this.currentState === 'closed') return;
    this.epochNumber++;
    this.socketUp = true;
    this.lastError = null;
    this.sessionId = frame.headers.session ?? '';
    this.currentState = 'connected';
    this.opening?.resolve();
    this.opening = null;
    for (const user of [...this.users]) user.connected(this.epochNumber);
    for (const waiter of this.waiting.splice(0)) waiter.resolve();
    this.settings.onConnected({ session: this.sessionId, reconnected: this.epochNumber > 1 });
  }

  private onReceipt(frame: IFrame): void {
    const id = frame.headers['receipt-id'];
    const answer = id === undefined ? undefined : this.answers.get(id);
    if (answer === undefined) return;
    this.answers.delete(id!);
    answer.receipt?.();
  }

  private onError(frame: IFrame): void {
    const error = errorFromHeaders(frame.headers, frame.body);
    const id = frame.headers['receipt-id'];
    const answer = id === undefined ? undefined : this.answers.get(id);
    if (answer !== undefined) {
      this.answers.delete(id!);
      answer.error?.(error);
    }
    // The broker closes the connection after any ERROR: this is the reason for the close to come.
    this.lastError = error;
    // Refused at CONNECT for good (bad credentials, an expired token): trying again cannot help.
    if (!this.socketUp && !error.retriable && this.currentState !== 'closed') this.stop(error);
  }

  private onClose(): void {
    const wasUp = this.socketUp;
    this.socketUp = false;
    const reason = this.lastError ?? connectionLost(wasUp ? 'while in use' : 'before the broker accepted it');
    this.lastError = null;
    // Frames sent on this connection and not answered never will be: their senders send again, or fail.
    const lost = [...this.answers.values()];
    this.answers.clear();
    for (const answer of lost) answer.error?.(connectionLost('before the broker answered'));
    if (this.currentState === 'closed') return;
    if (this.epochNumber === 0) return this.stop(reason);
    // A reconnect attempt that failed: stompjs tries again, nobody needs to hear it twice.
    if (!wasUp) return;
    this.settings.onDisconnected(reason);
    if (this.settings.reconnectDelayMs === 0) return this.stop(reason);
    this.currentState = 'reconnecting';
    for (const user of [...this.users]) user.disconnected(reason);
  }

  /** Stops for good: no more reconnecting, and everything waiting fails with `reason`. */
  private stop(reason: RillError): void {
    if (this.stoppedBy !== null) return;
    this.stoppedBy = reason;
    this.currentState = 'closed';
    void this.stomp.deactivate();
    this.opening?.reject(reason);
    this.opening = null;
    for (const waiter of this.waiting.splice(0)) waiter.reject(reason);
    for (const user of [...this.users]) user.closed(reason);
  }
}

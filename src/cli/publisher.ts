import type { Client, IFrame } from '@stomp/stompjs';
import type { BrokerSession } from './command-line.js';
import { BrokerRefusedError, BrokerUnreachableError } from './failures.js';
import { stompClient, topicDestination } from './stomp-client.js';

/** A message is sent this many times at most (the first time, then after reconnects or retriable errors). */
const MAX_ATTEMPTS = 5;
/** A publisher that lost the broker gives up on what it has not delivered after this long without it. */
const GIVE_UP_AFTER_MS = 30_000;
/** Errors no resend and no later message can get past: the publisher stops at once. */
const FATAL_CODES = new Set(['unauthenticated', 'forbidden', 'unknown-topic', 'invalid-destination']);
/** Failed messages are named on stderr up to this many; after that only counted. */
const FAILURES_SHOWN = 20;

export interface OutgoingMessage {
  /** The messageID in the body: the broker's deduplication recognises a resend by it. */
  messageID: string;
  body: string;
  headers: Record<string, string>;
}

interface InFlight {
  message: OutgoingMessage;
  attempts: number;
}

export interface PublishOutcome {
  stored: number;
  /** The bytes of the bodies stored. */
  storedBytes: number;
  failed: number;
  /** Why the publisher stopped before the end (the broker refused the connection, or went away), if it did. */
  stoppedBy: Error | null;
}

/**
 * Publishes canonical JSON messages to a topic with a receipt each, `window` of them awaiting their
 * receipt at once. A message counts as stored when its RECEIPT comes. When the connection drops or
 * the broker answers with a retriable ERROR, it connects again and sends what had no receipt
 * again, under the same messageID, so the broker stores each once; a message refused for good (an
 * ERROR naming its receipt) counts as failed and the others go on.
 */
export class WindowedPublisher {
  private readonly client: Client;
  private readonly inFlight = new Map<number, InFlight>();
  private nextReceipt = 0;
  private waiters: (() => void)[] = [];
  private connections = 0;
  private giveUp: NodeJS.Timeout | undefined;
  private connected: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private stored = 0;
  private storedBytes = 0;
  private failed = 0;
  private stoppedBy: Error | null = null;
  /** Set once close() disconnects: the socket closing then is the end, not a lost connection. */
  private closing = false;

  constructor(
    private readonly session: BrokerSession,
    private readonly topic: string,
    private readonly window: number,
    /** The command, for the lines on stderr. */
    private readonly name: string,
    /** Called whenever a message is settled (stored or failed), for a progress bar. */
    private readonly onSettled: (settled: number) => void = () => {},
  ) {
    this.client = stompClient(session, { reconnect: true });
    this.client.onConnect = () => this.onConnect();
    this.client.onUnhandledReceipt = (frame) => this.onReceipt(frame);
    this.client.onStompError = (frame) => this.onError(frame);
    this.client.onWebSocketClose = () => this.onClose();
  }

  /** Connects; rejects with what stopped the first connection (an unreachable broker, refused credentials). */
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.connected = { resolve, reject };
      this.client.activate();
    });
  }

  /**
   * Sends a message once fewer than `window` await their receipt (while disconnected it waits for
   * the reconnect). Resolves to false when the publisher has stopped: nothing more can be sent.
   */
  async send(message: OutgoingMessage): Promise<boolean> {
    while (this.inFlight.size >= this.window && this.stoppedBy === null) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.stoppedBy !== null) return false;
    const receipt = this.nextReceipt++;
    const entry = { message, attempts: 0 };
    this.inFlight.set(receipt, entry);
    if (this.client.connected) this.transmit(receipt, entry);
    return true;
  }

  /** Waits for every receipt (or for the publisher to give up on them), then disconnects. */
  async close(): Promise<PublishOutcome> {
    while (this.inFlight.size > 0 && this.stoppedBy === null) await new Promise<void>((resolve) => this.waiters.push(resolve));
    clearTimeout(this.giveUp);
    this.closing = true;
    await this.client.deactivate();
    return { stored: this.stored, storedBytes: this.storedBytes, failed: this.failed, stoppedBy: this.stoppedBy };
  }

  private transmit(receipt: number, entry: InFlight): void {
    entry.attempts++;
    this.client.publish({
      destination: topicDestination(this.topic),
      body: entry.message.body,
      headers: { ...entry.message.headers, 'content-type': 'application/json', receipt: String(receipt) },
    });
  }

  private onConnect(): void {
    this.connections++;
    clearTimeout(this.giveUp);
    this.giveUp = undefined;
    if (this.connections === 1) {
      this.connected?.resolve();
      this.connected = null;
    }
    // Everything without a receipt is sent (again), in the order it was first sent.
    for (const [receipt, entry] of this.inFlight) {
      if (entry.attempts >= MAX_ATTEMPTS) this.fail(receipt, entry, `no receipt after ${entry.attempts} attempts`);
      else this.transmit(receipt, entry);
    }
  }

  private onReceipt(frame: IFrame): void {
    const receipt = Number(frame.headers['receipt-id']);
    const entry = this.inFlight.get(receipt);
    if (entry === undefined) return;
    this.inFlight.delete(receipt);
    this.stored++;
    this.storedBytes += Buffer.byteLength(entry.message.body);
    this.settled();
  }

  private onError(frame: IFrame): void {
    const code = frame.headers.code ?? 'error';
    const detail = frame.headers.message ?? 'error from the broker';
    if (this.connections === 0 || FATAL_CODES.has(code)) return this.stop(new BrokerRefusedError(code, detail, null));
    // An ERROR about the connection (the broker shutting down) names no message: all are sent again after the reconnect.
    const receiptId = frame.headers['receipt-id'];
    if (receiptId === undefined) return;
    const receipt = Number(receiptId);
    const entry = this.inFlight.get(receipt);
    if (entry === undefined) return;
    if (frame.headers.retriable === 'true' && entry.attempts < MAX_ATTEMPTS) return;
    this.fail(receipt, entry, `${code}: ${detail}`);
  }

  private onClose(): void {
    if (this.stoppedBy !== null || this.closing) return;
    if (this.connections === 0) return this.stop(new BrokerUnreachableError(this.session.address.shown));
    if (this.giveUp !== undefined) return;
    process.stderr.write(`${this.name}: lost the connection to ${this.session.address.shown}; reconnecting to send what has no receipt again\n`);
    this.giveUp = setTimeout(
      () => this.stop(new BrokerUnreachableError(this.session.address.shown, `gone for ${GIVE_UP_AFTER_MS / 1000} s with messages unconfirmed`)),
      GIVE_UP_AFTER_MS,
    );
  }

  private fail(receipt: number, entry: InFlight, reason: string): void {
    this.inFlight.delete(receipt);
    this.failed++;
    if (this.failed <= FAILURES_SHOWN) process.stderr.write(`${this.name}: message ${entry.message.messageID} failed: ${reason}\n`);
    else if (this.failed === FAILURES_SHOWN + 1) process.stderr.write(`${this.name}: more messages failed; the summary counts them\n`);
    this.settled();
  }

  /** Gives up: what awaits a receipt counts as failed, and nothing more is sent. */
  private stop(reason: Error): void {
    if (this.stoppedBy !== null) return;
    this.stoppedBy = reason;
    clearTimeout(this.giveUp);
    this.failed += this.inFlight.size;
    this.inFlight.clear();
    this.connected?.reject(reason);
    this.connected = null;
    void this.client.deactivate();
    this.settled();
  }

  private settled(): void {
    this.onSettled(this.stored + this.failed);
    const waiting = this.waiters;
    this.waiters = [];
    for (const wake of waiting) wake();
  }
}

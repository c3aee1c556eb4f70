import type { IMessage } from '@stomp/stompjs';
import type { Connection, ConnectionUser } from './connection.js';
import { acknowledgmentDestination, checkTopic, publishDestination } from './destinations.js';
import { connectionLost, invalidAnswer, invalidArgument, RillError } from './errors.js';
import { randomId } from './random-id.js';
import type { Settings } from './options.js';
import { parseAcknowledgment, parseJson } from './wire.js';

export interface PublishOptions {
  /** Picks the partition (one key, one partition, in order); none spreads messages over the partitions. */
  key?: string | null;
  /** Headers stored and delivered with the message (`ttl`, `expires`, `delay`, `deliver-at`, `priority` mean what docs/protocol.md says). */
  headers?: Record<string, string>;
  /** Its own messageID (default: a fresh UUID). Publishing again under the same one within the topic's deduplication window stores nothing new. */
  messageID?: string;
  /** Stores it in this partition, whatever the key says. */
  partition?: number;
}

/** Where the broker stored a message, from its acknowledgment. */
export interface PublishResult {
  topic: string;
  partition: number;
  offset: number;
  messageID: string;
  timestamp: number;
  /** The message was stored before (a resend after a lost acknowledgment, or a messageID used again): partition and offset are the first copy's. */
  duplicate: boolean;
}

/** Headers the client sets itself, or that would make the broker read the body as raw rather than as the canonical JSON. */
const RESERVED_HEADERS = new Set(['destination', 'receipt', 'content-type', 'content-length', 'transaction', 'key', 'message-id', 'timestamp', 'partition']);

interface Outgoing {
  /** Its place in `outgoing`: the topic and the messageID. */
  id: string;
  topic: string;
  messageID: string;
  body: string;
  headers: Record<string, string>;
  attempts: number;
  /** The connection it was last sent on; null while it awaits sending again after a retriable failure. */
  sentOn: number | null;
  lastError: RillError | null;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  resolve: (result: PublishResult) => void;
  reject: (error: RillError) => void;
}

/**
 * Publishes canonical JSON messages and settles each from the broker's acknowledgment on
 * `/topic/acknowledgment/<topic>` (one subscription per topic and connection), matched by
 * messageID. Whatever is not acknowledged when the connection drops, or fails retriably, is sent
 * again under the same messageID, so the broker's deduplication stores it exactly once. At most
 * `maxInFlight` publishes are outstanding; publish() waits for room beyond that.
 */
export class Producer implements ConnectionUser {
  /** Unsettled publishes by topic and messageID, in the order they were first published: resent in that order. */
  private readonly outgoing = new Map<string, Outgoing>();
  /** Per topic, the connection whose acknowledgment subscription is up. */
  private readonly listening = new Map<string, number>();
  private roomWaiters: (() => void)[] = [];
  private closedBy: RillError | null = null;

  constructor(
    private readonly connection: Connection,
    private readonly settings: Settings,
  ) {
    connection.use(this);
  }

  async publish(topic: string, value: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    checkTopic(topic);
    const headers = headersOf(options);
    const messageID = options.messageID ?? randomId();
    if (typeof messageID !== 'string' || messageID.length === 0) throw invalidArgument('messageID must be a non-empty string');
    const body = canonicalBody(messageID, options.key ?? null, value);
    while (this.outgoing.size >= this.settings.maxInFlight && this.closedBy === null) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    if (this.closedBy !== null) throw this.closedBy;
    const id = `${topic}\n${messageID}`;
    if (this.outgoing.has(id)) throw invalidArgument(`message ${messageID} is being published to ${topic} already: await that publish`);
    return new Promise<PublishResult>((resolve, reject) => {
      const entry: Outgoing = { id, topic, messageID, body, headers, attempts: 0, sentOn: null, lastError: null, retryTimer: undefined, resolve, reject };
      this.outgoing.set(id, entry);
      this.transmit(entry);
    });
  }

  connected(): void {
    for (const entry of this.outgoing.values()) this.transmit(entry);
  }

  /** Nothing to do: each SEND's answer fails as the connection drops (see refused), and connected() sends again. */
  disconnected(): void {}

  closed(reason: RillError): void {
    this.closedBy = reason;
    for (const entry of [...this.outgoing.values()]) this.settle(entry, reason);
    this.wake();
  }

  /** Sends (again) when there is a connection it was not sent on yet; gives up after maxPublishAttempts. */
  private transmit(entry: Outgoing): void {
    const epoch = this.connection.epoch;
    if (this.outgoing.get(entry.id) !== entry || !this.connection.connected || entry.sentOn === epoch) return;
    if (entry.attempts >= this.settings.maxPublishAttempts) {
      const last = entry.lastError ?? connectionLost(`before the broker acknowledged message ${entry.messageID}`);
      this.settle(entry, new RillError(last.code, `gave up after ${entry.attempts} attempts: ${last.message}`, last.retriable));
      return;
    }
    this.listenForAcknowledgments(entry.topic);
    entry.attempts++;
    entry.sentOn = epoch;
    // The receipt is there for the ERROR to name this message if the broker refuses the frame itself (too big a frame, say).
    this.connection.send(publishDestination(entry.topic), { ...entry.headers, 'content-type': 'application/json' }, entry.body, {
      error: (error) => this.refused(entry, error),
    });
  }

  private listenForAcknowledgments(topic: string): void {
    const epoch = this.connection.epoch;
    if (this.listening.get(topic) === epoch) return;
    this.listening.set(topic, epoch);
    this.connection.subscribe(acknowledgmentDestination(topic), {}, (frame) => this.onAcknowledgment(frame), {
      error: (error) => {
        // Refused (no right to publish there, an invalid topic name): none of the topic's messages can get through.
        if (error.retriable) return;
        for (const entry of [...this.outgoing.values()]) if (entry.topic === topic) this.settle(entry, error);
      },
    });
  }

  /** An ERROR naming the SEND: the broker closes the connection after it, so a retriable one is sent again after the reconnect. */
  private refused(entry: Outgoing, error: RillError): void {
    if (this.outgoing.get(entry.id) !== entry) return;
    entry.lastError = error;
    if (!error.retriable) this.settle(entry, error);
  }

  private onAcknowledgment(frame: IMessage): void {
    const ack = parseAcknowledgment(parseJson(frame.body));
    if (ack === null) {
      this.settings.onError(invalidAnswer(`acknowledgment ${frame.body.slice(0, 200)}`));
      return;
    }
    // A FAILED acknowledgment without a messageID is for a body the broker could not read: not one of ours.
    if (ack.messageID === null) return;
    const entry = this.outgoing.get(`${ack.topic}\n${ack.messageID}`);
    if (entry === undefined) return;
    if (ack.status === 'ACK') {
      const { topic, partition, offset, messageID, timestamp, duplicate } = ack;
      this.settle(entry, { topic, partition, offset, messageID, timestamp, duplicate });
      return;
    }
    entry.lastError = ack.error;
    if (!ack.error.retriable) return this.settle(entry, ack.error);
    // A broker worker restarting answers resends retriably until it is back: wait longer each time.
    entry.sentOn = null;
    clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => this.transmit(entry), this.settings.retryDelayMs * entry.attempts);
  }

  private settle(entry: Outgoing, outcome: PublishResult | RillError): void {
    if (this.outgoing.get(entry.id) !== entry) return;
    this.outgoing.delete(entry.id);
    clearTimeout(entry.retryTimer);
    if (outcome instanceof RillError) entry.reject(outcome);
    else entry.resolve(outcome);
    this.wake();
  }

  private wake(): void {
    for (const wake of this.roomWaiters.splice(0)) wake();
  }
}

function headersOf(options: PublishOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) throw invalidArgument(`header "${name}" is set by the client: use the publish options instead`);
    if (typeof value !== 'string') throw invalidArgument(`header "${name}" must be a string`);
    headers[name] = value;
  }
  if (options.partition !== undefined) {
    if (!Number.isSafeInteger(options.partition) || options.partition < 0) throw invalidArgument('partition must be a whole number, 0 or more');
    headers.partition = String(options.partition);
  }
  return headers;
}

/** The canonical body, `{messageID, key, message, timestamp}`: the broker reads key and messageID from it. */
function canonicalBody(messageID: string, key: string | null, value: unknown): string {
  if (value === undefined) throw invalidArgument('a message needs a value (any JSON value; null is one)');
  if (key !== null && typeof key !== 'string') throw invalidArgument('key must be a string or null');
  try {
    return JSON.stringify({ messageID, key, message: value, timestamp: Date.now() });
  } catch (error) {
    throw invalidArgument(`the value cannot be sent as JSON: ${(error as Error).message}`);
  }
}

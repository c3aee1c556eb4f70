import type { IMessage } from '@stomp/stompjs';
import type { Connection } from './connection.js';
import { checkTopic, tailDestination } from './destinations.js';
import { invalidAnswer, invalidArgument } from './errors.js';
import { type Message, messageFromFrame } from './messages.js';
import type { Settings } from './options.js';
import { LiveSubscription } from './subscription.js';

/** Where a tail starts: the oldest message kept, only what comes from now, an offset (in every partition read), or a time. */
export type TailStart = 'earliest' | 'latest' | { offset: number } | { timestamp: number | Date };

export interface TailOptions {
  /** Default `latest`. */
  from?: TailStart;
  /** Read this partition only. */
  partition?: number;
  /** A handler that throws or rejects is reported through onError; the tail goes on. */
  onMessage: (message: Message) => void | Promise<void>;
}

function fromHeader(from: TailStart): string {
  if (from === 'earliest' || from === 'latest') return from;
  if ('offset' in from && Number.isSafeInteger(from.offset) && from.offset >= 0) return `offset:${from.offset}`;
  if ('timestamp' in from) {
    const ms = from.timestamp instanceof Date ? from.timestamp.getTime() : from.timestamp;
    if (Number.isSafeInteger(ms) && ms >= 0) return `timestamp:${ms}`;
  }
  throw invalidArgument(`from must be 'earliest', 'latest', { offset } or { timestamp }, not ${JSON.stringify(from)}`);
}

/**
 * A live view of a topic's log (SUBSCRIBE `/topic/<topic>`). After a reconnect each partition it
 * had read resumes right after the last message handed on, so nothing is repeated or skipped
 * there; the partitions it had not read yet start again where the tail started (with `latest`,
 * from the reconnect: what they got in between is not seen).
 */
export class Tail extends LiveSubscription {
  /** Per partition, the offset after the last message handed on. */
  private readonly next = new Map<number, number>();
  private readonly from: string;

  constructor(
    connection: Connection,
    settings: Settings,
    private readonly topic: string,
    private readonly options: TailOptions,
  ) {
    super(connection, settings, `tail of ${topic}`);
    checkTopic(topic);
    this.from = fromHeader(options.from ?? 'latest');
    if (options.partition !== undefined && (!Number.isSafeInteger(options.partition) || options.partition < 0)) {
      throw invalidArgument('partition must be a whole number, 0 or more');
    }
  }

  protected subscribeOn(): void {
    const destination = tailDestination(this.topic);
    const { partition } = this.options;
    if (partition !== undefined) {
      const at = this.next.get(partition);
      this.subscribe(destination, { partition: String(partition), from: at === undefined ? this.from : `offset:${at}` }, (frame) => this.deliver(frame));
      return;
    }
    // A SUBSCRIBE's `from` applies to every partition it reads: those read before get one each, from where they were...
    const resumed = new Set(this.next.keys());
    for (const [read, at] of this.next) this.subscribe(destination, { partition: String(read), from: `offset:${at}` }, (frame) => this.deliver(frame));
    // ...and the others one together, from where the tail started.
    this.subscribe(destination, { from: this.from }, (frame) => {
      if (!resumed.has(Number(frame.headers.partition))) this.deliver(frame);
    });
  }

  private deliver(frame: IMessage): void {
    if (!this.active) return;
    const message = messageFromFrame(frame);
    if (message === null) {
      this.settings.onError(invalidAnswer(`a MESSAGE of ${this.description} without topic, partition, offset or timestamp`));
      return;
    }
    if (message.offset < (this.next.get(message.partition) ?? 0)) return;
    this.next.set(message.partition, message.offset + 1);
    this.handOver(this.options.onMessage, message);
  }
}

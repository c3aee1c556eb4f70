import { forEachRecord, type StoredRecord, type Topic } from '../../broker/index.js';
import type { HeaderInput } from '../../protocol/stomp/index.js';
import { topicDestination } from '../destinations.js';
import type { StompSession } from '../session.js';
import type { StartPosition } from './start-position.js';
import { ackHeader, type AckMode, type Subscription } from './subscription.js';

/** Stop writing to a socket that already holds this much unsent data. */
const SOCKET_HIGH_WATER_BYTES = 1024 * 1024;
const FETCH_BYTES = 256 * 1024;
const RETRY_MS = 200;

interface Cursor {
  partition: number;
  /** The next offset to deliver. */
  next: number;
  /** The readable end last seen. */
  end: number;
  queue: StoredRecord[];
  /** Index of the next record to deliver in `queue`. */
  queued: number;
  fetching: boolean;
  ready: boolean;
  unwatch: () => void;
}

const RESERVED_HEADERS = new Set(['subscription', 'message-id', 'destination', 'ack', 'topic', 'partition', 'offset', 'key', 'timestamp', 'content-length']);

/**
 * A SUBSCRIBE to `/topic/<topic>`: streams the topic's stored messages to this subscriber from
 * its start position on, every partition in offset order. It reads from the broker as a Kafka
 * consumer fetches, so it never holds more than one fetch per partition in memory; with `client`
 * ack modes it stops at `prefetch` unacknowledged messages, and it always stops while the socket
 * is backed up.
 */
export class TopicTail implements Subscription {
  private readonly cursors: Cursor[] = [];
  private readonly unacked = new Map<number, true>();
  private sequence = 0;
  private closed = false;
  private readonly destination: string;

  constructor(
    private readonly session: StompSession,
    readonly id: string,
    readonly number: number,
    readonly ackMode: AckMode,
    private readonly topic: Topic,
    private readonly prefetch: number,
  ) {
    this.destination = topicDestination(topic.name);
  }

  /** Resolves the start offset of each partition and begins delivering. */
  async start(start: StartPosition, partitions: number[]): Promise<void> {
    const broker = this.session.broker;
    await Promise.all(
      partitions.map(async (partition) => {
        const offsets = await broker.offsets(this.topic, partition, start.kind === 'timestamp' ? start.timestamp : undefined);
        let next: number;
        if (start.kind === 'latest') next = offsets.logEndOffset;
        else if (start.kind === 'earliest') next = offsets.logStartOffset;
        else if (start.kind === 'offset') next = Math.min(Math.max(start.offset, offsets.logStartOffset), offsets.logEndOffset);
        else next = offsets.offsetForTimestamp ?? offsets.logEndOffset;
        const cursor: Cursor = { partition, next, end: offsets.logEndOffset, queue: [], queued: 0, fetching: false, ready: true, unwatch: () => {} };
        cursor.unwatch = broker.watch(this.topic, partition, (end) => {
          if (end > cursor.end) cursor.end = end;
          this.pump(cursor);
        });
        this.cursors.push(cursor);
      }),
    );
    if (this.closed) this.close();
    else this.resume();
  }

  resume(): void {
    for (const cursor of this.cursors) this.pump(cursor);
  }

  private hasCredit(): boolean {
    if (this.closed || this.session.state !== 'connected') return false;
    if (this.session.transport.bufferedBytes > SOCKET_HIGH_WATER_BYTES) return false;
    return this.ackMode === 'auto' || this.unacked.size < this.prefetch;
  }

  private pump(cursor: Cursor): void {
    while (cursor.queued < cursor.queue.length && this.hasCredit()) this.deliver(cursor, cursor.queue[cursor.queued++]);
    if (cursor.queued < cursor.queue.length) return;
    cursor.queue = [];
    cursor.queued = 0;
    if (cursor.fetching || !this.hasCredit() || cursor.next >= cursor.end) return;
    cursor.fetching = true;
    this.session.broker.read(this.topic, cursor.partition, cursor.next, FETCH_BYTES).then(
      (result) => {
        cursor.fetching = false;
        if (this.closed) return;
        if (result.error === 'offset-out-of-range') {
          // Retention removed what this cursor was about to read: go on from the oldest kept.
          cursor.next = cursor.next < result.logStartOffset ? result.logStartOffset : result.logEndOffset;
        } else if (result.error !== undefined) {
          this.retryLater(cursor);
          return;
        }
        if (result.logEndOffset > cursor.end) cursor.end = result.logEndOffset;
        if (result.batches !== null) {
          forEachRecord(result.batches, cursor.next, (record) => cursor.queue.push(record));
        }
        this.pump(cursor);
      },
      () => {
        cursor.fetching = false;
        this.retryLater(cursor);
      },
    );
  }

  private retryLater(cursor: Cursor): void {
    setTimeout(() => this.pump(cursor), RETRY_MS).unref();
  }

  private deliver(cursor: Cursor, record: StoredRecord): void {
    cursor.next = record.offset + 1;
    const headers: HeaderInput = {};
    for (const [name, value] of record.headers) {
      if (!RESERVED_HEADERS.has(name)) headers[name] = value;
    }
    headers.subscription = this.id;
    headers['message-id'] = record.messageId ?? `${this.topic.name}-${cursor.partition}-${record.offset}`;
    headers.destination = this.destination;
    headers.topic = this.topic.name;
    headers.partition = cursor.partition;
    headers.offset = record.offset;
    if (record.key !== null) headers.key = record.key;
    headers.timestamp = record.timestamp;
    if (this.ackMode !== 'auto') {
      const sequence = ++this.sequence;
      this.unacked.set(sequence, true);
      headers.ack = ackHeader(this.number, sequence);
    }
    this.session.sendFrame('MESSAGE', headers, record.value);
  }

  settle(sequence: number): boolean {
    if (sequence > this.sequence) return false;
    if (this.ackMode === 'client') {
      for (const pending of this.unacked.keys()) {
        if (pending > sequence) break;
        this.unacked.delete(pending);
      }
    } else this.unacked.delete(sequence);
    this.resume();
    return true;
  }

  close(): void {
    this.closed = true;
    for (const cursor of this.cursors) {
      cursor.unwatch();
      cursor.queue = [];
    }
  }
}

import { forEachRecord, hasExpired, type StoredRecord, type Topic, type TrafficCounter } from '../../../broker/index.js';
import { encodeRawFrame, escapeHeader, type EscapeMode, type HeaderInput } from '../../../protocol/stomp/index.js';
import type { PartitionReader } from '../command-context.js';
import type { DeliveryChannel } from '../delivery-channel.js';
import { ackHeader, type AckMode, type Subscription } from './subscription.js';

const FETCH_BYTES = 256 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
const RETRY_MS = 200;

/**
 * Most bytes of message bodies, and most messages, one read queues: a read of compressed batches
 * may hold far more than it took on disk.
 */
const QUEUE_BYTES = 4 * 1024 * 1024;
const QUEUE_RECORDS = 16 * 1024;

/**
 * The records of `batches` from `from` on (at most about QUEUE_BYTES of bodies) and the offset to
 * read next; null if they cannot be decoded (a batch no CRC check caught: never a reason for the
 * gateway to fall over).
 */
function decoded(batches: Buffer, from: number): { queue: StoredRecord[]; next: number } | null {
  const queue: StoredRecord[] = [];
  let bytes = 0;
  try {
    const next = forEachRecord(batches, from, (record) => {
      if ((bytes >= QUEUE_BYTES || queue.length >= QUEUE_RECORDS) && queue.length > 0) return false;
      queue.push(record);
      bytes += record.value.length;
      return true;
    });
    return { queue, next };
  } catch {
    return null;
  }
}

export interface Cursor {
  partition: number;
  /** The next offset to fetch. */
  next: number;
  /** The readable end last seen. */
  end: number;
  /** Fetched records not yet delivered (redeliveries are put back in front). */
  queue: StoredRecord[];
  /** Index of the next record to deliver in `queue`. */
  queued: number;
  fetching: boolean;
  removed: boolean;
  unwatch: () => void;
  /** Set while the next record waits for its delivery time (delayed delivery): pumps again then. */
  holdTimer: NodeJS.Timeout | null;
  /** Its last read failed and is retried: it holds back no other partition meanwhile. */
  failing: boolean;
}

const RESERVED_HEADERS = new Set([
  'subscription',
  'message-id',
  'destination',
  'ack',
  'topic',
  'partition',
  'offset',
  'key',
  'timestamp',
  'content-length',
  'redelivered',
  'delivery-count',
  'tombstone',
]);

/**
 * What every subscription that streams a topic's partitions shares: per partition a cursor that
 * fetches from the broker as a Kafka consumer does (never more than one fetch in memory), delivery
 * only while the socket is not backed up and, in the client ack modes, while fewer than `prefetch`
 * messages are unacknowledged.
 */
export abstract class PartitionFeed implements Subscription {
  protected readonly cursors = new Map<number, Cursor>();
  protected closed = false;
  protected sequence = 0;
  /** The header lines every MESSAGE of this subscription starts with, escaped once. */
  private readonly prefix: string;
  private readonly mode: EscapeMode;
  /** The topic's delivered records and bytes, for metrics. */
  private readonly traffic: TrafficCounter;

  constructor(
    protected readonly channel: DeliveryChannel,
    protected readonly log: PartitionReader,
    readonly id: string,
    readonly number: number,
    readonly ackMode: AckMode,
    protected readonly topic: Topic,
    protected readonly prefetch: number,
    destination: string,
  ) {
    this.mode = channel.version;
    this.traffic = log.delivered.of(topic.name);
    const line = (name: string, value: string): string => `${name}:${escapeHeader(value, this.mode)}\n`;
    this.prefix = `MESSAGE\n${line('subscription', id)}${line('destination', destination)}${line('topic', topic.name)}`;
  }

  /** Messages delivered and not yet settled. */
  protected abstract unsettled(): number;

  /** Bookkeeping after a delivery; `sequence` is 0 in auto ack mode. */
  protected abstract delivered(cursor: Cursor, record: StoredRecord, sequence: number): void;

  abstract settle(sequence: number, accepted: boolean): boolean;

  handedOut(sequence: number): boolean {
    return sequence >= 1 && sequence <= this.sequence;
  }

  protected addPartition(partition: number, next: number, end: number): void {
    const cursor: Cursor = { partition, next, end, queue: [], queued: 0, fetching: false, removed: false, unwatch: () => {}, holdTimer: null, failing: false };
    cursor.unwatch = this.log.watch(this.topic, partition, (newEnd, batch, baseOffset) => {
      // A caught-up cursor takes the stored batch as it is, without a fetch from the worker.
      if (batch !== null && baseOffset === cursor.next && !cursor.fetching && cursor.queued >= cursor.queue.length) {
        const records = decoded(batch, baseOffset);
        // Undecodable, it is left to the fetch, which retries (and the broker logs a damaged batch).
        if (records !== null) {
          cursor.queue = records.queue;
          cursor.queued = 0;
          cursor.next = records.next;
        }
      }
      if (newEnd > cursor.end) cursor.end = newEnd;
      this.pump(cursor);
    });
    this.cursors.set(partition, cursor);
  }

  protected removePartition(partition: number): void {
    const cursor = this.cursors.get(partition);
    if (cursor === undefined) return;
    cursor.removed = true;
    cursor.unwatch();
    if (cursor.holdTimer !== null) clearTimeout(cursor.holdTimer);
    cursor.queue = [];
    this.cursors.delete(partition);
  }

  resume(): void {
    for (const cursor of this.cursors.values()) this.pump(cursor);
  }

  protected hasCredit(): boolean {
    if (this.closed || !this.channel.writable) return false;
    return this.ackMode === 'auto' || this.unsettled() < this.prefetch;
  }

  protected pump(cursor: Cursor): void {
    if (cursor.queued < cursor.queue.length && this.hasCredit()) {
      const now = Date.now();
      this.channel.cork();
      while (cursor.queued < cursor.queue.length && this.hasCredit()) {
        const record = cursor.queue[cursor.queued]!;
        // Past its time-to-live: never delivered (a redelivery neither).
        if (hasExpired(record.headers, now)) {
          cursor.queued++;
          this.expired(cursor, record);
          continue;
        }
        // Not to be delivered yet: the partition waits for it, so that its order holds.
        const at = this.deliverableAt(record, now);
        if (at !== 0) {
          this.holdFor(cursor, at - now);
          break;
        }
        cursor.queued++;
        this.deliver(cursor, record);
      }
      this.channel.uncork();
    }
    if (cursor.queued < cursor.queue.length) return;
    cursor.queue = [];
    cursor.queued = 0;
    if (cursor.fetching || cursor.removed || !this.hasCredit() || cursor.next >= cursor.end) return;
    cursor.fetching = true;
    this.log.read(this.topic, cursor.partition, cursor.next, FETCH_BYTES).then(
      (result) => {
        cursor.fetching = false;
        if (this.closed || cursor.removed) return;
        if (result.failure === undefined || result.failure.code === 'offset-out-of-range') cursor.failing = false;
        if (result.failure?.code === 'offset-out-of-range') {
          // Retention removed what this cursor was about to read: go on from the oldest kept.
          cursor.next = cursor.next < result.logStartOffset ? result.logStartOffset : result.logEndOffset;
        } else if (result.failure !== undefined) {
          this.retryLater(cursor);
          return;
        }
        if (result.logEndOffset > cursor.end) cursor.end = result.logEndOffset;
        if (result.batches !== null) {
          const records = decoded(result.batches, cursor.next);
          if (records === null) {
            this.retryLater(cursor);
            return;
          }
          for (const record of records.queue) cursor.queue.push(record);
          // Past the last record, or past transaction markers, which take offsets but are never delivered.
          cursor.next = records.next;
        } else if (cursor.next < cursor.end) {
          // Nothing where something should be: fetching again at once would only spin.
          this.retryLater(cursor);
          return;
        }
        this.pump(cursor);
      },
      () => {
        cursor.fetching = false;
        this.retryLater(cursor);
      },
    );
  }

  /** When a record may be delivered, if later than `now` (0: now). A tail reads the log as it is: always now. */
  protected deliverableAt(_record: StoredRecord, _now: number): number {
    return 0;
  }

  /** Pumps the cursor again in `ms` (a timer can wait at most 2^31 − 1 ms: a longer hold is re-armed when it fires). */
  private holdFor(cursor: Cursor, ms: number): void {
    if (cursor.holdTimer !== null) return;
    cursor.holdTimer = setTimeout(
      () => {
        cursor.holdTimer = null;
        if (!cursor.removed && !this.closed) this.pump(cursor);
      },
      Math.min(ms, MAX_TIMER_MS),
    );
    cursor.holdTimer.unref();
  }

  /** A record passed over because it expired: nothing to do for a tail, which keeps no position. */
  protected expired(_cursor: Cursor, _record: StoredRecord): void {}

  /** Puts a record back in front of its partition's queue, to be delivered again. */
  protected redeliver(cursor: Cursor, record: StoredRecord): void {
    cursor.queue.splice(cursor.queued, 0, record);
  }

  private retryLater(cursor: Cursor): void {
    cursor.failing = true;
    setTimeout(() => this.pump(cursor), RETRY_MS).unref();
  }

  protected deliver(cursor: Cursor, record: StoredRecord, extra?: HeaderInput): void {
    const mode = this.mode;
    const messageId = record.messageId ?? `${this.topic.name}-${cursor.partition}-${record.offset}`;
    let head = `${this.prefix}message-id:${escapeHeader(messageId, mode)}\npartition:${cursor.partition}\noffset:${record.offset}\n`;
    if (record.key !== null) head += `key:${escapeHeader(record.key, mode)}\n`;
    head += `timestamp:${record.timestamp}\n`;
    if (record.tombstone) head += 'tombstone:true\n';
    if (extra !== undefined) for (const name in extra) head += `${name}:${String(extra[name])}\n`;
    let sequence = 0;
    if (this.ackMode !== 'auto') {
      sequence = ++this.sequence;
      head += `ack:${ackHeader(this.number, sequence)}\n`;
    }
    for (const [name, value] of record.headers) {
      if (!RESERVED_HEADERS.has(name)) head += `${escapeHeader(name, mode)}:${escapeHeader(value, mode)}\n`;
    }
    head += `content-length:${record.value.length}\n\n`;
    this.delivered(cursor, record, sequence);
    this.traffic.messages++;
    this.traffic.bytes += record.value.length;
    this.channel.sendBytes(encodeRawFrame(head, record.value));
  }

  close(): void {
    this.closed = true;
    for (const partition of [...this.cursors.keys()]) this.removePartition(partition);
  }
}

import { RillError } from '../../../errors/index.js';
import type { Logger } from '../../../logging/index.js';
import { forEachMessageId } from '../../../storage/index.js';
import type { AppendTicket } from '../append-ticket.js';
import type { Topic } from '../topic-registry.js';
import { WorkerStoppedError } from '../worker-supervisor.js';
import { StoredMessageIds, type MessageIdTable } from './stored-message-ids.js';

/** A publish the deduplicator may answer itself: as a duplicate of a message stored before. */
export interface DeduplicatedTicket extends AppendTicket {
  /** Nothing was stored: the message was already, at `offset` of `partition`. */
  duplicate(partition: number, offset: number): void;
}

/** Stores a publish: the broker's append, with the ticket the deduplicator gives it. */
export type StoreFunction<Item> = (item: Item, ticket: AppendTicket) => void;

export interface DeduplicationSettings {
  /** A topic's window in ms (0: no deduplication). */
  windowOf(topic: string): number;
  /** `limits.maxDeduplicationIds`: messageIDs remembered at most, all topics together. */
  maxMessageIds: number;
}

/** What rebuilding a window reads of the log (the broker's reads, through the partitions' workers). */
export interface LogReads {
  offsets(
    topic: Topic,
    partition: number,
    timestamp?: number,
    appendedSince?: number,
  ): Promise<{ logStartOffset: number; logEndOffset: number; appendedSinceOffset?: number | undefined }>;
  read(
    topic: Topic,
    partition: number,
    offset: number,
    maxBytes: number,
  ): Promise<{ batches: Buffer | null; failure?: { code: string; message: string } | undefined }>;
}

/** Publishes queued while a topic's window is rebuilt, at most; past that, refused (retriably). */
const MAX_QUEUED_PUBLISHES = 100_000;
/** Partitions read at once while rebuilding. */
const REBUILD_CONCURRENCY = 8;
const REBUILD_READ_BYTES = 1024 * 1024;
const EXPIRY_INTERVAL_MS = 1000;

/**
 * One message in flight, the first with its messageID: the broker's ticket for it. Retries of the
 * same messageID that come meanwhile wait on it and are answered as its duplicates once it is
 * stored (or fail with it).
 */
class PendingPublish implements AppendTicket {
  waiters: DeduplicatedTicket[] | null = null;

  constructor(
    private readonly owner: Deduplicator,
    readonly window: TopicWindow,
    readonly messageId: string,
    readonly partition: number,
    readonly ticket: AppendTicket,
  ) {}

  settle(offset: number, failure: RillError | null): void {
    this.owner.settled(this, offset, failure);
  }
}

/**
 * A messageID whose first copy was in flight to a broker worker that stopped before answering: it
 * may have been written. Its resends are refused (retriably) until the worker is back and the
 * partition has been read: then it is known stored, or forgotten.
 */
class InDoubt {
  constructor(readonly partition: number) {}
}

interface QueuedPublish {
  topic: Topic;
  partition: number;
  messageId: string;
  ticket: DeduplicatedTicket;
  item: unknown;
  store: StoreFunction<unknown>;
}

/** One topic's deduplication state. */
class TopicWindow {
  readonly table: MessageIdTable<PendingPublish | InDoubt> = new Map();
  /** While false, the window is being rebuilt from the log and publishes wait in `queued`. */
  ready = true;
  readonly queued: QueuedPublish[] = [];
  /** Per partition: every record below this has been seen (stored through here, or read back). */
  readonly seenEnd: number[] = [];
  /** Partitions to read back before the window is ready (at start-up). */
  readonly unsettled = new Set<number>();
  /**
   * Per partition, the messageIDs in doubt there (their worker stopped before answering), and the
   * offset to read from to find them: where the partition's end was last seen when the first of
   * them failed (stores after it, once the worker is back, move `seenEnd` past them).
   */
  readonly inDoubt = new Map<number, { from: number; messageIds: string[] }>();
  /** The topic's partitions, as last seen. */
  partitions = 0;

  constructor(
    readonly topic: string,
    public windowMs: number,
  ) {}
}

/**
 * Idempotent publishing: a message whose messageID was stored in its topic within the topic's
 * window (`topics.deduplicationWindowMs`) is not stored again; its publisher is answered with where
 * the first copy is, whatever partition the resend would have gone to. Resends that arrive while
 * the first copy is still in flight wait for its outcome.
 *
 * The window lives in memory and is rebuilt from the log. At start-up each topic reads back the
 * records appended within its window (at most its share of `limits.maxDeduplicationIds` per
 * partition), and its publishes wait until it has. When a broker worker stops before answering an
 * append, the messageIDs in flight to it are in doubt (they may have been written): their resends
 * are refused, retriably, until the worker is back and their partitions have been read; the rest
 * of the topic goes on meanwhile. So a resend never slips past a copy on disk the window does not know.
 */
export class Deduplicator {
  private readonly windows = new Map<string, TopicWindow>();
  private readonly ids: StoredMessageIds<PendingPublish | InDoubt>;
  private readonly windowOfTable = new Map<MessageIdTable<PendingPublish | InDoubt>, TopicWindow>();
  private readonly expiryTimer: NodeJS.Timeout;
  private warnedEviction = false;
  private closed = false;

  constructor(
    private readonly reads: LogReads,
    private readonly settings: DeduplicationSettings,
    private readonly logger: Logger,
  ) {
    this.ids = new StoredMessageIds(settings.maxMessageIds);
    this.expiryTimer = setInterval(() => this.expire(Date.now()), EXPIRY_INTERVAL_MS);
    this.expiryTimer.unref();
  }

  /** Whether publishes to `topic` go through `submit`. */
  covers(topic: Topic): boolean {
    return this.settings.windowOf(topic.name) > 0;
  }

  /**
   * A publish with a messageID the producer chose. Either stored (by `store`, with a ticket that
   * records it), or answered at once as a duplicate, or held until the copy in flight is answered
   * or the topic's window is rebuilt.
   */
  submit<Item>(topic: Topic, partition: number, messageId: string, ticket: DeduplicatedTicket, item: Item, store: StoreFunction<Item>): void {
    const window = this.windowFor(topic);
    if (!window.ready) {
      this.hold(window, { topic, partition, messageId, ticket, item, store: store as StoreFunction<unknown> });
      return;
    }
    const known = window.table.get(messageId);
    if (known === undefined) {
      const pending = new PendingPublish(this, window, messageId, partition, ticket);
      window.table.set(messageId, pending);
      store(item, pending);
    } else if (typeof known === 'number') {
      if (this.ids.storedAt(known) + window.windowMs > Date.now()) {
        ticket.duplicate(this.ids.partition(known), this.ids.offset(known));
        return;
      }
      // Stored, but longer ago than the window: a new message of the same ID.
      window.table.delete(messageId);
      this.submit(topic, partition, messageId, ticket, item, store);
    } else if (known instanceof InDoubt) {
      ticket.settle(
        -1,
        new RillError(
          'unavailable',
          `message "${messageId}" was on its way to partition ${known.partition} of topic ${topic.name} when its broker worker stopped; whether it was stored is known once the worker is back: retry`,
        ),
      );
    } else {
      (known.waiters ??= []).push(ticket);
    }
  }

  /** The first copy's outcome: recorded, and given to the retries that waited for it. */
  settled(pending: PendingPublish, offset: number, failure: RillError | null): void {
    const { window, messageId, partition } = pending;
    const current = window.table.get(messageId) === pending;
    if (failure === null) {
      if (current) this.ids.add(window.table, messageId, partition, offset, Date.now());
      this.sawStored(window, partition, offset + 1);
      pending.ticket.settle(offset, null);
      if (pending.waiters !== null) for (const waiter of pending.waiters) waiter.duplicate(partition, offset);
      this.warnOnEviction();
    } else {
      if (current && failure instanceof WorkerStoppedError) {
        // Perhaps written: resends wait for the partition to be read once the worker is back.
        window.table.set(messageId, new InDoubt(partition));
        const doubts = window.inDoubt.get(partition);
        if (doubts === undefined) window.inDoubt.set(partition, { from: window.seenEnd[partition] ?? 0, messageIds: [messageId] });
        else doubts.messageIds.push(messageId);
      } else if (current) window.table.delete(messageId);
      pending.ticket.settle(-1, failure);
      if (pending.waiters !== null) for (const waiter of pending.waiters) waiter.settle(-1, failure);
    }
  }

  /**
   * At start-up: every topic on disk rebuilds its window from its log. Publishes to a topic wait
   * until its own is rebuilt; resolves once all are.
   */
  async rebuild(topics: readonly Topic[]): Promise<void> {
    const started = performance.now();
    const rebuilt: TopicWindow[] = [];
    for (const topic of topics) {
      const window = this.windowFor(topic);
      if (window.windowMs === 0) continue;
      window.ready = false;
      for (let p = 0; p < topic.partitions; p++) window.unsettled.add(p);
      rebuilt.push(window);
    }
    for (const topic of topics) {
      const window = this.windows.get(topic.name)!;
      if (!window.ready) await this.readBack(topic, window);
    }
    if (rebuilt.length > 0) {
      this.logger.info(
        { topics: rebuilt.length, messageIds: this.ids.size, ms: Math.round(performance.now() - started) },
        'deduplication windows rebuilt from the log',
      );
    }
  }

  /**
   * A broker worker is back: the partitions that have messageIDs in doubt are read from where this
   * thread last saw them stored, which settles each: stored (its resends are duplicates) or not
   * (forgotten). Partitions whose worker is still down wait for its restart.
   */
  async workerRestarted(topics: readonly Topic[], isUp: (topic: Topic, partition: number) => boolean): Promise<void> {
    for (const topic of topics) {
      const window = this.windows.get(topic.name);
      if (window === undefined) continue;
      for (const partition of [...window.inDoubt.keys()]) {
        if (!isUp(topic, partition)) continue;
        const doubts = window.inDoubt.get(partition)!;
        window.inDoubt.delete(partition);
        try {
          await this.readPartition(topic, window, partition, doubts.from);
        } catch (error) {
          if (error instanceof RillError && error.code === 'unavailable') {
            // The worker stopped again: the doubts wait for its next restart.
            const later = window.inDoubt.get(partition);
            window.inDoubt.set(partition, { from: doubts.from, messageIds: [...doubts.messageIds, ...(later?.messageIds ?? [])] });
            continue;
          }
          this.logger.error(
            { err: error, topic: topic.name, partition, messageIds: doubts.messageIds.length },
            'could not read the partition back after its worker restarted: resends of the messages in flight when it stopped may be stored twice',
          );
        }
        for (const messageId of doubts.messageIds) if (window.table.get(messageId) instanceof InDoubt) window.table.delete(messageId);
      }
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.expiryTimer);
    for (const window of this.windows.values()) this.release(window, new RillError('unavailable', 'the broker is shutting down'));
  }

  /** Reads the topic's unsettled partitions back into its window, then lets its held publishes go. */
  private async readBack(topic: Topic, window: TopicWindow): Promise<void> {
    const partitions = [...window.unsettled];
    const since = Date.now() - window.windowMs;
    const share = Math.max(1, Math.ceil(this.settings.maxMessageIds / Math.max(1, this.coveredPartitions())));
    let next = 0;
    const readOne = async (): Promise<void> => {
      while (next < partitions.length && !this.closed) {
        const partition = partitions[next++]!;
        try {
          await this.readPartition(topic, window, partition, null, since, share);
          window.unsettled.delete(partition);
        } catch (error) {
          // Publishing must not stop for good on a damaged batch: the window then covers less, and says so.
          window.unsettled.delete(partition);
          this.logger.error(
            { err: error, topic: topic.name, partition },
            'could not read the partition back into the deduplication window: retries of its recent messages may be stored twice',
          );
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(REBUILD_CONCURRENCY, partitions.length) }, readOne));
    if (window.unsettled.size === 0) this.release(window, null);
  }

  /**
   * Adds the messageIDs of a partition's records to the window: from `from` when given (every
   * record after it), else the most recent `share` of those appended `since` then.
   */
  private async readPartition(topic: Topic, window: TopicWindow, partition: number, from: number | null, since = 0, share = 0): Promise<void> {
    const offsets = await this.reads.offsets(topic, partition, undefined, from === null ? since : undefined);
    const end = offsets.logEndOffset;
    let offset = from === null ? Math.max(offsets.logStartOffset, offsets.appendedSinceOffset ?? 0, end - share) : Math.max(offsets.logStartOffset, from);
    const now = Date.now();
    while (offset < end && !this.closed) {
      const read = await this.reads.read(topic, partition, offset, REBUILD_READ_BYTES);
      if (read.failure !== undefined) throw new RillError(read.failure.code === 'unknown-partition' ? 'unavailable' : 'storage-error', read.failure.message);
      if (read.batches === null) break;
      const next = forEachMessageId(read.batches, offset, (recordOffset, messageId) => {
        if (messageId === null) return;
        const known = window.table.get(messageId);
        if (known === undefined || known instanceof InDoubt) this.ids.add(window.table, messageId, partition, recordOffset, now);
      });
      if (next <= offset) break;
      offset = next;
    }
    this.sawStored(window, partition, Math.max(offset, end));
  }

  private hold(window: TopicWindow, publish: QueuedPublish): void {
    if (window.queued.length >= MAX_QUEUED_PUBLISHES) {
      publish.ticket.settle(
        -1,
        new RillError('unavailable', `topic ${window.topic} is reading its recent messageIDs back from its log (after a start or a worker restart); retry`),
      );
      return;
    }
    window.queued.push(publish);
  }

  /** The window is ready: held publishes go on in the order they came (or all fail with `failure`). */
  private release(window: TopicWindow, failure: RillError | null): void {
    window.ready = failure === null;
    const queued = window.queued.splice(0);
    for (const publish of queued) {
      if (failure !== null) publish.ticket.settle(-1, failure);
      else this.submit(publish.topic, publish.partition, publish.messageId, publish.ticket, publish.item, publish.store);
    }
  }

  private windowFor(topic: Topic): TopicWindow {
    let window = this.windows.get(topic.name);
    if (window === undefined) {
      window = new TopicWindow(topic.name, this.settings.windowOf(topic.name));
      this.windows.set(topic.name, window);
      this.windowOfTable.set(window.table, window);
    }
    window.partitions = topic.partitions;
    return window;
  }

  private sawStored(window: TopicWindow, partition: number, end: number): void {
    if (end > (window.seenEnd[partition] ?? 0)) window.seenEnd[partition] = end;
  }

  private coveredPartitions(): number {
    let partitions = 0;
    for (const window of this.windows.values()) if (window.windowMs > 0) partitions += window.partitions;
    return partitions;
  }

  private expire(now: number): void {
    this.ids.expire(now, (table) => this.windowOfTable.get(table)?.windowMs ?? 0);
  }

  private warnOnEviction(): void {
    if (this.warnedEviction || this.ids.evictedEarly === 0) return;
    this.warnedEviction = true;
    this.logger.warn(
      { maxDeduplicationIds: this.settings.maxMessageIds },
      'limits.maxDeduplicationIds is reached: the oldest messageIDs are forgotten before their window is over (raise it, or shorten topics.deduplicationWindowMs)',
    );
  }
}

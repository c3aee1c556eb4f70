import { RillError } from '../../../errors/index.js';
import type { Logger } from '../../../logging/index.js';
import { forEachMessageId } from '../../../storage/index.js';
import type { AppendTicket } from '../append-ticket.js';
import type { Topic } from '../topic-registry.js';
import { WorkerDownError, WorkerStoppedError } from '../worker-supervisor.js';
import { randomInt } from 'node:crypto';
import { Fingerprint } from './fingerprint-index.js';
import { IN_FLIGHT, StoredMessageIds, type MessageIdRing } from './stored-message-ids.js';

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

/** What the deduplicator reads of the log (the broker's reads, through the partitions' workers). */
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
  /** The end of the partition as this thread last saw a batch stored there (0 if none since the start). */
  storedEnd(topic: Topic, partition: number): number;
}

/** Publishes held while a topic's window is read back, at most, per topic; past that, refused (retriably). */
const MAX_HELD_PUBLISHES = 100_000;
/** Partitions read at once while reading windows back. */
const READ_CONCURRENCY = 8;
const READ_BYTES = 1024 * 1024;
const EXPIRY_INTERVAL_MS = 1000;
/** Cluster mode: how long after hearing of another node's append its messageIDs are read. */
const FOLLOW_DELAY_MS = 5;

/**
 * One message in flight, the first with its messageID: the broker's ticket for it. Resends of the
 * same messageID that come meanwhile wait on it and are answered as its duplicates once it is
 * stored (or fail with it).
 */
class PendingPublish implements AppendTicket {
  waiters: DeduplicatedTicket[] | null = null;
  /** Its entry's sequence in its topic's ring. */
  sequence = -1;
  /** Its fingerprint (a, b, c), should its entry be forgotten before it settles. */
  readonly a: number;
  readonly b: number;
  readonly c: number;

  constructor(
    private readonly owner: Deduplicator,
    readonly window: TopicWindow,
    readonly messageId: string,
    readonly partition: number,
    readonly ticket: AppendTicket,
    fingerprint: Fingerprint,
  ) {
    this.a = fingerprint.a;
    this.b = fingerprint.b;
    this.c = fingerprint.c;
  }

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

type Entry = PendingPublish | InDoubt;

interface HeldPublish {
  topic: Topic;
  partition: number;
  messageId: string;
  ticket: DeduplicatedTicket;
  item: unknown;
  store: StoreFunction<unknown>;
  bytes: number;
}

/** A partition to read once its worker is back: from an offset, or (null) its recent records as at start-up. */
interface UnreadPartition {
  from: number | null;
  /** The messageIDs in doubt there, forgotten once it is read unless the read found them. */
  messageIds: string[];
}

/** One topic's deduplication state (its messageIDs are in StoredMessageIds, by fingerprint). */
class TopicWindow {
  /** While false, the window is being read back from the log at start-up and publishes are held. */
  ready = true;
  readonly held: HeldPublish[] = [];
  /** Partitions to read when their broker worker is back (it stopped, or was down at start-up). */
  readonly unread = new Map<number, UnreadPartition>();
  /** The topic's partitions, as last seen. */
  partitions = 0;
  /**
   * Cluster mode, by partition: how far this node has taken the log's messageIDs in (from its own
   * appends, or by reading what other nodes appended), the end last heard of, and the partitions
   * being read.
   */
  readonly followed = new Map<number, number>();
  readonly heard = new Map<number, number>();
  readonly following = new Set<number>();

  constructor(
    readonly topic: Topic,
    readonly windowMs: number,
    readonly ring: MessageIdRing<Entry>,
    /** Seeds its messageIDs' fingerprints: the same ID in two topics is two messages. */
    readonly seed: number,
  ) {}
}

/** Whether a failed read is the worker's absence (read again when it is back) rather than the data's fault. */
function workerAway(error: unknown): boolean {
  return error instanceof WorkerStoppedError || error instanceof WorkerDownError;
}

/**
 * Idempotent publishing: a message whose messageID was stored in its topic within the topic's
 * window (`topics.deduplicationWindowMs`) is not stored again; its publisher is answered with where
 * the first copy is, whatever partition the resend would have gone to. Resends that arrive while
 * the first copy is still in flight wait for its outcome.
 *
 * The window lives in memory and is rebuilt from the log. At start-up each topic reads back the
 * records appended within its window (at most its share of `limits.maxDeduplicationIds` per
 * partition), and its publishes are held until it has (topics with publishes waiting first). When
 * a broker worker stops before answering an append, the messageIDs in flight to it are in doubt
 * (they may have been written): their resends are refused, retriably, until the worker is back and
 * their partitions have been read; the rest of the topic goes on meanwhile. A partition whose
 * worker is down at start-up is read when the worker is back (the topic does not wait for it).
 */
export class Deduplicator {
  private readonly windows = new Map<string, TopicWindow>();
  /** Topics deleted, by name: how many times (the seed of a new topic of that name differs). */
  private readonly incarnations = new Map<string, number>();
  private readonly ids: StoredMessageIds<Entry>;
  /** Scratch fingerprints, reused: one for lookups, one for what a settling publish carries. */
  private readonly fingerprint = new Fingerprint();
  private readonly settling = new Fingerprint();
  /** Makes fingerprints unpredictable from outside the process, so that no one can craft IDs that collide. */
  private readonly processSeed = randomInt(2 ** 31);
  private readonly expiryTimer: NodeJS.Timeout;
  private readonly idleWaiters: Array<() => void> = [];
  private heldCount = 0;
  private held = 0;
  private warnedEviction = false;
  private closed = false;

  constructor(
    private readonly reads: LogReads,
    private readonly settings: DeduplicationSettings,
    private readonly logger: Logger,
  ) {
    this.ids = new StoredMessageIds(settings.maxMessageIds);
    this.expiryTimer = setInterval(() => this.ids.expire(Date.now()), EXPIRY_INTERVAL_MS);
    this.expiryTimer.unref();
  }

  /** Whether publishes to `topic` go through `submit`. */
  covers(topic: Topic): boolean {
    return this.windowFor(topic).windowMs > 0;
  }

  /** Bytes of publishes held until their topic's window is read back (they count toward the broker's in-flight bytes). */
  get heldBytes(): number {
    return this.held;
  }

  /**
   * A publish with a messageID the producer chose (`bytes`: about what it holds in memory). Either
   * stored (by `store`, with a ticket that records it), or answered at once as a duplicate, or
   * held until the copy in flight is answered or the topic's window is read back.
   */
  submit<Item>(topic: Topic, partition: number, messageId: string, ticket: DeduplicatedTicket, item: Item, store: StoreFunction<Item>, bytes: number): void {
    if (this.closed) {
      ticket.settle(-1, new RillError('unavailable', 'the broker is shutting down'));
      return;
    }
    const window = this.windowFor(topic);
    if (!window.ready) {
      this.hold(window, { topic, partition, messageId, ticket, item, store: store as StoreFunction<unknown>, bytes });
      return;
    }
    const fingerprint = this.fingerprint.of(messageId, window.seed);
    const now = Date.now();
    const known = this.ids.find(fingerprint);
    if (known !== null) {
      const { ring, slot } = known;
      const entry = ring.entry(slot);
      if (entry instanceof PendingPublish) {
        (entry.waiters ??= []).push(ticket);
        return;
      }
      if (entry instanceof InDoubt) {
        ticket.settle(
          -1,
          new RillError(
            'unavailable',
            `message "${messageId}" was on its way to partition ${entry.partition} of topic ${topic.name} when its broker worker stopped; whether it was stored is known once the worker is back: retry`,
          ),
        );
        return;
      }
      // One that came longer ago than the window is not it: a new message of the same ID, stored again.
      if (ring.offset(slot) !== IN_FLIGHT && ring.isWithinWindow(slot, now)) {
        ticket.duplicate(ring.partition(slot), ring.offset(slot));
        return;
      }
    }
    const pending = new PendingPublish(this, window, messageId, partition, ticket, fingerprint);
    pending.sequence = this.ids.add(window.ring, fingerprint, partition, IN_FLIGHT, now, pending);
    store(item, pending);
  }

  /** The first copy's outcome: recorded, and given to the resends that waited for it. */
  settled(pending: PendingPublish, offset: number, failure: RillError | null): void {
    const { window, partition } = pending;
    const { ring } = window;
    const slot = ring.slotOf(pending.sequence);
    // Its entry may have been forgotten meanwhile (limits.maxDeduplicationIds reached).
    const live = slot >= 0 && ring.entry(slot) === pending;
    if (failure === null) {
      if (live) ring.stored(slot, partition, offset);
      else {
        const fingerprint = this.settling;
        fingerprint.a = pending.a;
        fingerprint.b = pending.b;
        fingerprint.c = pending.c;
        this.ids.add(ring, fingerprint, partition, offset, Date.now());
      }
      pending.ticket.settle(offset, null);
      if (pending.waiters !== null) for (const waiter of pending.waiters) waiter.duplicate(partition, offset);
      this.warnOnEviction();
    } else {
      if (failure instanceof WorkerStoppedError) {
        // Perhaps written: its resends wait for the partition to be read once the worker is back,
        // from where this thread last saw it stored (the batch in doubt cannot be before that).
        if (live) ring.setEntry(slot, new InDoubt(partition));
        this.unread(window, partition, this.reads.storedEnd(window.topic, partition)).messageIds.push(pending.messageId);
      } else if (live) ring.dropped(slot);
      pending.ticket.settle(-1, failure);
      if (pending.waiters !== null) for (const waiter of pending.waiters) waiter.settle(-1, failure);
    }
  }

  /**
   * At start-up: every topic on disk reads its window back from its log, topics with publishes
   * waiting first. Publishes to a topic are held until its own window is back; resolves once all are.
   */
  async rebuild(topics: readonly Topic[]): Promise<void> {
    const started = performance.now();
    const waiting: Array<{ topic: Topic; window: TopicWindow }> = [];
    for (const topic of topics) {
      const window = this.windowFor(topic);
      if (window.windowMs === 0) continue;
      window.ready = false;
      waiting.push({ topic, window });
    }
    const share = Math.max(1, Math.ceil(this.settings.maxMessageIds / Math.max(1, this.coveredPartitions())));
    while (waiting.length > 0 && !this.closed) {
      const index = Math.max(
        0,
        waiting.findIndex(({ window }) => window.held.length > 0),
      );
      const [{ topic, window }] = waiting.splice(index, 1) as [{ topic: Topic; window: TopicWindow }];
      const all = Array.from({ length: topic.partitions }, (_, p) => p);
      await this.readPartitions(topic, window, all, (partition) => this.readRecent(topic, window, partition, share));
      this.release(window, null);
    }
    if (!this.closed && this.windows.size > 0) {
      this.logger.info({ messageIds: this.ids.size, ms: Math.round(performance.now() - started) }, 'deduplication windows rebuilt from the log');
    }
  }

  /**
   * A broker worker is back: the partitions it holds that wait to be read (messageIDs in doubt, or
   * a read that found it down at start-up) are read, which settles each messageID in doubt: stored
   * (its resends are duplicates) or not (forgotten).
   */
  async workerRestarted(topics: readonly Topic[], ownedByIt: (topic: Topic, partition: number) => boolean): Promise<void> {
    for (const topic of topics) {
      const window = this.windows.get(topic.name);
      if (window === undefined || window.unread.size === 0) continue;
      const partitions = [...window.unread.keys()].filter((partition) => ownedByIt(topic, partition));
      const share = Math.max(1, Math.ceil(this.settings.maxMessageIds / Math.max(1, this.coveredPartitions())));
      await this.readPartitions(topic, window, partitions, async (partition) => {
        const unread = window.unread.get(partition)!;
        window.unread.delete(partition);
        try {
          if (unread.from === null) await this.readRecent(topic, window, partition, share);
          else await this.readFrom(topic, window, partition, unread.from);
        } catch (error) {
          if (workerAway(error)) {
            // Stopped again: all of it waits for the next restart.
            const later = this.unread(window, partition, unread.from);
            later.from = unread.from === null || later.from === null ? null : Math.min(unread.from, later.from);
            later.messageIds.push(...unread.messageIds);
            return;
          }
          throw error;
        } finally {
          if (!window.unread.has(partition)) {
            for (const messageId of unread.messageIds) this.forgetIfInDoubt(window, messageId);
          }
        }
      });
    }
  }

  /** Resolves once no publish is held (at once if none is). */
  whenNothingHeld(): Promise<void> {
    if (this.heldCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.expiryTimer);
    for (const window of this.windows.values()) this.release(window, new RillError('unavailable', 'the broker is shutting down'));
  }

  /**
   * Reads the partitions with `read`, a few at once. A read that finds the partition's worker away
   * leaves the partition to be read when the worker is back (the window goes on without it
   * meanwhile); a read that fails otherwise is logged, and the window goes on without it.
   */
  private async readPartitions(topic: Topic, window: TopicWindow, partitions: number[], read: (partition: number) => Promise<void>): Promise<void> {
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < partitions.length && !this.closed) {
        const partition = partitions[next++]!;
        try {
          await read(partition);
        } catch (error) {
          if (this.closed) return;
          if (workerAway(error)) {
            this.unread(window, partition, null);
            this.logger.warn(
              { topic: topic.name, partition, reason: (error as Error).message },
              'the partition’s broker worker is down: its recent messageIDs are read when it is back, and resends of them may be stored twice until then',
            );
            continue;
          }
          this.logger.error(
            { err: error, topic: topic.name, partition },
            'could not read the partition back into the deduplication window: resends of its recent messages may be stored twice',
          );
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, partitions.length) }, reader));
  }

  /** The partition's most recent records appended within the window: at most `share` of them. */
  private async readRecent(topic: Topic, window: TopicWindow, partition: number, share: number): Promise<void> {
    const offsets = await this.reads.offsets(topic, partition, undefined, Date.now() - window.windowMs);
    const from = Math.max(offsets.logStartOffset, offsets.appendedSinceOffset ?? 0, offsets.logEndOffset - share);
    await this.scan(topic, window, partition, from, offsets.logEndOffset);
    this.followedTo(window, partition, offsets.logEndOffset);
  }

  /** Every record from `from` on (only in segments appended to within the window). */
  private async readFrom(topic: Topic, window: TopicWindow, partition: number, from: number): Promise<void> {
    const offsets = await this.reads.offsets(topic, partition, undefined, Date.now() - window.windowMs);
    await this.scan(topic, window, partition, Math.max(offsets.logStartOffset, offsets.appendedSinceOffset ?? 0, from), offsets.logEndOffset);
    this.followedTo(window, partition, offsets.logEndOffset);
  }

  private followedTo(window: TopicWindow, partition: number, end: number): void {
    const followed = window.followed.get(partition);
    if (followed === undefined || end > followed) window.followed.set(partition, end);
  }

  /**
   * This node stored a batch at [base, next) of the partition: its messageIDs are in the window
   * already, so the window has followed the log past it if nothing came between (another node's).
   */
  storedHere(topic: Topic, partition: number, base: number, next: number): void {
    const window = this.windows.get(topic.name);
    // A batch of a deleted topic says nothing of the topic made again under its name.
    if (window === undefined || window.windowMs === 0 || window.topic !== topic) return;
    if ((window.followed.get(partition) ?? 0) === base) window.followed.set(partition, next);
  }

  /**
   * Cluster mode: the partition's end is `end` (whichever node appended). What this node has not
   * taken in yet was appended by another node: its messageIDs are read into the window, so that a
   * producer resending to this node what it first sent to another (which died before answering)
   * is answered with the first copy. Reads of a partition do not overlap; notices meanwhile are
   * read after.
   */
  appendedElsewhere(topic: Topic, partition: number, end: number): void {
    if (this.closed) return;
    const window = this.windowFor(topic);
    if (window.windowMs === 0 || end <= (window.heard.get(partition) ?? 0)) return;
    window.heard.set(partition, end);
    if (!window.ready || window.following.has(partition)) return;
    // A moment's wait: this node's own batch, whose notice can come before its answer, is then known
    // without a read, and the notices of a burst are read together.
    window.following.add(partition);
    setTimeout(() => void this.follow(window, partition), FOLLOW_DELAY_MS).unref();
  }

  /** How far the window has taken in the partition's messageIDs (diagnostics and tests). */
  followedEnd(topic: Topic, partition: number): number {
    return this.windows.get(topic.name)?.followed.get(partition) ?? 0;
  }

  private async follow(window: TopicWindow, partition: number): Promise<void> {
    window.following.add(partition);
    try {
      for (;;) {
        if (this.closed || this.windows.get(window.topic.name) !== window) return;
        const from = window.followed.get(partition);
        // Never read back (a read that failed at start-up): what was appended within the window, as at start-up.
        if (from === undefined) {
          await this.readFrom(window.topic, window, partition, 0);
          continue;
        }
        const end = window.heard.get(partition) ?? 0;
        if (end <= from) return;
        await this.scan(window.topic, window, partition, from, end);
        this.followedTo(window, partition, end);
      }
    } catch (error) {
      // The next notice tries again; until then a resend of what is unread may be stored twice.
      this.logger.debug({ err: error, topic: window.topic.name, partition }, "could not read another node's messageIDs");
    } finally {
      window.following.delete(partition);
    }
  }

  /** Adds the messageIDs of the records from `offset` to `end` to the window (the first copy of each, if several). */
  private async scan(topic: Topic, window: TopicWindow, partition: number, offset: number, end: number): Promise<void> {
    const now = Date.now();
    while (offset < end && !this.closed) {
      const read = await this.reads.read(topic, partition, offset, READ_BYTES);
      if (read.failure !== undefined) throw new RillError(read.failure.code === 'unknown-partition' ? 'unavailable' : 'storage-error', read.failure.message);
      if (read.batches === null) break;
      const next = forEachMessageId(read.batches, offset, (recordOffset, messageId) => {
        if (messageId === null) return;
        const fingerprint = this.fingerprint.of(messageId, window.seed);
        const known = this.ids.find(fingerprint);
        if (known === null) this.ids.add(window.ring, fingerprint, partition, recordOffset, now);
        // In doubt, and there it is: stored.
        else if (known.ring.entry(known.slot) instanceof InDoubt) known.ring.stored(known.slot, partition, recordOffset);
        // Otherwise known already: the first copy in the log is the one (or a copy in flight will record itself).
      });
      if (next <= offset) break;
      offset = next;
    }
  }

  /** A messageID still in doubt after its partition was read was not stored: forgotten. */
  private forgetIfInDoubt(window: TopicWindow, messageId: string): void {
    const known = this.ids.find(this.fingerprint.of(messageId, window.seed));
    if (known !== null && known.ring.entry(known.slot) instanceof InDoubt) known.ring.dropped(known.slot);
  }

  private unread(window: TopicWindow, partition: number, from: number | null): UnreadPartition {
    let unread = window.unread.get(partition);
    if (unread === undefined) {
      unread = { from, messageIds: [] };
      window.unread.set(partition, unread);
    } else if (from === null || unread.from === null) unread.from = null;
    else unread.from = Math.min(unread.from, from);
    return unread;
  }

  private hold(window: TopicWindow, publish: HeldPublish): void {
    if (window.held.length >= MAX_HELD_PUBLISHES) {
      publish.ticket.settle(
        -1,
        new RillError('unavailable', `topic ${window.topic.name} is reading its recent messageIDs back from its log after a start; retry`),
      );
      return;
    }
    window.held.push(publish);
    this.heldCount++;
    this.held += publish.bytes;
  }

  /** The window is ready: held publishes go on in the order they came (or all fail with `failure`). */
  private release(window: TopicWindow, failure: RillError | null): void {
    window.ready = true;
    // Appends other nodes made while the window was read back.
    if (failure === null) for (const partition of window.heard.keys()) if (!window.following.has(partition)) void this.follow(window, partition);
    const held = window.held.splice(0);
    for (const publish of held) {
      this.heldCount--;
      this.held -= publish.bytes;
      if (failure !== null) publish.ticket.settle(-1, failure);
      else this.submit(publish.topic, publish.partition, publish.messageId, publish.ticket, publish.item, publish.store, publish.bytes);
    }
    if (this.heldCount === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Whether a topic's window may be changed to `windowMs` (there is a bound on different lengths). */
  acceptsWindow(windowMs: number): boolean {
    return windowMs === 0 || this.ids.hasRoomFor(windowMs);
  }

  /**
   * A topic's window changed length: read back anew from its log (publishes wait meanwhile). The
   * messageIDs it remembered stay until their old window is over.
   */
  windowChanged(topic: Topic): void {
    const old = this.windows.get(topic.name);
    this.windows.delete(topic.name);
    if (old !== undefined && old.held.length > 0)
      this.release(old, new RillError('unavailable', `topic ${topic.name} changed its deduplication window; retry`));
    void this.rebuild([topic]);
  }

  /** A topic was deleted: its held publishes fail, and a topic of the same name made later remembers none of its messageIDs. */
  forget(topic: Topic): void {
    const window = this.windows.get(topic.name);
    this.windows.delete(topic.name);
    this.incarnations.set(topic.name, (this.incarnations.get(topic.name) ?? 0) + 1);
    if (window !== undefined && window.held.length > 0) this.release(window, new RillError('unknown-topic', `topic ${topic.name} was deleted`));
  }

  private windowFor(topic: Topic): TopicWindow {
    let window = this.windows.get(topic.name);
    // A deleted topic, still held by someone (a transaction's SENDs): a window of its own, never
    // kept, so that a topic made again under its name does not inherit it.
    if (topic.deleted) {
      return window?.topic === topic ? window : new TopicWindow(topic, 0, this.ids.ringFor(0), 0);
    }
    if (window === undefined) {
      const windowMs = this.settings.windowOf(topic.name);
      // The seed tells a topic's messageIDs apart from those of a deleted topic of the same name.
      const incarnation = this.incarnations.get(topic.name);
      const seedName = incarnation === undefined ? topic.name : `${topic.name}\u0000${incarnation}`;
      window = new TopicWindow(topic, windowMs, this.ids.ringFor(windowMs), new Fingerprint().of(seedName, this.processSeed).a);
      this.windows.set(topic.name, window);
    }
    window.partitions = topic.partitions;
    return window;
  }

  private coveredPartitions(): number {
    let partitions = 0;
    for (const window of this.windows.values()) if (window.windowMs > 0) partitions += window.partitions;
    return partitions;
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

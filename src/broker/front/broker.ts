import type { RillConfig } from '../../config/index.js';
import { RillError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { BATCH_HEADER_BYTES, RecordBatchBuilder, type RecordHeaders } from '../../storage/index.js';
import type { BrokerHealth, LogStore } from '../log-store.js';
import type { AppendTicket } from './append-ticket.js';
import { Deduplicator } from './deduplication/index.js';
import { EmbeddedLogStore } from './embedded-store.js';
import type { PartitionAssignment, PartitionOffsets, PartitionSettings, WorkerFailure } from '../protocol.js';
import { TopicRegistry, type PartitionPlacement, type Topic } from './topic-registry.js';
import { defaultTopicSettings } from './topic-settings.js';
import { TopicTraffic } from './topic-traffic.js';

export type { AppendTicket } from './append-ticket.js';

export interface ReadResult extends PartitionOffsets {
  /** Whole record batches (the first may start before the offset asked for), or null if none. */
  batches: Buffer | null;
  failure?: WorkerFailure;
}

/**
 * Told of each batch stored in a partition: the new readable end and, to spare caught-up readers a
 * fetch, the stored batch itself (its first record at `baseOffset`).
 */
export type PartitionWatcher = (logEndOffset: number, batch: Buffer | null, baseOffset: number) => void;

interface PartitionSlot {
  topic: Topic;
  partition: number;
  worker: number;
  builder: RecordBatchBuilder | null;
  tickets: AppendTicket[];
  lastBatchBytes: number;
  watchers: Set<PartitionWatcher>;
  /**
   * The end of the partition after the last batch this thread had stored (0 if none since the
   * start). Other nodes' appends do not move it: it is where a read-back of this node's batches in
   * doubt starts, and they cannot be before it.
   */
  storedEnd: number;
  /** The highest end heard of, this node's appends and other nodes' (watchers are told of each new one once). */
  heardEnd: number;
  /** Records and bytes (of record batches) stored since the broker started, for metrics. */
  messagesIn: number;
  bytesIn: number;
}

interface InflightEntry {
  slot: PartitionSlot;
  tickets: AppendTicket[];
  /** Where the batch sits in the buffer sent to the worker, and its size. */
  position: number;
  size: number;
  /** When it was sent to the worker (performance.now()), for the publish latency. */
  sentAt: number;
}

/** What the broker reports once per stored batch (never per message): metrics take it. */
export type BatchObserver = (latencyMs: number) => void;

const MIN_BATCH_CAPACITY = 4 * 1024;
/** Builder buffers kept for the next turn's batches (a turn may fill one per partition). */
const MAX_POOLED_BUFFERS = 2048;
/** Builder buffers larger than this are not kept. */
const MAX_POOLED_BUFFER_BYTES = 64 * 1024;
/** Buffers that carried a turn's batches to a worker, kept for reuse once handed back. */
const MAX_POOLED_PACKS = 16;
const MAX_POOLED_PACK_BYTES = 8 * 1024 * 1024;

/**
 * The gateway thread's face of the broker workers. It collects the records published in one
 * event-loop turn into one batch per partition, sends each worker a single message per turn
 * carrying all of its batches packed in one buffer (transferred, not copied: a turn's keyless
 * records spread over a thousand partitions make a thousand small batches, and one buffer costs
 * one transfer where a thousand cost a thousand), and tells each ticket what became of its
 * record. Reads go to the partition's worker; watchers hear of every stored batch.
 */
export class Broker implements PartitionPlacement {
  readonly topics: TopicRegistry;
  /** Idempotent publishing: each topic's recent messageIDs (deduplication/). */
  readonly deduplication: Deduplicator;
  private readonly slots: PartitionSlot[] = [];
  private readonly dirty: PartitionSlot[] = [];
  private flushScheduled = false;
  private inflight = 0;
  private readonly lowWaterListeners = new Set<() => void>();
  private readonly idleWaiters: Array<() => void> = [];
  private readonly bufferPool: ArrayBuffer[] = [];
  private readonly packPool: ArrayBuffer[] = [];
  /** Records handed out to consumers (push, tails, pulls), per topic: the delivery paths add to it. */
  readonly delivered = new TopicTraffic();
  /** Told of each stored batch: the time from its hand-over to the worker to its answer (write and fsync). */
  batchObserver: BatchObserver | null = null;
  /** Told of each group commit's journal fdatasync (its duration), once, by the first answer it covered. */
  syncObserver: BatchObserver | null = null;
  private deduplicationRebuilt = false;
  /** Cluster mode: the messageIDs other nodes append are read into this node's windows (storage.postgres.deduplicateAcrossNodes). */
  private readonly deduplicateAcrossNodes: boolean;

  private constructor(
    private readonly config: RillConfig,
    /** Where the partitions' batches are kept (the embedded workers, or PostgreSQL). */
    private readonly store: LogStore,
    logger: Logger,
  ) {
    this.store.onRestarted((index) => logger.info({ worker: index }, 'broker worker recovered its partitions'));
    this.topics = new TopicRegistry(store.topicStore, { ...config.topics, ...config.limits, defaults: defaultTopicSettings(config) }, this, logger);
    this.store.start();
    try {
      this.topics.load(store.topicStore.load());
      for (const { name, partitions: perLane, priorityLanes: lanes = 1 } of config.topics.definitions) {
        const existing = this.topics.get(name);
        const partitions = perLane * lanes;
        if (existing === undefined) this.topics.create(name, perLane, lanes);
        else if (existing.lanes !== lanes || (lanes > 1 && existing.partitions !== partitions)) {
          logger.warn(
            { topic: name, configured: { partitions: perLane, lanes }, existing: { partitions: existing.partitions, lanes: existing.lanes } },
            'topic was created with other priority lanes or partitions; a topic with priority lanes is fixed at creation',
          );
        } else if (existing.partitions < partitions) this.topics.addPartitions(name, partitions);
        else if (existing.partitions > partitions) {
          logger.warn(
            { topic: name, configured: partitions, existing: existing.partitions },
            'topic has more partitions than configured; partitions are never removed',
          );
        }
      }
    } catch (error) {
      // A damaged topic.json, a definition past a limit: the workers already run and must stop too.
      void this.store.close();
      throw error;
    }
    this.deduplicateAcrossNodes = config.storage.postgres.deduplicateAcrossNodes;
    this.deduplication = new Deduplicator(
      this,
      {
        windowOf: (topic) => this.topics.get(topic)?.settings.deduplicationWindowMs ?? 0,
        maxMessageIds: config.limits.maxDeduplicationIds,
      },
      logger,
    );
    this.topics.listen({
      settingsChanged: (topic, before) => {
        if (topic.settings.deduplicationWindowMs !== before.deduplicationWindowMs) this.deduplication.windowChanged(topic);
      },
      deleted: (topic) => this.deduplication.forget(topic),
    });
    // Several nodes on one store: what another node appended reaches this node's readers, and
    // topics made or changed there are taken as they are.
    this.store.onAppended?.((partitionId, end) => this.appendedElsewhere(partitionId, end));
    this.store.onTopicChanged?.((change) => this.topics.adopt(change));
    this.store.onRestarted((index) => {
      void this.deduplication.workerRestarted(this.topics.listPublic(), (topic, partition) => this.slot(topic, partition).worker === index);
    });
  }

  /**
   * Starts the broker on a store (the embedded one unless another is given: recovered from the
   * data directory first) with the topics it holds.
   */
  static async start(config: RillConfig, logger: Logger, store?: LogStore): Promise<Broker> {
    return new Broker(config, store ?? (await EmbeddedLogStore.open(config, logger)), logger);
  }

  /** This node's name in a cluster (undefined on the embedded store). */
  get nodeId(): string | undefined {
    return this.store.nodeId;
  }

  /** Which store keeps the partitions' batches. */
  get storeKind(): LogStore['kind'] {
    return this.store.kind;
  }

  /**
   * Reads the deduplication windows back from the log (after anything that appends at start-up:
   * the transactions to complete). Not awaited: the broker serves at once; publishes to a topic
   * wait until its own window is back.
   */
  startDeduplication(): void {
    void this.deduplication.rebuild(this.topics.listPublic()).then(() => {
      this.deduplicationRebuilt = true;
    });
  }

  /** The deduplication windows are read back from the log (GET /ready waits for it). */
  get deduplicationReady(): boolean {
    return this.deduplicationRebuilt;
  }

  /** Records and bytes stored per partition since the start, for metrics. */
  storedTraffic(): Array<{ topic: string; partition: number; messages: number; bytes: number }> {
    // Internal topics are left out: their writes are the broker's own (a transaction's batches would count twice).
    return this.slots.flatMap((slot) =>
      slot === undefined || slot.topic.name.startsWith('__')
        ? []
        : [{ topic: slot.topic.name, partition: slot.partition, messages: slot.messagesIn, bytes: slot.bytesIn }],
    );
  }

  /** Broker worker restarts since the start. */
  get workerRestarts(): number {
    return this.store.restarts;
  }

  /** A topic by name (internal ones included); `topics` has the rest of the registry. */
  topic(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  get workerCount(): number {
    return this.store.workerCount;
  }

  place(topic: Topic, assignments: Map<number, PartitionAssignment[]>): void {
    for (const [worker, list] of assignments) {
      for (const { id, partition } of list) {
        this.slots[id] = {
          topic,
          partition,
          worker,
          builder: null,
          tickets: [],
          lastBatchBytes: 0,
          watchers: new Set(),
          storedEnd: 0,
          heardEnd: 0,
          messagesIn: 0,
          bytesIn: 0,
        };
      }
      this.store.open(worker, list);
    }
  }

  reconfigure(topic: Topic): void {
    const { compression, retentionMs, retentionBytes, cleanupPolicy, deduplicationWindowMs: minCompactionLagMs } = topic.settings;
    const byWorker = new Map<number, PartitionSettings[]>();
    topic.partitionIds.forEach((id) => {
      const slot = this.slots[id];
      if (slot === undefined) return;
      const list = byWorker.get(slot.worker) ?? [];
      list.push({ id, compression, retentionMs, retentionBytes, cleanupPolicy, minCompactionLagMs });
      byWorker.set(slot.worker, list);
    });
    for (const [worker, settings] of byWorker) this.store.configure(worker, settings);
  }

  checkRemovable(topic: Topic): void {
    for (const id of topic.partitionIds) {
      const slot = this.slots[id];
      if (slot !== undefined && !this.store.isUp(slot.worker)) {
        throw new RillError('unavailable', `broker worker ${slot.worker}, which holds partitions of topic "${topic.name}", is down: retry once it is back`);
      }
    }
  }

  /**
   * Closes a deleted topic's partitions: what was published to it in this turn is sent first (and
   * answered), its watchers let go, and each worker closes its share and marks it in its journal
   * as never to be replayed (checkRemovable first: every one of those workers is up).
   */
  async remove(topic: Topic): Promise<void> {
    const byWorker = new Map<number, number[]>();
    for (const id of topic.partitionIds) {
      const slot = this.slots[id];
      if (slot === undefined) continue;
      byWorker.set(slot.worker, [...(byWorker.get(slot.worker) ?? []), id]);
    }
    if (this.flushScheduled) this.flush();
    for (const id of topic.partitionIds) delete this.slots[id];
    const drops = [...byWorker].map(async ([worker, partitionIds]) => {
      this.store.forget(worker, partitionIds);
      const reply = await this.store.call(worker, 'drop', { partitionIds });
      if (reply.failure !== undefined) throw new RillError('storage-error', reply.failure.message);
    });
    await Promise.all(drops);
  }

  /** Bytes published but not yet acknowledged by storage. */
  get inflightBytes(): number {
    return this.inflight;
  }

  /** Whether producers should be paused until `onInflightLow` fires (publishes held for deduplication count too). */
  get overloaded(): boolean {
    return this.inflight + this.deduplication.heldBytes > this.config.limits.maxInflightBytes;
  }

  onInflightLow(listener: () => void): void {
    this.lowWaterListeners.add(listener);
  }

  /** Queues one record; it is sent to its worker at the end of this event-loop turn. */
  append(
    topic: Topic,
    partition: number,
    timestamp: number,
    key: string | null,
    messageId: string | null,
    headers: RecordHeaders | null,
    /** Null: a tombstone (a key's deletion, in a compacted topic). */
    value: Buffer | null,
    ticket: AppendTicket,
  ): void {
    const slot = this.slots[topic.partitionIds[partition] ?? -1];
    if (slot === undefined) {
      // A topic deleted after the publisher found it (a transaction's SENDs, held since): refused, never thrown at it.
      ticket.settle(-1, new RillError('unknown-topic', `topic ${topic.name} has no partition ${partition} (deleted?)`));
      return;
    }
    if (slot.builder === null) {
      slot.builder = new RecordBatchBuilder(Math.max(MIN_BATCH_CAPACITY, slot.lastBatchBytes + (slot.lastBatchBytes >> 2)), this.bufferPool.pop());
      this.dirty.push(slot);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    }
    const before = slot.builder.byteLength;
    slot.builder.append(timestamp, key, messageId, headers, value);
    this.inflight += slot.builder.byteLength - before;
    slot.tickets.push(ticket);
  }

  /** Appends one record for the broker's own use; resolves to its offset once stored. */
  appendAndWait(
    topic: Topic,
    partition: number,
    timestamp: number,
    key: string | null,
    messageId: string | null,
    headers: RecordHeaders | null,
    value: Buffer | null,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      this.append(topic, partition, timestamp, key, messageId, headers, value, {
        settle: (offset, failure) => (failure === null ? resolve(offset) : reject(failure)),
      });
    });
  }

  /**
   * Appends a batch built elsewhere (a transaction's, with its producer named) as it is, in its own
   * message to the partition's worker; resolves to its base offset once stored, or rejects with why
   * not (a WorkerStoppedError when the worker stopped before answering: it may have been stored).
   */
  async appendBatch(topic: Topic, partition: number, batch: Buffer, recordCount: number): Promise<number> {
    const slot = this.slot(topic, partition);
    const buffer = new ArrayBuffer(batch.length);
    const bytes = new Uint8Array(buffer);
    bytes.set(batch);
    const reply = await this.store.call(slot.worker, 'append', { partitionIds: [topic.partitionIds[partition]!], batches: [bytes] }, [buffer]);
    const failure = reply.failures[0];
    if (failure !== null && failure !== undefined) throw appendFailure(failure);
    const baseOffset = reply.baseOffsets[0]!;
    const end = baseOffset + recordCount;
    slot.messagesIn += recordCount;
    slot.bytesIn += batch.length;
    if (end > slot.storedEnd) slot.storedEnd = end;
    const stored = reply.buffers[0] === undefined ? null : Buffer.from(reply.buffers[0], 0, batch.length);
    for (const watcher of slot.watchers) watcher(end, stored, baseOffset);
    return baseOffset;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const perWorker = new Map<number, PartitionSlot[]>();
    for (const slot of this.dirty) {
      const list = perWorker.get(slot.worker);
      if (list === undefined) perWorker.set(slot.worker, [slot]);
      else list.push(slot);
    }
    this.dirty.length = 0;
    for (const [worker, slots] of perWorker) {
      const partitionIds: number[] = [];
      const finished: Buffer[] = [];
      let total = 0;
      for (const slot of slots) {
        const batch = slot.builder!.finish();
        slot.lastBatchBytes = batch.length;
        slot.builder = null;
        finished.push(batch);
        total += batch.length;
      }
      const pack = this.takePack(total);
      const packed = Buffer.from(pack, 0, total);
      const batches: Uint8Array[] = [];
      const entries: InflightEntry[] = [];
      const sentAt = performance.now();
      let position = 0;
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[i]!;
        const batch = finished[i]!;
        batch.copy(packed, position);
        partitionIds.push(slot.topic.partitionIds[slot.partition]!);
        batches.push(new Uint8Array(pack, position, batch.length));
        entries.push({ slot, tickets: slot.tickets, position, size: batch.length, sentAt });
        slot.tickets = [];
        position += batch.length;
        this.keepBuilderBuffer(batch.buffer as ArrayBuffer);
      }
      this.store.call(worker, 'append', { partitionIds, batches }, [pack]).then(
        (reply) => {
          if (reply.syncMs !== undefined) this.syncObserver?.(reply.syncMs);
          this.settle(entries, reply.baseOffsets, reply.failures, reply.buffers[0]);
        },
        (error: Error) => {
          const failure = error instanceof RillError ? error : new RillError('storage-error', `broker error: ${error.message}`);
          this.settle(
            entries,
            null,
            entries.map(() => failure),
            undefined,
          );
        },
      );
    }
  };

  /** A partition has a new end (another node appended to it): its watchers fetch what they lack. */
  private appendedElsewhere(partitionId: number, end: number): void {
    const slot = this.slots[partitionId];
    if (slot === undefined) return;
    // Before the check below: another node's batch may lie before one of this node's that settled first.
    if (this.deduplicateAcrossNodes && this.deduplication.covers(slot.topic)) this.deduplication.appendedElsewhere(slot.topic, slot.partition, end);
    if (end <= Math.max(slot.storedEnd, slot.heardEnd)) return;
    slot.heardEnd = end;
    for (const watcher of slot.watchers) watcher(end, null, -1);
  }

  /** A buffer of at least `bytes` to carry a turn's batches to a worker: a pooled one, or a new one. */
  private takePack(bytes: number): ArrayBuffer {
    for (let i = this.packPool.length - 1; i >= 0; i--) {
      const pack = this.packPool[i]!;
      if (pack.byteLength < bytes) continue;
      this.packPool.splice(i, 1);
      return pack;
    }
    // Sized to the turn (rounded up to 4 KiB): a pack watchers keep views of is never reused, and a
    // large one made for every turn would only feed the garbage collector.
    return new ArrayBuffer(Math.ceil(Math.max(bytes, 1) / 4096) * 4096);
  }

  private keepBuilderBuffer(buffer: ArrayBuffer): void {
    if (buffer.byteLength <= MAX_POOLED_BUFFER_BYTES && this.bufferPool.length < MAX_POOLED_BUFFERS) this.bufferPool.push(buffer);
  }

  /** `pack`: the buffer that carried the batches, handed back by the worker (none when the call failed). */
  private settle(
    entries: InflightEntry[],
    baseOffsets: number[] | null,
    failures: Array<WorkerFailure | RillError | null>,
    pack: ArrayBuffer | undefined,
  ): void {
    const wasHigh = this.inflight > this.config.limits.maxInflightBytes / 2;
    let watched = false;
    for (let i = 0; i < entries.length; i++) {
      const { slot, tickets, position, size } = entries[i]!;
      this.inflight -= size - BATCH_HEADER_BYTES;
      const failed = failures[i] ?? null;
      const failure = failed === null ? null : failed instanceof RillError ? failed : appendFailure(failed);
      const baseOffset = failure === null ? baseOffsets![i]! : -1;
      for (let t = 0; t < tickets.length; t++) tickets[t]!.settle(failure === null ? baseOffset + t : -1, failure);
      if (failure === null) {
        slot.messagesIn += tickets.length;
        slot.bytesIn += size;
        // One observation per worker call: its batches were written and made durable together.
        if (i === 0) this.batchObserver?.(performance.now() - entries[0]!.sentAt);
      }
      if (failure === null && baseOffset + tickets.length > slot.storedEnd) slot.storedEnd = baseOffset + tickets.length;
      if (failure === null && this.store.onAppended !== undefined)
        this.deduplication.storedHere(slot.topic, slot.partition, baseOffset, baseOffset + tickets.length);
      if (failure === null && slot.watchers.size > 0) {
        // The stored batch goes to the watchers (and the buffer is not reused: they may hold its records).
        watched = true;
        const batch = pack === undefined ? null : Buffer.from(pack, position, size);
        const end = baseOffset + tickets.length;
        for (const watcher of slot.watchers) watcher(end, batch, baseOffset);
      }
    }
    if (!watched && pack !== undefined && pack.byteLength <= MAX_POOLED_PACK_BYTES && this.packPool.length < MAX_POOLED_PACKS) this.packPool.push(pack);
    if (wasHigh && this.inflight <= this.config.limits.maxInflightBytes / 2) {
      for (const listener of this.lowWaterListeners) listener();
    }
    if (this.inflight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Resolves once every record handed to the broker (or held for deduplication) has been answered (at once if none is waiting). */
  async whenIdle(): Promise<void> {
    await this.deduplication.whenNothingHeld();
    if (this.inflight === 0 && !this.flushScheduled) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** The broker worker that owns a partition. */
  workerOf(topic: Topic, partition: number): number {
    return this.slot(topic, partition).worker;
  }

  /** Cluster mode: how far the partition's messageIDs are in this node's deduplication window (diagnostics and tests). */
  deduplicationFollowed(topic: Topic, partition: number): number {
    return this.deduplication.followedEnd(topic, partition);
  }

  /** The end of a partition after the last batch this thread saw stored there (0 if none since the start, or if its topic was deleted). */
  storedEnd(topic: Topic, partition: number): number {
    // Asked when a batch settles, which may be after its topic was deleted.
    return this.slots[topic.partitionIds[partition] ?? -1]?.storedEnd ?? 0;
  }

  /** Calls `listener` with the new readable end each time a partition gets new stored records. */
  watch(topic: Topic, partition: number, listener: PartitionWatcher): () => void {
    const slot = this.slot(topic, partition);
    slot.watchers.add(listener);
    return () => slot.watchers.delete(listener);
  }

  async read(topic: Topic, partition: number, offset: number, maxBytes: number): Promise<ReadResult> {
    const partitionId = topic.partitionIds[partition]!;
    const reply = await this.store.call(this.slot(topic, partition).worker, 'read', { partitionId, offset, maxBytes });
    const batches = reply.data === null ? null : Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
    return { batches, logStartOffset: reply.logStartOffset, logEndOffset: reply.logEndOffset, failure: reply.failure };
  }

  /** `appendedSince`: also an offset at or before every record the broker appended since then (its clock). */
  async offsets(topic: Topic, partition: number, timestamp?: number, appendedSince?: number): Promise<PartitionOffsets> {
    const partitionId = topic.partitionIds[partition]!;
    const reply = await this.store.call(this.slot(topic, partition).worker, 'offsets', { partitionId, timestamp, appendedSince });
    if (reply.failure !== undefined) throw new RillError(reply.failure.code === 'unknown-partition' ? 'unavailable' : 'storage-error', reply.failure.message);
    return {
      logStartOffset: reply.logStartOffset,
      logEndOffset: reply.logEndOffset,
      offsetForTimestamp: reply.offsetForTimestamp,
      appendedSinceOffset: reply.appendedSinceOffset,
      sizeBytes: reply.sizeBytes,
      segments: reply.segments,
    };
  }

  /** Cluster mode: the reads that went to the database (however many readers shared each); undefined on the embedded store. */
  get databaseReads(): number | undefined {
    return this.store.databaseReads;
  }

  /** Requests in flight to a worker (for diagnostics and tests). */
  pendingRequests(worker: number): number {
    return this.store.pendingRequests(worker);
  }

  killWorker(index: number): Promise<void> {
    return this.store.killWorker(index);
  }

  async close(): Promise<void> {
    this.deduplication.close();
    if (this.flushScheduled) this.flush();
    await this.store.close();
  }

  private slot(topic: Topic, partition: number): PartitionSlot {
    const slot = this.slots[topic.partitionIds[partition] ?? -1];
    // A partition past the topic's end, or of a topic deleted since the caller found it.
    if (slot === undefined) throw new RillError('unknown-topic', `topic ${topic.name} has no partition ${partition}`);
    return slot;
  }

  /** Whether every broker worker is up; otherwise which are not, and why (GET /health). */
  health(): BrokerHealth {
    return this.store.health();
  }
}

/** A worker's failure to store a batch, as the client hears of it. */
function appendFailure(failure: WorkerFailure): RillError {
  if (failure.code === 'disk-full') return new RillError('disk-full', failure.message);
  // The partition moved away from the worker meanwhile (it restarted): sending again may succeed.
  if (failure.code === 'unknown-partition' || failure.code === 'unavailable') return new RillError('unavailable', failure.message);
  return new RillError('storage-error', failure.message);
}

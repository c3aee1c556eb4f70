import murmurhash3 from 'murmurhash3js';
import { resolveDataDir, type RillConfig } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import { BATCH_HEADER_BYTES, readBatchInfo, RecordBatchBuilder, TopicCatalog, type RecordHeaders, type TopicDefinition } from '../storage/index.js';
import type { FromWorker, PartitionOffsets } from './messages.js';
import { WorkerSupervisor } from './supervisor.js';
import { RillError } from '../errors/index.js';

export interface Topic {
  readonly name: string;
  readonly partitions: number;
  /** Global partition ids, by partition number. */
  readonly partitionIds: readonly number[];
}

type MutableTopic = { name: string; partitions: number; partitionIds: number[]; createdAt: number };

export interface AppendFailure {
  message: string;
  /** True when the same publish may succeed if sent again (a worker restarted). */
  retriable: boolean;
}

/** What became of the records one producer-facing batch carried, in publish order. */
export interface AppendOutcome<T> {
  topic: Topic;
  partition: number;
  /** Offset of tickets[0]; the others follow densely. -1 on failure. */
  baseOffset: number;
  tickets: T[];
  failure: AppendFailure | null;
}

export interface ReadResult extends PartitionOffsets {
  /** Whole record batches (the first may start before the offset asked for), or null if none. */
  batches: Buffer | null;
  error?: string;
}

/**
 * A ticket for records the broker's own clients append (committed offsets, dead letters): it
 * settles itself, and the gateway's outcome handler passes it by.
 */
export class CallbackTicket {
  constructor(readonly settle: (offset: number, failure: AppendFailure | null) => void) {}
}

interface PartitionSlot {
  topic: Topic;
  partition: number;
  worker: number;
  builder: RecordBatchBuilder | null;
  tickets: unknown[];
  lastBatchBytes: number;
  watchers: Set<PartitionWatcher>;
}

/**
 * Told of each batch stored in a partition: the new readable end and, to spare caught-up readers a
 * fetch, the stored batch itself (its first record at `baseOffset`).
 */
export type PartitionWatcher = (logEndOffset: number, batch: Buffer | null, baseOffset: number) => void;

interface InflightEntry {
  slot: PartitionSlot;
  tickets: unknown[];
  bytes: number;
}

const MIN_BATCH_CAPACITY = 4 * 1024;
/** Batch buffers kept for reuse once workers hand them back. */
const MAX_POOLED_BUFFERS = 64;

/**
 * The gateway thread's face of the broker cluster. It owns the topic catalog, collects the
 * records published in one event-loop turn into one batch per partition, and sends each worker
 * a single message per turn carrying all of its batches, transferred rather than copied.
 */
export class Broker<T> {
  private readonly topics = new Map<string, Topic>();
  private readonly slots: PartitionSlot[] = [];
  private readonly dirty: PartitionSlot[] = [];
  private flushScheduled = false;
  private inflight = 0;
  private readonly catalog: TopicCatalog;
  private readonly supervisor: WorkerSupervisor;
  private readonly lowWaterListeners = new Set<() => void>();
  private readonly bufferPool: ArrayBuffer[] = [];
  private readonly growthListeners = new Set<(topic: string) => void>();

  private constructor(
    private readonly config: RillConfig,
    private readonly logger: Logger,
    private readonly onOutcome: (outcome: AppendOutcome<T>) => void,
  ) {
    this.catalog = new TopicCatalog(resolveDataDir(config));
    this.supervisor = new WorkerSupervisor(
      { storage: config.storage, logLevel: config.log.level },
      config.brokers.workers,
      logger,
    );
    this.supervisor.on('worker-restarted', (index: number) => this.logger.info({ worker: index }, 'broker worker recovered its partitions'));
  }

  static start<T>(config: RillConfig, logger: Logger, onOutcome: (outcome: AppendOutcome<T>) => void): Broker<T> {
    const broker = new Broker<T>(config, logger, onOutcome);
    broker.supervisor.start();
    for (const definition of broker.catalog.load()) broker.register(definition);
    for (const { name, partitions } of config.topics.definitions) {
      const existing = broker.topics.get(name);
      if (existing === undefined) broker.createTopic(name, partitions);
      else if (existing.partitions < partitions) broker.addPartitions(name, partitions);
      else if (existing.partitions > partitions) {
        logger.warn({ topic: name, configured: partitions, existing: existing.partitions }, 'topic has more partitions than configured; partitions are never removed');
      }
    }
    return broker;
  }

  get workerCount(): number {
    return this.supervisor.workerCount;
  }

  /** Bytes published but not yet acknowledged by storage. */
  get inflightBytes(): number {
    return this.inflight;
  }

  topic(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  listTopics(): Topic[] {
    return [...this.topics.values()];
  }

  createTopic(name: string, partitions: number): Topic {
    const existing = this.topics.get(name);
    if (existing !== undefined) return existing;
    const definition: TopicDefinition = { name, partitions, createdAt: Date.now() };
    this.catalog.save(definition);
    const topic = this.register(definition);
    this.logger.info({ topic: name, partitions }, 'topic created');
    return topic;
  }

  private register(definition: TopicDefinition): Topic {
    const topic: MutableTopic = { name: definition.name, partitions: 0, partitionIds: [], createdAt: definition.createdAt };
    this.openPartitions(topic, definition.partitions);
    this.topics.set(definition.name, topic);
    return topic;
  }

  /** Opens partitions `topic.partitions` .. `count - 1` on their workers. */
  private openPartitions(topic: MutableTopic, count: number): void {
    const topicHash = murmurhash3.x86.hash32(topic.name) >>> 0;
    const byWorker = new Map<number, Array<{ id: number; topic: string; partition: number; directory: string }>>();
    for (let partition = topic.partitions; partition < count; partition++) {
      const id = this.slots.length;
      const worker = (topicHash + partition) % this.supervisor.workerCount;
      topic.partitionIds.push(id);
      this.slots.push({ topic, partition, worker, builder: null, tickets: [], lastBatchBytes: 0, watchers: new Set() });
      const list = byWorker.get(worker) ?? [];
      list.push({ id, topic: topic.name, partition, directory: this.catalog.partitionDirectory(topic.name, partition) });
      byWorker.set(worker, list);
    }
    for (const [worker, assignments] of byWorker) this.supervisor.open(worker, assignments);
    topic.partitions = count;
  }

  /**
   * Grows a topic to `count` partitions (partitions are never removed). As in Kafka, keys then map
   * to partitions anew: per-key order holds within each partition count.
   */
  addPartitions(name: string, count: number): Topic {
    const topic = this.topics.get(name) as MutableTopic | undefined;
    if (topic === undefined) throw new Error(`no topic "${name}"`);
    if (count <= topic.partitions) throw new Error(`topic "${name}" has ${topic.partitions} partitions; a topic can only grow`);
    const before = topic.partitions;
    this.openPartitions(topic, count);
    this.catalog.save({ name, partitions: count, createdAt: topic.createdAt });
    this.logger.info({ topic: name, from: before, to: count }, 'topic partitions added');
    for (const listener of this.growthListeners) listener(name);
    return topic;
  }

  /** Calls `listener` with a topic's name whenever it gains partitions. */
  onPartitionsAdded(listener: (topic: string) => void): void {
    this.growthListeners.add(listener);
  }

  /** Queues one record; it is sent to its worker at the end of this event-loop turn. */
  append(
    topic: Topic,
    partition: number,
    timestamp: number,
    key: string | null,
    messageId: string | null,
    headers: RecordHeaders | null,
    value: Buffer,
    ticket: T,
  ): void {
    const slot = this.slots[topic.partitionIds[partition]];
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
      const batches: Uint8Array[] = [];
      const transfer: ArrayBuffer[] = [];
      const entries: InflightEntry[] = [];
      for (const slot of slots) {
        const batch = slot.builder!.finish();
        slot.lastBatchBytes = batch.length;
        slot.builder = null;
        partitionIds.push(slot.topic.partitionIds[slot.partition]);
        batches.push(batch);
        transfer.push(batch.buffer as ArrayBuffer);
        entries.push({ slot, tickets: slot.tickets, bytes: batch.length - BATCH_HEADER_BYTES });
        slot.tickets = [];
      }
      const requestId = this.supervisor.newRequestId();
      this.supervisor
        .request<Extract<FromWorker, { type: 'appended' }>>(worker, { type: 'append', requestId, partitionIds, batches }, transfer)
        .then(
          (reply) => this.settle(entries, reply.baseOffsets, reply.errors, false, reply.buffers),
          (error: Error) => this.settle(entries, null, null, error instanceof RillError && error.retriable ? error.message : `broker error: ${error.message}`),
        );
    }
  };

  private settle(
    entries: InflightEntry[],
    baseOffsets: number[] | null,
    errors: Array<string | null> | null,
    failure: string | false,
    buffers: ArrayBuffer[] = [],
  ): void {
    const wasHigh = this.inflight > this.config.limits.maxInflightBytes / 2;
    for (let i = 0; i < entries.length; i++) {
      const { slot, tickets, bytes } = entries[i];
      this.inflight -= bytes;
      const error = failure !== false ? failure : errors![i];
      const baseOffset = error === null ? baseOffsets![i] : -1;
      const appendFailure = error === null ? null : { message: error, retriable: failure !== false };
      for (let t = 0; t < tickets.length; t++) {
        const ticket = tickets[t];
        if (ticket instanceof CallbackTicket) ticket.settle(appendFailure === null ? baseOffset + t : -1, appendFailure);
      }
      this.onOutcome({
        topic: slot.topic,
        partition: slot.partition,
        baseOffset,
        tickets: tickets as T[],
        failure: appendFailure,
      });
      const returned = buffers[i];
      if (error === null && slot.watchers.size > 0) {
        // The stored batch goes to the watchers (and is not reused: they may hold its records).
        const batch = returned === undefined ? null : Buffer.from(returned, 0, readBatchInfo(Buffer.from(returned)).size);
        const end = baseOffset + tickets.length;
        for (const watcher of slot.watchers) watcher(end, batch, baseOffset);
      } else if (returned !== undefined && this.bufferPool.length < MAX_POOLED_BUFFERS) this.bufferPool.push(returned);
    }
    if (wasHigh && this.inflight <= this.config.limits.maxInflightBytes / 2) {
      for (const listener of this.lowWaterListeners) listener();
    }
  }

  /** Appends one record for the broker's own use; resolves to its offset once stored. */
  appendAndWait(topic: Topic, partition: number, timestamp: number, key: string | null, messageId: string | null, headers: RecordHeaders | null, value: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const ticket = new CallbackTicket((offset, failure) => (failure === null ? resolve(offset) : reject(new Error(failure.message))));
      this.append(topic, partition, timestamp, key, messageId, headers, value, ticket as T);
    });
  }

  /** Whether producers should be paused until `onInflightLow` fires. */
  get overloaded(): boolean {
    return this.inflight > this.config.limits.maxInflightBytes;
  }

  onInflightLow(listener: () => void): void {
    this.lowWaterListeners.add(listener);
  }

  /** Calls `listener` with the new readable end each time a partition gets new stored records. */
  watch(topic: Topic, partition: number, listener: PartitionWatcher): () => void {
    const slot = this.slots[topic.partitionIds[partition]];
    slot.watchers.add(listener);
    return () => slot.watchers.delete(listener);
  }

  async read(topic: Topic, partition: number, offset: number, maxBytes: number): Promise<ReadResult> {
    const id = topic.partitionIds[partition];
    const reply = await this.supervisor.request<Extract<FromWorker, { type: 'read-result' }>>(this.slots[id].worker, {
      type: 'read',
      requestId: this.supervisor.newRequestId(),
      partitionId: id,
      offset,
      maxBytes,
    });
    const batches = reply.data === null ? null : Buffer.from(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
    return { batches, logStartOffset: reply.logStartOffset, logEndOffset: reply.logEndOffset, error: reply.error };
  }

  async offsets(topic: Topic, partition: number, timestamp?: number): Promise<PartitionOffsets> {
    const id = topic.partitionIds[partition];
    const reply = await this.supervisor.request<Extract<FromWorker, { type: 'offsets-result' }>>(this.slots[id].worker, {
      type: 'offsets',
      requestId: this.supervisor.newRequestId(),
      partitionId: id,
      timestamp,
    });
    if (reply.error !== undefined) throw new Error(reply.error);
    return { logStartOffset: reply.logStartOffset, logEndOffset: reply.logEndOffset, offsetForTimestamp: reply.offsetForTimestamp };
  }

  /** Requests in flight to a worker (for diagnostics and tests). */
  pendingRequests(worker: number): number {
    return this.supervisor.pendingRequests(worker);
  }

  killWorker(index: number): Promise<void> {
    return this.supervisor.killWorker(index);
  }

  async close(): Promise<void> {
    if (this.flushScheduled) this.flush();
    await this.supervisor.close();
  }
}

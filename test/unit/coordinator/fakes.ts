import { pino } from 'pino';
import { TopicTraffic, type StoredRecord } from '../../../src/broker/index.js';
import {
  GroupCoordinator,
  OffsetStore,
  type Clock,
  type CoordinatorOptions,
  type GroupSettings,
  type LogAccess,
  type OffsetLog,
  type TimerHandle,
} from '../../../src/coordinator/index.js';
import { forEachRecord, RecordBatchBuilder } from '../../../src/storage/index.js';
import { buildControlBatch, stampBatch } from '../../../src/storage/record-batch/index.js';
import { testTopic } from '../../helpers/topics.js';

type Topic = NonNullable<ReturnType<LogAccess['topics']['get']>>;
type ReadResult = Awaited<ReturnType<LogAccess['read']>>;
type PartitionWatcher = Parameters<LogAccess['watch']>[2];

/** Lets every promise that can settle now settle (one turn of the real event loop; no time passes). */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

interface FakeTimer {
  due: number;
  every: number | null;
  callback: () => void;
}

/** A clock that stands still until the test moves it; timers fire in order as it passes them. */
export class FakeClock implements Clock {
  private time = 0;
  private nextId = 1;
  private readonly timers = new Map<number, FakeTimer>();
  private immediates: Array<() => void> = [];

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { due: this.time + Math.max(0, ms), every: null, callback });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { due: this.time + ms, every: ms, callback });
    return id;
  }

  clearInterval(handle: TimerHandle): void {
    this.timers.delete(handle as number);
  }

  setImmediate(callback: () => void): void {
    this.immediates.push(callback);
  }

  /** Lets promises settle and runs what was deferred to the end of the turn, until nothing is left. */
  async flush(): Promise<void> {
    for (;;) {
      await settle();
      if (this.immediates.length === 0) return;
      const due = this.immediates;
      this.immediates = [];
      for (const callback of due) callback();
    }
  }

  /** Moves time forward by `ms`, firing each timer at its due time and settling in between. */
  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    await this.flush();
    for (;;) {
      let nextId: number | undefined;
      let next: FakeTimer | undefined;
      for (const [id, timer] of this.timers) {
        if (timer.due <= target && (next === undefined || timer.due < next.due)) {
          nextId = id;
          next = timer;
        }
      }
      if (next === undefined || nextId === undefined) break;
      this.time = next.due;
      if (next.every === null) this.timers.delete(nextId);
      else next.due += next.every;
      next.callback();
      await this.flush();
    }
    this.time = target;
    await this.flush();
  }
}

interface MemoryPartition {
  batches: Buffer[];
  end: number;
  watchers: Set<PartitionWatcher>;
}

/** The broker's partitions in memory: real record batches, offsets stamped as the log would. */
class MemoryLog implements LogAccess {
  private readonly stored = new Map<string, { topic: Topic; partitions: MemoryPartition[] }>();
  readonly delivered = new TopicTraffic();

  /** A registry that auto-creates topics with one partition, as the coordinator's tests expect. */
  readonly topics: LogAccess['topics'] = {
    get: (name) => this.topic(name),
    resolve: (name) => this.topic(name) ?? this.createTopic(name, 1),
    internal: (name, partitions) => this.topic(name) ?? this.createTopic(name, partitions),
  };

  topic(name: string): Topic | undefined {
    return this.stored.get(name)?.topic;
  }

  createTopic(name: string, partitions: number): Topic {
    const existing = this.stored.get(name);
    if (existing !== undefined) return existing.topic;
    const topic = testTopic(name, partitions);
    this.stored.set(name, { topic, partitions: Array.from({ length: partitions }, () => ({ batches: [], end: 0, watchers: new Set() })) });
    return topic;
  }

  private partition(topic: Topic, partition: number): MemoryPartition {
    const found = this.stored.get(topic.name)?.partitions[partition];
    if (found === undefined) throw new Error(`no partition ${topic.name}/${partition}`);
    return found;
  }

  async read(topic: Topic, partition: number, offset: number, _maxBytes: number): Promise<ReadResult> {
    const { batches, end } = this.partition(topic, partition);
    if (offset < 0 || offset > end) {
      return { batches: null, logStartOffset: 0, logEndOffset: end, failure: { code: 'offset-out-of-range', message: `offset ${offset}` } };
    }
    // Each batch here holds one record, at the offset of its index.
    const from = batches.slice(offset);
    return { batches: from.length === 0 ? null : Buffer.concat(from), logStartOffset: 0, logEndOffset: end };
  }

  async offsets(topic: Topic, partition: number): Promise<{ logStartOffset: number; logEndOffset: number }> {
    return { logStartOffset: 0, logEndOffset: this.partition(topic, partition).end };
  }

  watch(topic: Topic, partition: number, listener: PartitionWatcher): () => void {
    const { watchers } = this.partition(topic, partition);
    watchers.add(listener);
    return () => watchers.delete(listener);
  }

  async appendAndWait(
    topic: Topic,
    partition: number,
    timestamp: number,
    key: string | null,
    messageId: string | null,
    headers: ReadonlyArray<readonly [string, string]> | null,
    value: Buffer,
  ): Promise<number> {
    return this.append(topic.name, partition, { timestamp, key, messageId, headers, value });
  }

  /** Stores one record at once and tells the partition's watchers; returns its offset. */
  append(
    topicName: string,
    partition: number,
    record: {
      value: string | Buffer;
      key?: string | null;
      messageId?: string | null;
      timestamp?: number;
      headers?: ReadonlyArray<readonly [string, string]> | null;
    },
  ): number {
    const topic = this.topic(topicName) ?? this.createTopic(topicName, partition + 1);
    const stored = this.partition(topic, partition);
    const builder = new RecordBatchBuilder(256);
    const value = typeof record.value === 'string' ? Buffer.from(record.value) : record.value;
    builder.append(record.timestamp ?? 0, record.key ?? null, record.messageId ?? null, record.headers ?? null, value);
    const batch = Buffer.from(builder.finish());
    const offset = stored.end;
    stampBatch(batch, offset);
    stored.batches.push(batch);
    stored.end = offset + 1;
    for (const watcher of [...stored.watchers]) watcher(stored.end, batch, offset);
    return offset;
  }

  /** Stores a transaction marker (a control batch): it takes an offset, as Kafka's do. */
  appendMarker(topicName: string, partition: number, type: 'commit' | 'abort'): number {
    const topic = this.topic(topicName) ?? this.createTopic(topicName, partition + 1);
    const stored = this.partition(topic, partition);
    const batch = buildControlBatch({ type, producerId: 1, producerEpoch: 0, coordinatorEpoch: 0, timestamp: 0 });
    const offset = stored.end;
    stampBatch(batch, offset);
    stored.batches.push(batch);
    stored.end = offset + 1;
    for (const watcher of [...stored.watchers]) watcher(stored.end, batch, offset);
    return offset;
  }

  records(topicName: string, partition: number): StoredRecord[] {
    const topic = this.topic(topicName);
    if (topic === undefined) return [];
    const records: StoredRecord[] = [];
    for (const batch of this.partition(topic, partition).batches) forEachRecord(batch, 0, (record) => void records.push(record));
    return records;
  }
}

/** The offsets log as a list of entries. */
export function memoryOffsetLog(): OffsetLog & { entries: Array<[string, string | null]> } {
  const entries: Array<[string, string | null]> = [];
  return {
    entries,
    write: async (key, value) => entries.push([key, value]) - 1,
    replay: async (visit, from = 0) => {
      for (let at = from; at < entries.length; at++) visit(entries[at]![0], entries[at]![1], at);
      return entries.length;
    },
  };
}

const DEFAULT_SETTINGS: GroupSettings = {
  assignor: 'range',
  sessionTimeoutMs: 30_000,
  resetPolicy: 'earliest',
  autoCommitIntervalMs: 0,
  maxDeliveries: 3,
  deadLetterSuffix: '.DLQ',
  deadLetterExpired: false,
};

/** A started coordinator on fake time over an in-memory log. */
export async function startCoordinator(settings: Partial<GroupSettings> = {}, options: Partial<CoordinatorOptions> = {}) {
  const clock = new FakeClock();
  const log = new MemoryLog();
  const offsetLog = memoryOffsetLog();
  const store = new OffsetStore(offsetLog, { clock });
  const coordinator = new GroupCoordinator(
    log,
    store,
    { defaults: { ...DEFAULT_SETTINGS, ...settings }, removeOnDisconnect: false, clock, ...options },
    pino({ level: 'silent' }),
  );
  await coordinator.start();
  return { clock, log, store, offsetLog, coordinator };
}

/** Tracks whether a promise has settled yet. */
export function track<T>(promise: Promise<T>): { readonly done: boolean; readonly value: T | undefined } {
  const state = { done: false, value: undefined as T | undefined };
  promise.then(
    (value) => Object.assign(state, { done: true, value }),
    () => Object.assign(state, { done: true }),
  );
  return state;
}

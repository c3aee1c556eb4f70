import { forEachRecord } from '../broker/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { TopicPartition } from './assignors.js';
import { systemClock, type Clock } from './clock.js';
import { DELIVERY_COUNT_PREFIX, DeliveryCounts } from './delivery-counts.js';
import type { CommittedRecordRef, GroupSettings } from './group.js';
import { committedOffsetRecord, decodeRecord, encodeRecord, groupSettingsRecord } from './stored-records.js';
import type { LogAccess } from './topics.js';

/** How committed offsets and group settings reach the disk and come back at start-up. */
export interface OffsetLog {
  /** Appends one entry durably (`value` null removes the key); resolves to its place in the log. */
  write(key: string, value: string | null): Promise<number>;
  /**
   * Calls `visit` for every entry from `from` (default: the first) to the end, oldest first;
   * resolves to where the next read starts. A log other nodes write to may visit again entries
   * read before (a reader skips an entry whose number it has).
   */
  replay(visit: (key: string, value: string | null, at: number) => void, from?: number): Promise<number>;
}

export interface OffsetStoreOptions {
  clock?: Clock;
  /** Told of records skipped at replay because they do not match their schema. */
  logger?: Pick<Logger, 'warn' | 'error'>;
  /**
   * Cluster mode: other nodes write to the same log, so what they wrote since is read (`catchUp`)
   * before a committed offset is relied on.
   */
  shared?: boolean;
}

const OFFSET_PREFIX = 'offset/';
const GROUP_PREFIX = 'group/';

function offsetKey(group: string, tp: TopicPartition): string {
  return `${OFFSET_PREFIX}${group}/${tp.topic}/${tp.partition}`;
}

/** The group and partition of an offset key (a group name has no '/': the first one ends it). */
function parseOffsetKey(key: string): { group: string; tp: TopicPartition } {
  const rest = key.slice(OFFSET_PREFIX.length);
  const groupEnd = rest.indexOf('/');
  const partitionStart = rest.lastIndexOf('/');
  return { group: rest.slice(0, groupEnd), tp: { topic: rest.slice(groupEnd + 1, partitionStart), partition: Number(rest.slice(partitionStart + 1)) } };
}

/**
 * Committed offsets and group settings, kept in memory and logged to the internal topic
 * `__consumer_offsets` (as Kafka does): the last entry written for a key wins at replay.
 */
export class OffsetStore {
  private readonly offsets = new Map<string, number>();
  /** Failed deliveries per group and message, kept in the same log. */
  readonly deliveries: DeliveryCounts;
  /** How many writes of each key were issued: only the last one issued sets the offset in memory. */
  private readonly writesIssued = new Map<string, number>();
  /** Offsets a transaction is committing, by key: who reads them waits until it is over. */
  private readonly pending = new Map<string, { done: Promise<void>; holders: number; release: () => void }>();
  private readonly groups = new Map<string, Partial<GroupSettings>>();
  private readonly clock: Clock;
  private readonly logger: Pick<Logger, 'warn' | 'error'> | undefined;
  private readonly log: OffsetLog;
  private readonly shared: boolean;
  /** Where reading the log stopped: catching up goes on from here. */
  private readEnd = 0;
  /** By key: the place in the log of the newest entry this store knows (written or read). */
  private readonly placed = new Map<string, number>();
  /** By key: this node's writes not yet stored. */
  private readonly writing = new Map<string, number>();
  /** By key: the newest entry read while this node's write of the key was on its way (it wins if it lies after that write). */
  private readonly readWhileWriting = new Map<string, { at: number; value: string | null }>();
  /** A catch-up failed (logged once until one succeeds). */
  private catchUpFailing = false;
  private catchingUp: Promise<void> | null = null;
  private catchUpAgain: Promise<void> | null = null;

  constructor(log: OffsetLog, options: OffsetStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
    this.shared = options.shared ?? false;
    this.log = this.shared ? this.tracked(log) : log;
    this.deliveries = new DeliveryCounts(this.log, options.logger);
  }

  /** Writes that keep `placed` and `writing`, so that catching up never puts an older entry over a newer one. */
  private tracked(log: OffsetLog): OffsetLog {
    return {
      write: async (key, value) => {
        this.writing.set(key, (this.writing.get(key) ?? 0) + 1);
        try {
          const at = await log.write(key, value);
          this.placed.set(key, Math.max(this.placed.get(key) ?? -1, at));
          return at;
        } finally {
          const left = this.writing.get(key)! - 1;
          if (left > 0) this.writing.set(key, left);
          else {
            this.writing.delete(key);
            // An entry another node wrote after every write of this node's (or after one that failed): the newest.
            const newer = this.readWhileWriting.get(key);
            this.readWhileWriting.delete(key);
            if (newer !== undefined && newer.at > (this.placed.get(key) ?? -1)) this.applyRead(key, newer.value, newer.at);
          }
        }
      },
      replay: (visit, from) => log.replay(visit, from),
    };
  }

  /**
   * Reads every committed offset and group setting back from the log. A damaged batch there stops
   * the reading, loudly: the broker still starts (groups then resume from the commits before it,
   * and read again what they had committed after: at least once holds), where refusing to start
   * would stop every group and producer.
   */
  async load(): Promise<void> {
    try {
      await this.replay();
    } catch (error) {
      if (!(error instanceof RillError)) throw error;
      this.logger?.error({ err: error }, 'committed offsets after a damaged batch of __consumer_offsets are lost: their groups resume from earlier commits');
    }
    // Counts below the committed offsets are done with.
    for (const [key, offset] of this.offsets) {
      const { group, tp } = parseOffsetKey(key);
      this.deliveries.committed(group, tp, offset);
    }
  }

  private async replay(): Promise<void> {
    this.readEnd = await this.log.replay((key, value, at) => this.apply(key, value, at));
  }

  /**
   * Cluster mode: reads what other nodes wrote to the log since it was last read (commits of a
   * partition's previous owner, group settings, delivery counts), so that a committed offset
   * relied on now is the newest. Calls made while a catch-up runs share the next one.
   */
  catchUp(): Promise<void> {
    if (!this.shared) return Promise.resolve();
    if (this.catchingUp === null) {
      this.catchingUp = this.readOn().finally(() => (this.catchingUp = null));
      return this.catchingUp;
    }
    this.catchUpAgain ??= this.catchingUp
      .catch(() => {})
      .then(() => {
        this.catchUpAgain = null;
        return this.catchUp();
      });
    return this.catchUpAgain;
  }

  private async readOn(): Promise<void> {
    try {
      await this.readNew();
      this.catchUpFailing = false;
    } catch (error) {
      // Committed offsets stay as last read: a new owner may start earlier than the last commit (at least once holds).
      if (!this.catchUpFailing) this.logger?.warn({ err: error }, 'could not read the commits other nodes made: committed offsets may be out of date');
      this.catchUpFailing = true;
    }
  }

  private async readNew(): Promise<void> {
    this.readEnd = await this.log.replay((key, value, at) => {
      if ((this.placed.get(key) ?? -1) >= at) return;
      if (this.writing.has(key)) {
        // This node's own write of the key is on its way: whichever lies later in the log wins, once it is stored.
        if (at > (this.readWhileWriting.get(key)?.at ?? -1)) this.readWhileWriting.set(key, { at, value });
        return;
      }
      this.applyRead(key, value, at);
    }, this.readEnd);
  }

  /** An entry another node wrote: taken as replay takes it, and the delivery counts below a committed offset are done with. */
  private applyRead(key: string, value: string | null, at: number): void {
    this.apply(key, value, at);
    if (key.startsWith(OFFSET_PREFIX) && value !== null) {
      const { group, tp } = parseOffsetKey(key);
      const offset = this.offsets.get(key);
      if (offset !== undefined) this.deliveries.committed(group, tp, offset);
    }
  }

  private apply(key: string, value: string | null, at: number): void {
    if (this.shared) this.placed.set(key, at);
    if (key.startsWith(OFFSET_PREFIX)) {
      if (value === null) return void this.offsets.delete(key);
      const record = decodeRecord(committedOffsetRecord, value);
      if ('error' in record) return this.skip(key, record.error);
      this.offsets.set(key, record.value.offset);
    } else if (key.startsWith(DELIVERY_COUNT_PREFIX)) {
      this.deliveries.replayed(key, value, (skipped, reason) => this.skip(skipped, reason));
    } else if (key.startsWith(GROUP_PREFIX)) {
      const group = key.slice(GROUP_PREFIX.length);
      if (value === null) return void this.groups.delete(group);
      const record = decodeRecord(groupSettingsRecord, value);
      if ('error' in record) return this.skip(key, record.error);
      this.groups.set(group, record.value);
    }
  }

  /** An unreadable record is left out rather than stopping the broker: the key keeps its earlier value. */
  private skip(key: string, reason: string): void {
    this.logger?.warn({ key, reason }, 'skipped a record of __consumer_offsets that does not match its schema');
  }

  committed(group: string, tp: TopicPartition): number | undefined {
    return this.offsets.get(offsetKey(group, tp));
  }

  async commit(group: string, entries: CommittedRecordRef[]): Promise<void> {
    const committedAt = this.clock.now();
    const issued = entries.map((entry) => this.issue(offsetKey(group, entry)));
    const written = await Promise.all(entries.map((entry) => this.log.write(offsetKey(group, entry), encodeRecord({ offset: entry.offset, committedAt }))));
    entries.forEach((entry, i) => {
      const key = offsetKey(group, entry);
      // A write issued after this one (a transaction's) has the last word, as it has in the log.
      if (this.writesIssued.get(key) !== issued[i]) return;
      // Cluster mode: another node's commit lies after it in the log, and was read.
      if (this.shared && (this.placed.get(key) ?? -1) > written[i]!) return;
      this.offsets.set(key, entry.offset);
      this.deliveries.committed(group, entry, entry.offset);
    });
  }

  /** Numbers a write of the key: the in-memory offset follows the last write issued, as replay does. */
  private issue(key: string): number {
    const number = (this.writesIssued.get(key) ?? 0) + 1;
    this.writesIssued.set(key, number);
    return number;
  }

  /**
   * Commits offsets only forward (transactions' offsets, and those replayed at start-up): each
   * partition's offset becomes the higher of the two at once, before the write, and the write
   * carries that, so writes issued in turn never put a lower offset after a higher one.
   */
  async commitForward(group: string, entries: readonly CommittedRecordRef[]): Promise<void> {
    const committedAt = this.clock.now();
    const writes = entries.map((entry) => {
      const key = offsetKey(group, entry);
      const offset = Math.max(this.offsets.get(key) ?? -1, entry.offset);
      this.issue(key);
      this.offsets.set(key, offset);
      return this.log.write(key, encodeRecord({ offset, committedAt }));
    });
    await Promise.all(writes);
    for (const entry of entries) this.deliveries.committed(group, entry, this.offsets.get(offsetKey(group, entry))!);
  }

  /**
   * Marks offsets a transaction is about to commit: until `release`, `settled` makes whoever reads
   * them wait (a new owner of the partition), so that it starts from the transaction's outcome
   * (Kafka's pending transactional offsets).
   */
  hold(group: string, tps: readonly TopicPartition[]): () => void {
    const keys = tps.map((tp) => offsetKey(group, tp));
    for (const key of keys) {
      const entry = this.pending.get(key);
      if (entry !== undefined) {
        entry.holders++;
        continue;
      }
      let release = (): void => {};
      const done = new Promise<void>((resolve) => (release = resolve));
      this.pending.set(key, { done, holders: 1, release });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const key of keys) {
        const entry = this.pending.get(key);
        if (entry === undefined || --entry.holders > 0) continue;
        this.pending.delete(key);
        entry.release();
      }
    };
  }

  /** Resolves once no transaction is committing the partition's offset (undefined when none is). */
  whenSettled(group: string, tp: TopicPartition): Promise<void> | undefined {
    return this.pending.get(offsetKey(group, tp))?.done;
  }

  /** Every committed offset of a group. */
  groupOffsets(group: string): CommittedRecordRef[] {
    const prefix = `${OFFSET_PREFIX}${group}/`;
    const result: CommittedRecordRef[] = [];
    for (const [key, offset] of this.offsets) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      const slash = rest.lastIndexOf('/');
      result.push({ topic: rest.slice(0, slash), partition: Number(rest.slice(slash + 1)), offset });
    }
    return result;
  }

  /** The settings each group was created or changed with, by group name. */
  savedGroups(): ReadonlyMap<string, Partial<GroupSettings>> {
    return this.groups;
  }

  /**
   * Forgets, durably (tombstones in the log), the committed offsets and delivery counts of the
   * partitions `matches` picks: a deleted topic's, or a deleted group's.
   */
  async forget(matches: (group: string, topic: string) => boolean): Promise<void> {
    const writes: Array<Promise<unknown>> = this.deliveries.forget(matches);
    // Keys being written for the first time are not in `offsets` yet: their writes were issued, and the tombstone must come after them.
    for (const key of new Set([...this.offsets.keys(), ...this.writesIssued.keys()])) {
      const { group, tp } = parseOffsetKey(key);
      if (!matches(group, tp.topic)) continue;
      this.issue(key);
      this.offsets.delete(key);
      writes.push(this.log.write(key, null));
    }
    await Promise.all(writes);
  }

  /** Forgets a group: its settings, committed offsets and delivery counts. */
  async deleteGroup(group: string): Promise<void> {
    this.groups.delete(group);
    await Promise.all([this.log.write(`${GROUP_PREFIX}${group}`, null), this.forget((candidate) => candidate === group)]);
  }

  async saveGroup(group: string, settings: Partial<GroupSettings>): Promise<void> {
    await this.log.write(`${GROUP_PREFIX}${group}`, encodeRecord(settings));
    this.groups.set(group, { ...settings });
  }
}

const OFFSETS_TOPIC = '__consumer_offsets';

/** The offsets log kept in the internal topic, written through the broker like any record. */
export function brokerOffsetLog(broker: Omit<LogAccess, 'watch'>, clock: Clock = systemClock): OffsetLog {
  const topic = broker.topics.internal(OFFSETS_TOPIC, 1);
  return {
    write(key, value) {
      // A null value is a tombstone: the log cleaner drops the key (logs from before wrote an empty value; every live one is JSON).
      return broker.appendAndWait(topic, 0, clock.now(), key, null, null, value === null ? null : Buffer.from(value));
    },
    async replay(visit, from = 0) {
      const { logStartOffset, logEndOffset } = await broker.offsets(topic, 0);
      let offset = Math.max(from, logStartOffset);
      while (offset < logEndOffset) {
        const result = await broker.read(topic, 0, offset, 4 * 1024 * 1024);
        if (result.failure !== undefined)
          throw new RillError('storage-error', `committed offsets from offset ${offset} on cannot be read: ${result.failure.message}`);
        if (result.batches === null) break;
        offset = forEachRecord(result.batches, offset, (record) => {
          visit(record.key ?? '', record.value.length === 0 ? null : record.value.toString('utf8'), record.offset);
        });
      }
      return offset;
    },
  };
}

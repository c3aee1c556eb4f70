import type { Logger } from '../logging/index.js';
import type { TopicPartition } from './assignors.js';
import { decodeRecord, deliveryCountsRecord, encodeRecord } from './stored-records.js';

/** How the counts reach the disk: the offsets log (`__consumer_offsets`), as every group record. */
export interface DeliveryCountWriter {
  write(key: string, value: string | null): Promise<unknown>;
}

/** A message's count once it has been dead-lettered: never delivered again, by any member. */
const DEAD_LETTERED = -1;

/** Most messages one partition keeps counts for: a consumer failing on more than this lets the oldest go. */
const MAX_COUNTED_PER_PARTITION = 10_000;

export const DELIVERY_COUNT_PREFIX = 'deliveries/';

/** The verdicts nearly every message gets, made once (a delivery allocates nothing for them). */
const FIRST_DELIVERY: DeliveryVerdict = Object.freeze({ action: 'deliver', failures: 0 });
const SKIP: DeliveryVerdict = Object.freeze({ action: 'skip' });

/** One partition's counts in one group: offset → failed deliveries, or DEAD_LETTERED. */
export type PartitionCounts = Map<number, number>;

/** What the group knows of a message before it goes out. */
export type DeliveryVerdict =
  /** Deliver it: it went out `failures` times before without being acknowledged. */
  | { action: 'deliver'; failures: number }
  /** Dead-lettered already: passed over, as consumed. */
  | { action: 'skip' }
  /** It failed maxDeliveries times: to the dead-letter topic, not to the consumer. */
  | { action: 'dead-letter'; failures: number };

/**
 * Durable delivery counts, per group and message (RabbitMQ's quorum-queue delivery limit): how
 * often a message went out to the group and came back unacknowledged, because the consumer NACKed
 * it, or its connection dropped (or its session timed out) with it unsettled. They survive
 * reconnects, rebalances and restarts, so a message that crashes every consumer it reaches goes to
 * the dead-letter topic after maxDeliveries instead of looping for ever; and once dead-lettered it
 * is marked so, and no member gets it again.
 *
 * Counts are kept only above the group's committed offset (the committed part is done with) and
 * written, one record per partition with all of its counts, to the offsets log. Only failures are
 * written, never a delivery that went well: the cost falls on the failure path alone.
 */
export class DeliveryCounts {
  private readonly counts = new Map<string, PartitionCounts>();

  constructor(
    private readonly writer: DeliveryCountWriter,
    private readonly logger?: Pick<Logger, 'warn'>,
  ) {}

  /** The live counts of one partition (empty when none failed): callers on the hot path hold on to it. */
  partition(group: string, tp: TopicPartition): PartitionCounts {
    const key = countsKey(group, tp);
    let counts = this.counts.get(key);
    if (counts === undefined) this.counts.set(key, (counts = new Map()));
    return counts;
  }

  static verdict(counts: PartitionCounts, offset: number, maxDeliveries: number): DeliveryVerdict {
    if (counts.size === 0) return FIRST_DELIVERY;
    const failures = counts.get(offset);
    if (failures === undefined) return FIRST_DELIVERY;
    if (failures === DEAD_LETTERED) return SKIP;
    return failures >= maxDeliveries ? { action: 'dead-letter', failures } : { action: 'deliver', failures };
  }

  /** Counts one more failed delivery of each offset, durably; resolves to each one's failures now. */
  async failed(group: string, tp: TopicPartition, offsets: Iterable<number>): Promise<number[]> {
    const counts = this.partition(group, tp);
    const now: number[] = [];
    for (const offset of offsets) {
      const before = counts.get(offset) ?? 0;
      const after = before === DEAD_LETTERED ? DEAD_LETTERED : before + 1;
      counts.set(offset, after);
      now.push(after);
    }
    if (now.length === 0) return now;
    this.trim(group, tp, counts);
    await this.save(group, tp, counts);
    return now;
  }

  /** The message is in the dead-letter topic: no member of the group gets it again. */
  async deadLettered(group: string, tp: TopicPartition, offset: number): Promise<void> {
    const counts = this.partition(group, tp);
    counts.set(offset, DEAD_LETTERED);
    this.trim(group, tp, counts);
    await this.save(group, tp, counts);
  }

  /** Whether the message was dead-lettered by the group already. */
  isDeadLettered(group: string, tp: TopicPartition, offset: number): boolean {
    return this.counts.get(countsKey(group, tp))?.get(offset) === DEAD_LETTERED;
  }

  /** The group committed `offset`: what is below it is done with (written with the partition's next change). */
  committed(group: string, tp: TopicPartition, offset: number): void {
    const counts = this.counts.get(countsKey(group, tp));
    if (counts === undefined || counts.size === 0) return;
    for (const counted of counts.keys()) if (counted < offset) counts.delete(counted);
  }

  /** At start-up, each partition's record as last written. */
  replayed(key: string, value: string | null, skip: (key: string, reason: string) => void): void {
    if (value === null) {
      this.counts.delete(key.slice(DELIVERY_COUNT_PREFIX.length));
      return;
    }
    const record = decodeRecord(deliveryCountsRecord, value);
    if ('error' in record) return skip(key, record.error);
    this.counts.set(key.slice(DELIVERY_COUNT_PREFIX.length), new Map(record.value.counts));
  }

  /** Forgets, durably, the counts of the partitions `matches` picks (a group or a topic deleted). */
  forget(matches: (group: string, topic: string) => boolean): Array<Promise<unknown>> {
    const writes: Array<Promise<unknown>> = [];
    for (const key of [...this.counts.keys()]) {
      const groupEnd = key.indexOf('/');
      const topic = key.slice(groupEnd + 1, key.lastIndexOf('/'));
      if (!matches(key.slice(0, groupEnd), topic)) continue;
      this.counts.delete(key);
      writes.push(this.writer.write(`${DELIVERY_COUNT_PREFIX}${key}`, null));
    }
    return writes;
  }

  private save(group: string, tp: TopicPartition, counts: PartitionCounts): Promise<unknown> {
    const key = `${DELIVERY_COUNT_PREFIX}${countsKey(group, tp)}`;
    return this.writer.write(key, counts.size === 0 ? null : encodeRecord({ counts: [...counts] }));
  }

  /**
   * Keeps a partition's counts under the bound: the highest offsets' counts go first (the ones
   * nearest the committed offset are the messages stuck now), and a dead-lettered mark never goes
   * (forgetting it would deliver a dead-lettered message again).
   */
  private trim(group: string, tp: TopicPartition, counts: PartitionCounts): void {
    if (counts.size <= MAX_COUNTED_PER_PARTITION) return;
    const counted = [...counts].filter(([, count]) => count !== DEAD_LETTERED).map(([offset]) => offset);
    const highest = counted.sort((a, b) => b - a).slice(0, counts.size - MAX_COUNTED_PER_PARTITION);
    for (const offset of highest) counts.delete(offset);
    this.logger?.warn({ group, topic: tp.topic, partition: tp.partition, forgotten: highest.length }, 'delivery counts of failed messages forgotten');
  }
}

function countsKey(group: string, tp: TopicPartition): string {
  return `${group}/${tp.topic}/${tp.partition}`;
}

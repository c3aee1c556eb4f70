import type { StoredRecord } from '../broker/index.js';
import type { Logger } from '../logging/index.js';
import type { Clock } from './clock.js';
import type { CommittedRecordRef } from './group.js';

/** What the push bookkeeping asks of the coordinator. */
export interface PushRules {
  /** Read at each rejection, so that a settings change applies at once. */
  maxDeliveries(): number;
  commit(offsets: CommittedRecordRef[]): Promise<unknown>;
  deadLetter(partition: number, record: StoredRecord, deliveries: number): Promise<unknown>;
}

/**
 * The group rules of one push subscription (a member reading one topic): which offset to commit
 * as messages are acknowledged out of order, how often a message went out, and whether a NACKed
 * message is delivered again or dead-lettered. The subscription only delivers and reports.
 *
 * The committed offset of a partition is its lowest unacknowledged offset, else the highest
 * delivered plus one; commits of one event-loop turn go out together. In auto ack mode a
 * delivered message counts as consumed (at most once).
 */
export class PushDeliveries {
  /** Unacknowledged offsets per partition, in delivery order (a redelivery keeps its place). */
  private readonly pending = new Map<number, Set<number>>();
  /** How often each unacknowledged message went out, by `partition:offset`. */
  private readonly deliveryCounts = new Map<string, number>();
  /** Highest offset delivered plus one, per partition. */
  private readonly deliveredEnd = new Map<number, number>();
  private readonly toCommit = new Set<number>();
  private commitScheduled = false;
  private closed = false;

  constructor(
    private readonly group: string,
    private readonly topic: string,
    private readonly autoAck: boolean,
    private readonly rules: PushRules,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** The member now owns the partition: its deliveries start from the group's committed offset. */
  partitionAssigned(partition: number): void {
    this.pending.set(partition, new Set());
  }

  /** Revoked: what was unacknowledged is the next owner's now, from the last committed offset. */
  partitionRevoked(partition: number): void {
    this.pending.delete(partition);
  }

  /** Counts a delivery about to go out; returns how often the message went out, this time included. */
  delivering(partition: number, offset: number): number {
    const key = `${partition}:${offset}`;
    const count = (this.deliveryCounts.get(key) ?? 0) + 1;
    if (!this.autoAck) this.deliveryCounts.set(key, count);
    return count;
  }

  delivered(partition: number, offset: number): void {
    if (this.autoAck) {
      this.deliveredEnd.set(partition, offset + 1);
      this.scheduleCommit(partition);
      return;
    }
    this.pending.get(partition)?.add(offset);
    if (offset + 1 > (this.deliveredEnd.get(partition) ?? 0)) this.deliveredEnd.set(partition, offset + 1);
  }

  acknowledged(partition: number, offset: number): void {
    this.deliveryCounts.delete(`${partition}:${offset}`);
    this.pending.get(partition)?.delete(offset);
    this.scheduleCommit(partition);
  }

  /**
   * A NACK: `redeliver` is called at once while the message went out fewer than maxDeliveries
   * times; after that it is dead-lettered and counts as acknowledged, or is delivered again if
   * dead-lettering fails.
   */
  rejected(partition: number, record: StoredRecord, redeliver: () => void): void {
    const count = this.deliveryCounts.get(`${partition}:${record.offset}`) ?? 1;
    if (count < this.rules.maxDeliveries()) {
      redeliver();
      return;
    }
    this.rules.deadLetter(partition, record, count).then(
      () => this.acknowledged(partition, record.offset),
      (error: Error) => {
        this.logger.error({ err: error, group: this.group, topic: this.topic, partition }, 'dead-lettering failed; the message will be delivered again');
        redeliver();
      },
    );
  }

  /** The subscription ended: commits not yet sent are dropped (the next owner goes on from the last one). */
  close(): void {
    this.closed = true;
  }

  private scheduleCommit(partition: number): void {
    this.toCommit.add(partition);
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    this.clock.setImmediate(() => {
      this.commitScheduled = false;
      const offsets = [...this.toCommit].flatMap((p) => {
        // Offsets enter in delivery order and a redelivery keeps its place: the first is the lowest.
        const lowest = this.pending.get(p)?.values().next().value;
        const offset = lowest ?? this.deliveredEnd.get(p);
        return offset === undefined ? [] : [{ topic: this.topic, partition: p, offset }];
      });
      this.toCommit.clear();
      if (offsets.length === 0 || this.closed) return;
      this.rules.commit(offsets).catch((error: Error) => {
        // A partition revoked meanwhile is fenced: its new owner goes on from the last commit.
        this.logger.debug({ err: error, group: this.group }, 'commit refused');
      });
    });
  }
}

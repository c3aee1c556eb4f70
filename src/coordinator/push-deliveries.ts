import type { StoredRecord } from '../broker/index.js';
import type { Logger } from '../logging/index.js';
import type { Clock } from './clock.js';
import { DeliveryCounts, type DeliveryVerdict, type PartitionCounts } from './delivery-counts.js';
import type { CommittedRecordRef } from './group.js';

/** What the push bookkeeping asks of the coordinator. */
export interface PushRules {
  /** Read at each decision, so that a settings change applies at once. */
  maxDeliveries(): number;
  /** The broker is shutting down: connections it closes are no consumer's failure. */
  shuttingDown(): boolean;
  /** The group dead-letters messages that expire before it consumed them. */
  deadLetterExpired(): boolean;
  commit(offsets: CommittedRecordRef[]): Promise<unknown>;
  deadLetter(partition: number, record: StoredRecord, deliveries: number, reason: string): Promise<unknown>;
  /** The durable failed-delivery counts of a partition (live: read on every delivery). */
  counts(partition: number): PartitionCounts;
  /** Counts one more failed delivery of each offset, durably; resolves to each one's failures now. */
  failed(partition: number, offsets: readonly number[]): Promise<number[]>;
  /** Marks a message dead-lettered, durably. */
  deadLettered(partition: number, offset: number): Promise<void>;
}

/** How long a dead-lettering that failed (a full disk) waits before it is tried again. */
const DEAD_LETTER_RETRY_MS = 1000;

/** A transaction's ACKs of one push subscription, as its offsets are worked out and committed. */
export interface TransactionPlan {
  /** Resolves once every transaction before it that shares a partition is decided (or over). */
  ready(): Promise<void>;
  /** The offset of each partition to commit with the transaction, worked out now. */
  offsets(): CommittedRecordRef[];
  /** Its record is durable: its messages count as acknowledged for the transactions after it. */
  decided(): void;
  /** Over: `committed`, its messages are settled; otherwise they are still unacknowledged. */
  ended(committed: boolean): void;
}

interface OpenPlan {
  partitions: Map<number, Set<number>>;
  decided: boolean;
  /** Set while the plan waits in `ready`: checks again whether it may go on. */
  wake: (() => void) | null;
}

/**
 * The group rules of one push subscription (a member reading one topic): which offset to commit
 * as messages are acknowledged out of order, and what becomes of a message that failed: delivered
 * again, or dead-lettered once it failed maxDeliveries times. The subscription only delivers and
 * reports.
 *
 * The committed offset of a partition is its lowest unacknowledged offset, else the highest
 * delivered plus one; commits of one event-loop turn go out together. A delivery fails when the
 * consumer NACKs it or its connection drops with it unsettled; the counts are durable and the
 * group's (DeliveryCounts), so they hold across members, reconnects and restarts. In auto ack
 * mode a delivered message counts as consumed (at most once), and nothing is counted.
 */
export class PushDeliveries {
  /** Unacknowledged offsets per partition, in delivery order (a redelivery keeps its place). */
  private readonly pending = new Map<number, Set<number>>();
  /** Highest offset delivered plus one, per partition. */
  private readonly deliveredEnd = new Map<number, number>();
  private readonly toCommit = new Set<number>();
  /** Each partition's durable failure counts (DeliveryCounts), held while it is assigned. */
  private readonly counts = new Map<number, PartitionCounts>();
  /** Offsets whose failure was counted (a NACK) since they last went out: a drop does not count them again. */
  private readonly returned = new Map<number, Set<number>>();
  /** Messages on their way to the dead-letter topic, by `partition:offset`: they take credit, and a drop does not count them. */
  private readonly beingDeadLettered = new Set<string>();
  /** Transactions acknowledging this subscription's messages, in COMMIT order. */
  private readonly plans: OpenPlan[] = [];
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
    // Held on to: every delivery reads it.
    this.counts.set(partition, this.rules.counts(partition));
  }

  /** Revoked: what was unacknowledged is the next owner's now, from the last committed offset. */
  partitionRevoked(partition: number): void {
    this.pending.delete(partition);
    this.counts.delete(partition);
    this.returned.delete(partition);
    // Given back later, it starts again from the committed offset: nothing delivered before counts.
    this.deliveredEnd.delete(partition);
  }

  /**
   * What to do with a message about to go out: deliver it (with how often it failed before), pass
   * over it (dead-lettered already), or dead-letter it (it failed maxDeliveries times: a consumer
   * that crashed on it each time never NACKed it).
   */
  verdict(partition: number, offset: number): DeliveryVerdict {
    const counts = this.counts.get(partition) ?? this.rules.counts(partition);
    return DeliveryCounts.verdict(counts, offset, this.autoAck ? Number.POSITIVE_INFINITY : this.rules.maxDeliveries());
  }

  delivered(partition: number, offset: number): void {
    const returned = this.returned.get(partition);
    if (returned !== undefined && returned.size > 0) returned.delete(offset);
    if (this.autoAck) {
      this.deliveredEnd.set(partition, offset + 1);
      this.scheduleCommit(partition);
      return;
    }
    this.pending.get(partition)?.add(offset);
    if (offset + 1 > (this.deliveredEnd.get(partition) ?? 0)) this.deliveredEnd.set(partition, offset + 1);
  }

  acknowledged(partition: number, offset: number): void {
    this.pending.get(partition)?.delete(offset);
    this.scheduleCommit(partition);
  }

  /** How many messages are on their way to the dead-letter topic. */
  get deadLettering(): number {
    return this.beingDeadLettered.size;
  }

  /**
   * A message whose time-to-live passed before the group consumed it: dead-lettered (reason
   * "expired") if the group says so, else passed over as consumed.
   */
  expired(partition: number, record: StoredRecord, retry: () => void): void {
    this.delivered(partition, record.offset);
    if (this.autoAck || !this.rules.deadLetterExpired() || this.verdict(partition, record.offset).action === 'skip') {
      this.acknowledged(partition, record.offset);
      return;
    }
    this.deadLetter(partition, record, 0, retry, `expired before group ${this.group} consumed it`);
  }

  /**
   * A NACK: counted (durably), then `redeliver` is called while the message failed fewer than
   * maxDeliveries times; after that it is dead-lettered and counts as acknowledged, or is
   * delivered again if dead-lettering fails. `failed` false: returned without counting.
   */
  rejected(partition: number, record: StoredRecord, redeliver: () => void, failed = true): void {
    // Not the consumer's failure (its transaction was fenced by a rebalance): delivered again, not counted.
    if (!failed) {
      redeliver();
      return;
    }
    // Counted now: a drop before it goes out again does not count it a second time.
    let returned = this.returned.get(partition);
    if (returned === undefined) this.returned.set(partition, (returned = new Set()));
    returned.add(record.offset);
    this.rules.failed(partition, [record.offset]).then(
      ([failures]) => {
        if (failures! < this.rules.maxDeliveries()) redeliver();
        else this.deadLetter(partition, record, failures!, redeliver);
      },
      (error: Error) => {
        this.logger.error({ err: error, group: this.group, topic: this.topic, partition }, 'could not count a failed delivery; the message is delivered again');
        redeliver();
      },
    );
  }

  /**
   * Sends a message that failed maxDeliveries times to the dead-letter topic and marks it so; it
   * then counts as acknowledged. If that fails, `retry` is called a moment later.
   */
  deadLetter(
    partition: number,
    record: StoredRecord,
    failures: number,
    retry: () => void,
    reason = `delivered ${failures} times to group ${this.group} without being acknowledged (NACKed, or its consumer gone)`,
  ): void {
    const key = `${partition}:${record.offset}`;
    this.beingDeadLettered.add(key);
    const over = (): void => {
      this.beingDeadLettered.delete(key);
    };
    this.rules
      .deadLetter(partition, record, failures, reason)
      .then(() => this.rules.deadLettered(partition, record.offset))
      .then(
        () => {
          over();
          this.acknowledged(partition, record.offset);
        },
        (error: Error) => {
          over();
          this.logger.error({ err: error, group: this.group, topic: this.topic, partition }, 'dead-lettering failed; trying again');
          this.clock.setTimeout(retry, DEAD_LETTER_RETRY_MS);
        },
      );
  }

  /**
   * ACKs inside a transaction. Transactions of one subscription may overlap (a processor commits
   * message after message without waiting), so each one's offsets are worked out when it is
   * decided, counting the messages of transactions decided before it as acknowledged: their
   * commit is certain, even across a crash. Transactions sharing a partition are decided in COMMIT
   * order, so the offset each records covers every one before it; the partition's own commits
   * wait until they are all over, so that none is written after a transaction's.
   */
  inTransaction(acked: ReadonlyArray<{ partition: number; offset: number }>): TransactionPlan {
    const partitions = new Map<number, Set<number>>();
    for (const { partition, offset } of acked) {
      const set = partitions.get(partition);
      if (set === undefined) partitions.set(partition, new Set([offset]));
      else set.add(offset);
    }
    const plan: OpenPlan = { partitions, decided: false, wake: null };
    this.plans.push(plan);
    const earlierUndecided = (): boolean => {
      for (const other of this.plans) {
        if (other === plan) return false;
        if (!other.decided && [...partitions.keys()].some((p) => other.partitions.has(p))) return true;
      }
      return false;
    };
    let over = false;
    return {
      ready: () =>
        earlierUndecided()
          ? new Promise<void>((resolve) => {
              plan.wake = () => {
                if (earlierUndecided()) return;
                plan.wake = null;
                resolve();
              };
            })
          : Promise.resolve(),
      offsets: () => {
        const offsets: CommittedRecordRef[] = [];
        for (const [partition] of partitions) {
          let lowest: number | undefined;
          for (const offset of this.pending.get(partition) ?? []) {
            if (this.settledByPlans(partition, offset, plan)) continue;
            lowest = offset;
            break;
          }
          const offset = lowest ?? this.deliveredEnd.get(partition);
          if (offset !== undefined) offsets.push({ topic: this.topic, partition, offset });
        }
        return offsets;
      },
      decided: () => {
        plan.decided = true;
        this.wakePlans();
      },
      ended: (committed) => {
        if (over) return;
        over = true;
        this.plans.splice(this.plans.indexOf(plan), 1);
        if (committed) {
          // Committed with the transaction: settled without a commit of their own.
          for (const [partition, settled] of partitions) for (const offset of settled) this.pending.get(partition)?.delete(offset);
        }
        this.wakePlans();
        // Commits that waited for the transactions go out now.
        if (this.toCommit.size > 0) this.scheduleCommit(this.toCommit.values().next().value!);
      },
    };
  }

  /** Whether the message is acknowledged by `plan` or by a transaction decided already. */
  private settledByPlans(partition: number, offset: number, plan: OpenPlan): boolean {
    for (const other of this.plans) {
      if ((other === plan || other.decided) && other.partitions.get(partition)?.has(offset)) return true;
    }
    return false;
  }

  private wakePlans(): void {
    for (const plan of [...this.plans]) plan.wake?.();
  }

  private heldByTransaction(partition: number): boolean {
    return this.plans.some((plan) => plan.partitions.has(partition));
  }

  /**
   * The subscription ended: commits not yet sent are dropped (the next owner goes on from the last
   * one). When the connection dropped (not `clean`; the broker closing it is clean), the consumer
   * may have crashed on what it was processing: in each partition, its oldest unsettled message
   * counts as a failed delivery. Only that one: counting every message in its credit window would
   * dead-letter the healthy ones behind a poison message along with it.
   */
  close(clean = true): void {
    this.closed = true;
    if (clean || this.autoAck || this.rules.shuttingDown()) return;
    for (const [partition, offsets] of this.pending) {
      const returned = this.returned.get(partition);
      let oldest: number | undefined;
      // In delivery order, and a redelivery keeps its place: the first not counted yet is the oldest.
      for (const offset of offsets) {
        // Counted already (NACKed), settled by a COMMIT being stored, or on its way to the dead-letter topic: not what it crashed on.
        if (returned?.has(offset) === true || this.beingDeadLettered.has(`${partition}:${offset}`)) continue;
        if (this.plans.some((plan) => plan.partitions.get(partition)?.has(offset) === true)) continue;
        oldest = offset;
        break;
      }
      if (oldest === undefined) continue;
      this.rules.failed(partition, [oldest]).catch((error: Error) => {
        this.logger.error({ err: error, group: this.group, topic: this.topic, partition }, 'could not count the delivery of a dropped connection');
      });
    }
  }

  private scheduleCommit(partition: number): void {
    this.toCommit.add(partition);
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    this.clock.setImmediate(() => {
      this.commitScheduled = false;
      const offsets = [...this.toCommit].flatMap((p) => {
        // A transaction is committing this partition: it commits once that is over.
        if (this.heldByTransaction(p)) return [];
        this.toCommit.delete(p);
        // Offsets enter in delivery order and a redelivery keeps its place: the first is the lowest.
        const lowest = this.pending.get(p)?.values().next().value;
        const offset = lowest ?? this.deliveredEnd.get(p);
        return offset === undefined ? [] : [{ topic: this.topic, partition: p, offset }];
      });
      if (offsets.length === 0 || this.closed) return;
      this.rules.commit(offsets).catch((error: Error) => {
        // A partition revoked meanwhile is fenced: its new owner goes on from the last commit.
        this.logger.debug({ err: error, group: this.group }, 'commit refused');
      });
    });
  }
}

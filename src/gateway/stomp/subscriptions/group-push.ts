import { heldUntil, laneOf, type StoredRecord, type Topic } from '../../../broker/index.js';
import type { GroupCoordinator, MemberBinding, PushDeliveries, TopicPartition } from '../../../coordinator/index.js';
import type { Logger } from '../../../logging/index.js';
import type { HeaderInput } from '../../../protocol/stomp/index.js';
import type { PartitionReader } from '../command-context.js';
import type { DeliveryChannel } from '../delivery-channel.js';
import { groupDestination } from '../destinations.js';
import { RillError } from '../../../errors/index.js';
import { PartitionFeed, type Cursor } from './partition-feed.js';
import type { AckMode, CloseReason, TransactionalAcks } from './subscription.js';

interface InFlight {
  partition: number;
  record: StoredRecord;
  /** The cursor it came from: a partition revoked and given back has a new one, reading from the committed offset. */
  cursor: Cursor;
  /** Set while a COMMIT being stored acknowledges it: no other ACK, NACK or transaction may settle it. */
  claimed?: boolean;
}

/**
 * A SUBSCRIBE to `/group/<group>/<topic>`: the subscription holds a member of the consumer group
 * and gets the messages of the partitions the coordinator assigns it, pushed within a credit
 * window (`prefetch-count` unacknowledged messages). It delivers and reports ACKs and NACKs; what
 * they mean for the group (the committed offset, redelivery, dead-lettering) is the coordinator's
 * `PushDeliveries`.
 */
export class GroupPush extends PartitionFeed {
  private readonly inFlight = new Map<number, InFlight>();
  private readonly deliveries: PushDeliveries;
  private assignmentVersion = 0;
  /** Priority lanes: a pump of the lanes is under way, and another was asked for meanwhile. */
  private pumping = false;
  private pumpAgain = false;
  private laneCursors: Cursor[][] | null = null;
  /** Lanes with a partition assigned and not started yet: the lanes below wait for it. */
  private readonly startingLanes = new Map<number, number>();

  constructor(
    channel: DeliveryChannel,
    log: PartitionReader,
    private readonly coordinator: GroupCoordinator,
    private readonly logger: Logger,
    id: string,
    number: number,
    ackMode: AckMode,
    topic: Topic,
    prefetch: number,
    private readonly binding: MemberBinding,
  ) {
    super(channel, log, id, number, ackMode, topic, prefetch, groupDestination(binding.group, topic.name));
    this.deliveries = coordinator.pushDeliveries(binding, topic.name, ackMode === 'auto');
  }

  start(): void {
    this.assigned(this.binding.assignment);
  }

  /** The member's assignment changed: drop the partitions revoked, start the new ones where the group left off. */
  assigned(assignment: readonly TopicPartition[]): void {
    if (this.closed) return;
    const version = ++this.assignmentVersion;
    const mine = new Set(assignment.filter((tp) => tp.topic === this.topic.name).map((tp) => tp.partition));
    for (const partition of [...this.cursors.keys()]) {
      if (mine.has(partition)) continue;
      // Revoked: what was in flight is the next owner's now, from the last committed offset.
      this.removePartition(partition);
      for (const [sequence, entry] of this.inFlight) if (entry.partition === partition) this.inFlight.delete(sequence);
      this.deliveries.partitionRevoked(partition);
    }
    // Credit came back, and a revoked partition may have been holding back a lower priority lane.
    this.resume();
    for (const partition of mine) {
      if (this.cursors.has(partition)) continue;
      const lane = laneOf(this.topic, partition);
      this.startingLanes.set(lane, (this.startingLanes.get(lane) ?? 0) + 1);
      this.coordinator
        .startPosition(this.binding.member, { topic: this.topic.name, partition })
        .then(async (next) => {
          if (this.closed || version !== this.assignmentVersion || this.cursors.has(partition)) return;
          const { logEndOffset } = await this.log.offsets(this.topic, partition);
          if (this.closed || version !== this.assignmentVersion || this.cursors.has(partition)) return;
          this.deliveries.partitionAssigned(partition);
          this.addPartition(partition, next, logEndOffset);
        })
        .catch((error: Error) => this.logger.warn({ err: error, group: this.binding.group, partition }, 'could not start a group partition'))
        .finally(() => {
          const starting = (this.startingLanes.get(lane) ?? 1) - 1;
          if (starting === 0) this.startingLanes.delete(lane);
          else this.startingLanes.set(lane, starting);
          // The partition started (or could not): it, and any lane that waited for it, may deliver.
          const cursor = this.cursors.get(partition) ?? this.cursors.values().next().value;
          if (cursor !== undefined && !this.closed) this.pump(cursor);
        });
    }
  }

  /**
   * With priority lanes, every pump goes over the lanes, highest first, and a lane delivers only
   * while no higher lane has messages waiting (queued, being read, or its partition still being
   * started): higher priorities go first, within the credit window, and each partition keeps its
   * order. Lanes below one that waits are not visited at all.
   */
  protected override pump(cursor: Cursor): void {
    if (this.topic.lanes === 1) {
      super.pump(cursor);
      return;
    }
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        const lanes = this.cursorsByLane();
        for (let lane = lanes.length - 1; lane >= 0; lane--) {
          let waiting = this.startingLanes.has(lane);
          for (const laneCursor of lanes[lane]!) {
            super.pump(laneCursor);
            // A partition waiting for a delayed message, or retrying a failed read, holds back no other lane.
            if ((laneCursor.fetching && !laneCursor.failing) || (laneCursor.queued < laneCursor.queue.length && laneCursor.holdTimer === null)) {
              waiting = true;
            }
          }
          if (waiting) break;
        }
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  /** The cursors by lane, kept until a partition is added or removed. */
  private cursorsByLane(): Cursor[][] {
    if (this.laneCursors === null) {
      const lanes: Cursor[][] = Array.from({ length: this.topic.lanes }, () => []);
      for (const laneCursor of this.cursors.values()) lanes[laneOf(this.topic, laneCursor.partition)]!.push(laneCursor);
      this.laneCursors = lanes;
    }
    return this.laneCursors;
  }

  protected override addPartition(partition: number, next: number, end: number): void {
    super.addPartition(partition, next, end);
    this.laneCursors = null;
  }

  protected override removePartition(partition: number): void {
    super.removePartition(partition);
    this.laneCursors = null;
  }

  override resume(): void {
    const first = this.topic.lanes === 1 ? undefined : this.cursors.values().next().value;
    if (first === undefined) super.resume();
    else this.pump(first);
  }

  /** Delivered and not settled, and being dead-lettered: both take credit, so neither runs without bound. */
  protected unsettled(): number {
    return this.inFlight.size + this.deliveries.deadLettering;
  }

  protected override deliver(cursor: Cursor, record: StoredRecord): void {
    const verdict = this.deliveries.verdict(cursor.partition, record.offset);
    if (verdict.action === 'skip') {
      // Dead-lettered already (by a member before this one): consumed.
      this.passOver(cursor, record);
      return;
    }
    if (verdict.action === 'dead-letter') {
      // It failed maxDeliveries times, its consumers gone each time without a NACK: not again.
      this.deliveries.delivered(cursor.partition, record.offset);
      this.deliveries.deadLetter(cursor.partition, record, verdict.failures, () => this.deliverAgain({ partition: cursor.partition, record, cursor }));
      return;
    }
    const count = verdict.failures + 1;
    const extra: HeaderInput | undefined = count > 1 ? { redelivered: 'true', 'delivery-count': count } : undefined;
    super.deliver(cursor, record, extra);
  }

  /** A message the group is done with, passed over: its committed offset moves past it. */
  private passOver(cursor: Cursor, record: StoredRecord): void {
    this.deliveries.delivered(cursor.partition, record.offset);
    this.deliveries.acknowledged(cursor.partition, record.offset);
  }

  /** A delayed message (`deliver-at`) reaches the group at its time; the partition waits for it. */
  protected override deliverableAt(record: StoredRecord, now: number): number {
    return record.headers.length === 0 ? 0 : heldUntil(record.headers, now);
  }

  /** An expired message counts as consumed (dead-lettered first, if the group says so): the committed offset moves past it. */
  protected override expired(cursor: Cursor, record: StoredRecord): void {
    this.deliveries.expired(cursor.partition, record, () => this.deliverAgain({ partition: cursor.partition, record, cursor }));
  }

  protected delivered(cursor: Cursor, record: StoredRecord, sequence: number): void {
    // Sequence 0: auto ack mode, nothing to settle.
    if (sequence !== 0) this.inFlight.set(sequence, { partition: cursor.partition, record, cursor });
    this.deliveries.delivered(cursor.partition, record.offset);
  }

  settle(sequence: number, accepted: boolean): boolean {
    if (sequence > this.sequence) return false;
    const settled = this.ackMode === 'client' ? [...this.inFlight.keys()].filter((s) => s <= sequence) : [sequence];
    for (const s of settled) {
      const entry = this.inFlight.get(s);
      // Settled already, or its partition was revoked; or a COMMIT being stored settles it.
      if (entry === undefined || entry.claimed === true) continue;
      this.inFlight.delete(s);
      if (accepted) this.deliveries.acknowledged(entry.partition, entry.record.offset);
      else this.deliveries.rejected(entry.partition, entry.record, () => this.deliverAgain(entry));
    }
    this.resume();
    return true;
  }

  prepareTransaction(sequences: readonly number[]): TransactionalAcks {
    const chosen = new Map<number, InFlight>();
    for (const sequence of sequences) {
      if (this.ackMode === 'client') {
        // Cumulative: every message up to it that no other COMMIT is settling.
        for (const [s, entry] of this.inFlight) if (s <= sequence && entry.claimed !== true) chosen.set(s, entry);
        continue;
      }
      const entry = this.inFlight.get(sequence);
      if (entry === undefined || entry.claimed === true) throw this.notHeld();
      chosen.set(sequence, entry);
    }
    const entries = [...chosen];
    // Checked again when the transaction is decided: a revoked partition drops its messages from inFlight.
    const stillHeld = (): void => {
      if (this.closed) throw this.notHeld();
      for (const [sequence, entry] of entries) if (this.inFlight.get(sequence) !== entry) throw this.notHeld(entry);
    };
    stillHeld();
    for (const [, entry] of entries) entry.claimed = true;
    const plan = this.deliveries.inTransaction(entries.map(([, entry]) => ({ partition: entry.partition, offset: entry.record.offset })));
    let offsets: TransactionalAcks['offsets'];
    try {
      offsets = this.coordinator.offsetsInTransaction(this.binding.member, {
        offsets: () => plan.offsets(),
        ready: () => plan.ready(),
        decided: () => plan.decided(),
        stillHeld,
      });
    } catch (error) {
      for (const [, entry] of entries) entry.claimed = false;
      plan.ended(false);
      throw error;
    }
    const settleAll = (accepted: boolean, failed: boolean): void => {
      for (const [sequence, entry] of entries) {
        entry.claimed = false;
        if (this.inFlight.get(sequence) !== entry) continue;
        this.inFlight.delete(sequence);
        if (!accepted) this.deliveries.rejected(entry.partition, entry.record, () => this.deliverAgain(entry), failed);
      }
      this.resume();
    };
    return {
      offsets,
      committed: () => {
        plan.ended(true);
        settleAll(true, false);
      },
      aborted: (failed) => {
        plan.ended(false);
        settleAll(false, failed);
      },
    };
  }

  /** A message of a transaction's ACKs that this subscription may no longer settle: its partition went to another member. */
  private notHeld(entry?: InFlight): RillError {
    const what = entry === undefined ? 'a message' : `${this.topic.name}/${entry.partition} offset ${entry.record.offset}`;
    return new RillError(
      'not-owner',
      `${what} is no longer this subscription's to acknowledge: the group rebalanced and its partition went to another member, or it was settled already`,
    );
  }

  /** Puts a message back to be delivered again, unless its partition went away meanwhile (given back, it reads from the committed offset anyway). */
  private deliverAgain(entry: InFlight): void {
    const cursor = this.cursors.get(entry.partition);
    if (cursor === undefined || cursor !== entry.cursor || this.closed) return;
    this.redeliver(cursor, entry.record);
    this.pump(cursor);
  }

  /**
   * The client ended it (UNSUBSCRIBE, DISCONNECT): the member leaves at once. Otherwise it may come
   * back; and when the connection dropped, what it was processing counts as a failed delivery.
   */
  override close(reason: CloseReason = 'client-left'): void {
    if (this.closed) return;
    super.close();
    this.deliveries.close(reason !== 'dropped');
    this.binding.release(reason === 'client-left');
  }
}

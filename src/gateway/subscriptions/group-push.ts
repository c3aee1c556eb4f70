import type { StoredRecord, Topic } from '../../broker/index.js';
import type { Member, TopicPartition } from '../../coordinator/index.js';
import type { HeaderInput } from '../../protocol/stomp/index.js';
import { groupDestination } from '../destinations.js';
import type { StompSession } from '../session.js';
import { PartitionFeed, type Cursor } from './partition-feed.js';
import type { AckMode } from './subscription.js';

interface InFlight {
  partition: number;
  record: StoredRecord;
}

/**
 * A SUBSCRIBE to `/group/<group>/<topic>`: the subscription is a member of the consumer group and
 * gets the messages of the partitions the coordinator assigns it, pushed within a credit window
 * (`prefetch-count` unacknowledged messages). ACK commits (the group's committed offset in a
 * partition is its lowest unacknowledged offset); NACK redelivers, and a message NACKed
 * `maxDeliveries` times goes to the dead-letter topic with the reason and the count in headers.
 */
export class GroupPush extends PartitionFeed {
  private readonly inFlight = new Map<number, InFlight>();
  /** Unacknowledged offsets per partition, each with its delivery sequence. */
  private readonly pending = new Map<number, Map<number, number>>();
  private readonly deliveries = new Map<string, number>();
  private readonly toCommit = new Set<number>();
  private commitScheduled = false;
  private assignmentVersion = 0;

  constructor(
    session: StompSession,
    id: string,
    number: number,
    ackMode: AckMode,
    topic: Topic,
    prefetch: number,
    readonly member: Member,
  ) {
    super(session, id, number, ackMode, topic, prefetch, groupDestination(member.group.name, topic.name));
    member.bound = true;
    member.listeners.add(this.onAssignment);
  }

  start(): void {
    this.onAssignment(this.member.group.generation, this.member.assignment);
  }

  private readonly onAssignment = (_generation: number, assignment: readonly TopicPartition[]): void => {
    const version = ++this.assignmentVersion;
    const mine = new Set(assignment.filter((tp) => tp.topic === this.topic.name).map((tp) => tp.partition));
    for (const partition of [...this.cursors.keys()]) {
      if (mine.has(partition)) continue;
      // Revoked: what was in flight is the next owner's now, from the last committed offset.
      this.removePartition(partition);
      for (const [sequence, entry] of this.inFlight) if (entry.partition === partition) this.inFlight.delete(sequence);
      this.pending.delete(partition);
    }
    for (const partition of mine) {
      if (this.cursors.has(partition)) continue;
      void this.session.context.coordinator.startPosition(this.member, { topic: this.topic.name, partition }).then(
        async (next) => {
          if (this.closed || version !== this.assignmentVersion || this.cursors.has(partition)) return;
          const { logEndOffset } = await this.session.broker.offsets(this.topic, partition);
          if (this.closed || version !== this.assignmentVersion || this.cursors.has(partition)) return;
          this.pending.set(partition, new Map());
          this.addPartition(partition, next, logEndOffset);
          this.pump(this.cursors.get(partition)!);
        },
        (error: Error) => this.session.logger.warn({ err: error, group: this.member.group.name, partition }, 'could not start a group partition'),
      );
    }
  };

  protected unsettled(): number {
    return this.inFlight.size;
  }

  protected override deliver(cursor: Cursor, record: StoredRecord): void {
    const key = `${cursor.partition}:${record.offset}`;
    const count = (this.deliveries.get(key) ?? 0) + 1;
    const extra: HeaderInput | undefined = count > 1 ? { redelivered: 'true', 'delivery-count': count } : undefined;
    if (this.ackMode !== 'auto') this.deliveries.set(key, count);
    super.deliver(cursor, record, extra);
  }

  protected delivered(cursor: Cursor, record: StoredRecord, sequence: number): void {
    if (sequence === 0) {
      // auto: delivered counts as consumed (at-most-once).
      this.positions.set(cursor.partition, record.offset + 1);
      this.scheduleCommit(cursor.partition);
      return;
    }
    this.inFlight.set(sequence, { partition: cursor.partition, record });
    this.pending.get(cursor.partition)?.set(record.offset, sequence);
    const position = this.positions.get(cursor.partition) ?? 0;
    if (record.offset + 1 > position) this.positions.set(cursor.partition, record.offset + 1);
  }

  /** Highest offset delivered plus one, per partition. */
  private readonly positions = new Map<number, number>();

  settle(sequence: number, accepted: boolean): boolean {
    if (sequence > this.sequence) return false;
    const settled = this.ackMode === 'client' ? [...this.inFlight.keys()].filter((s) => s <= sequence) : [sequence];
    for (const s of settled) {
      const entry = this.inFlight.get(s);
      if (entry === undefined) continue; // settled already, or its partition was revoked
      this.inFlight.delete(s);
      if (accepted) this.done(entry);
      else this.rejected(entry);
    }
    this.resume();
    return true;
  }

  private done(entry: InFlight): void {
    this.deliveries.delete(`${entry.partition}:${entry.record.offset}`);
    this.pending.get(entry.partition)?.delete(entry.record.offset);
    this.scheduleCommit(entry.partition);
  }

  private rejected(entry: InFlight): void {
    const key = `${entry.partition}:${entry.record.offset}`;
    const count = this.deliveries.get(key) ?? 1;
    const { maxDeliveries, deadLetterSuffix } = this.member.group.settings;
    if (count < maxDeliveries) {
      const cursor = this.cursors.get(entry.partition);
      if (cursor !== undefined) this.redeliver(cursor, entry.record);
      return;
    }
    const { record } = entry;
    const deadLetterTopic = `${this.topic.name}${deadLetterSuffix}`;
    const headers: Array<[string, string]> = [
      ...record.headers.filter(([name]) => !name.startsWith('x-dead-letter') && !name.startsWith('x-original')),
      ['x-dead-letter-reason', `rejected (NACK) ${count} times by group ${this.member.group.name}`],
      ['x-delivery-count', String(count)],
      ['x-original-topic', this.topic.name],
      ['x-original-partition', String(entry.partition)],
      ['x-original-offset', String(record.offset)],
      ['x-consumer-group', this.member.group.name],
    ];
    this.session.context.coordinator.publish(deadLetterTopic, record.key, record.messageId, headers, record.value).then(
      () => this.done(entry),
      (error: Error) => {
        this.session.logger.error({ err: error, topic: deadLetterTopic }, 'dead-lettering failed; the message will be delivered again');
        const cursor = this.cursors.get(entry.partition);
        if (cursor !== undefined) this.redeliver(cursor, entry.record);
      },
    );
  }

  private scheduleCommit(partition: number): void {
    this.toCommit.add(partition);
    if (this.commitScheduled) return;
    this.commitScheduled = true;
    setImmediate(() => {
      this.commitScheduled = false;
      const offsets = [...this.toCommit].flatMap((p) => {
        // Offsets enter in delivery order and a redelivery keeps its place: the first is the lowest.
        const lowest = this.pending.get(p)?.keys().next().value;
        const offset = lowest ?? this.positions.get(p);
        return offset === undefined ? [] : [{ topic: this.topic.name, partition: p, offset }];
      });
      this.toCommit.clear();
      if (offsets.length === 0 || this.closed) return;
      this.session.context.coordinator.commit(this.member.name, offsets).catch((error: Error) => {
        // A partition revoked meanwhile is fenced: its new owner goes on from the last commit.
        this.session.logger.debug({ err: error, group: this.member.group.name }, 'commit refused');
      });
    });
  }

  /** `clean`: UNSUBSCRIBE or DISCONNECT, so the member leaves at once; otherwise it may come back. */
  override close(clean = false): void {
    if (this.closed) return;
    super.close();
    this.member.listeners.delete(this.onAssignment);
    if (clean) this.session.context.coordinator.leave(this.member.name);
    else this.session.context.coordinator.connectionLost(this.member);
  }
}

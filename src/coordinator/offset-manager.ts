import { RillError } from '../errors/index.js';
import { tpKey, type TopicPartition } from './assignors.js';
import type { Clock } from './clock.js';
import type { CommittedRecordRef, ConsumerGroup, Member } from './group.js';
import type { OffsetStore } from './offset-store.js';
import { requireTopic, type LogAccess } from './topics.js';

export type SeekTarget = { to: 'earliest' } | { to: 'latest' } | { to: 'offset'; offset: number } | { to: 'timestamp'; timestamp: number };

/** `offset` counts a partition never committed as 0 (`committedOffset` is then null). */
export type LagRow = CommittedRecordRef & { committedOffset: number | null; logEndOffset: number; lag: number };

/**
 * Committed offsets (the next offset to read, as Kafka) and the rules around them: only the owner
 * of a partition in the current generation commits it; seeks, admin resets and lag.
 */
export class OffsetManager {
  constructor(
    private readonly log: LogAccess,
    private readonly store: OffsetStore,
    private readonly clock: Clock,
  ) {}

  /** Commits offsets for partitions the member owns, in `generation` if one is named. */
  async commit(member: Member, offsets: CommittedRecordRef[], generation?: number): Promise<void> {
    member.group.fence(generation);
    for (const entry of offsets) {
      if (!member.owns(entry)) {
        throw new RillError('not-owner', `consumer "${member.name}" does not own ${entry.topic}/${entry.partition} in generation ${member.group.generation}`);
      }
      if (!Number.isInteger(entry.offset) || entry.offset < 0) throw new RillError('invalid-request', `offset ${entry.offset} is not a whole number >= 0`);
    }
    await this.store.commit(member.group.name, offsets);
  }

  /** Remembers a message a single-message poll handed out, so that it can be acknowledged by its id. */
  rememberPolled(member: Member, messageId: string, ref: CommittedRecordRef): void {
    member.polled.set(messageId, ref);
  }

  /** Commits the message handed out under `messageId` (the seed's acknowledgement by id). */
  async acknowledge(member: Member, messageId: string): Promise<CommittedRecordRef> {
    const ref = member.polled.get(messageId);
    if (ref === undefined) throw new RillError('unknown-message', `consumer "${member.name}" has no unacknowledged message "${messageId}"`);
    member.polled.delete(messageId);
    const next = { topic: ref.topic, partition: ref.partition, offset: ref.offset + 1 };
    const committed = this.store.committed(member.group.name, ref);
    if (committed === undefined || committed < next.offset) await this.commit(member, [next]);
    return ref;
  }

  /** Commits the member's positions when its group auto-commits and the interval has passed. */
  async autoCommitIfDue(member: Member): Promise<void> {
    const interval = member.group.settings.autoCommitIntervalMs;
    if (interval <= 0 || this.clock.now() - member.lastAutoCommit < interval) return;
    member.lastAutoCommit = this.clock.now();
    const offsets = member.assignment.flatMap((tp) => {
      const position = member.positions.get(tpKey(tp));
      return position === undefined ? [] : [{ ...tp, offset: position }];
    });
    if (offsets.length > 0) await this.store.commit(member.group.name, offsets);
  }

  /** Moves a member's position in a partition it owns. */
  async seek(member: Member, tp: TopicPartition, target: SeekTarget): Promise<number> {
    if (!member.owns(tp)) throw new RillError('not-owner', `consumer "${member.name}" does not own ${tp.topic}/${tp.partition}`);
    const position = await this.resolve(tp, target);
    member.positions.set(tpKey(tp), position);
    member.pulledFrom.delete(tpKey(tp));
    return position;
  }

  private async resolve(tp: TopicPartition, target: SeekTarget): Promise<number> {
    const topic = requireTopic(this.log, tp.topic);
    if (tp.partition >= topic.partitions) throw new RillError('invalid-request', `topic ${tp.topic} has no partition ${tp.partition}`);
    const offsets = await this.log.offsets(topic, tp.partition, target.to === 'timestamp' ? target.timestamp : undefined);
    if (target.to === 'earliest') return offsets.logStartOffset;
    if (target.to === 'latest') return offsets.logEndOffset;
    if (target.to === 'timestamp') return offsets.offsetForTimestamp ?? offsets.logEndOffset;
    return Math.min(Math.max(target.offset, offsets.logStartOffset), offsets.logEndOffset);
  }

  /**
   * Sets a whole group's committed offsets (an admin operation: the group must have no members);
   * a dry run says what they would be, members or not, and changes nothing.
   */
  async resetOffsets(group: ConsumerGroup, target: SeekTarget, topicName?: string, dryRun = false): Promise<CommittedRecordRef[]> {
    if (group.memberCount > 0 && !dryRun) {
      throw new RillError('group-not-empty', `group "${group.name}" has ${group.memberCount} members; offsets can be reset only when it has none`);
    }
    await this.store.catchUp();
    const topics = topicName !== undefined ? [topicName] : [...new Set(this.store.groupOffsets(group.name).map((o) => o.topic))];
    const entries: CommittedRecordRef[] = [];
    for (const name of topics) {
      // An admin operation never creates a topic (a dry run needs only describe on the group).
      const topic = this.log.topics.get(name);
      if (topic === undefined) throw new RillError('unknown-topic', `no topic "${name}"`);
      for (let partition = 0; partition < topic.partitions; partition++) {
        entries.push({ topic: name, partition, offset: await this.resolve({ topic: name, partition }, target) });
      }
    }
    if (!dryRun) await this.store.commit(group.name, entries);
    return entries;
  }

  /** Per partition: committed offset, log end and lag (end minus committed). */
  async lag(group: ConsumerGroup): Promise<LagRow[]> {
    await this.store.catchUp();
    const partitions = new Map<string, TopicPartition>();
    for (const entry of this.store.groupOffsets(group.name)) partitions.set(tpKey(entry), entry);
    for (const topic of group.topics()) {
      const count = this.log.topics.get(topic)?.partitions ?? 0;
      for (let partition = 0; partition < count; partition++) partitions.set(tpKey({ topic, partition }), { topic, partition });
    }
    const rows = await Promise.all(
      [...partitions.values()].map(async (tp) => {
        const topic = this.log.topics.get(tp.topic);
        const end = topic === undefined ? 0 : (await this.log.offsets(topic, tp.partition)).logEndOffset;
        const committedOffset = this.store.committed(group.name, tp) ?? null;
        const committed = committedOffset ?? 0;
        return { topic: tp.topic, partition: tp.partition, offset: committed, committedOffset, logEndOffset: end, lag: Math.max(0, end - committed) };
      }),
    );
    return rows.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  }
}

import type { TrafficCounter } from '../broker/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { tpKey, type TopicPartition } from './assignors.js';
import { systemClock, type Clock } from './clock.js';
import { DeadLetters, readRecordAt } from './dead-letter.js';
import { Fetcher, READ_BYTES, type FetchedBatches, type PulledRecord, type PullOptions } from './fetcher.js';
import type { AssignmentListener, CommittedRecordRef, GroupSettings, GroupState } from './group.js';
import type { GroupDirectory } from './group-directory.js';
import type { MemberBinding } from './member-binding.js';
import { Membership, type GroupDescription, type MemberView } from './membership.js';
import { OffsetManager, type LagRow, type SeekTarget } from './offset-manager.js';
import type { OffsetStore } from './offset-store.js';
import { PushDeliveries } from './push-deliveries.js';
import type { LogAccess } from './topics.js';
import { TransactionalOffsetCommit, type TransactionOffsetSource } from './transactional-offsets.js';

export type { MemberView } from './membership.js';
export type { PulledRecord, PullOptions } from './fetcher.js';
export type { SeekTarget } from './offset-manager.js';

export interface CoordinatorOptions {
  defaults: GroupSettings;
  /** Remove a dynamic member at once when its connection drops, rather than at session timeout. */
  removeOnDisconnect: boolean;
  /** Time and timers (default: the system's); tests pass a fake one. */
  clock?: Clock;
  /** Cluster mode: groups whose members may be connected to other nodes are decided in this shared directory. */
  directory?: GroupDirectory;
}

/**
 * The group coordinator: consumer groups, their members, generations and assignments, committed
 * offsets and pulls. It stands beside the publish path: it reads the logs through the broker like
 * any consumer and writes committed offsets to the internal topic `__consumer_offsets`.
 *
 * This class is the one door the gateway and the operations use; the work is done by its parts:
 * `Membership` (groups, members, rebalances), `OffsetManager` (commits, seeks, lag), `Fetcher`
 * (positions and pulls), `DeadLetters` and `PushDeliveries` (the rules of push subscriptions).
 * Everything it hands out is a copy or a read-only view.
 */
export class GroupCoordinator {
  private readonly clock: Clock;
  private readonly membership: Membership;
  private readonly offsets: OffsetManager;
  private readonly fetcher: Fetcher;
  private readonly deadLetters: DeadLetters;
  private shuttingDown = false;
  /** Rejects being dead-lettered now, by group, partition and offset. */
  private readonly rejecting = new Set<string>();

  constructor(
    private readonly log: LogAccess,
    readonly store: OffsetStore,
    options: CoordinatorOptions,
    private readonly logger: Logger,
  ) {
    this.clock = options.clock ?? systemClock;
    this.membership = new Membership(log, store, options, this.clock, logger);
    this.offsets = new OffsetManager(log, store, this.clock);
    this.deadLetters = new DeadLetters(log, this.clock);
    this.fetcher = new Fetcher(log, store, this.deadLetters, this.clock);
  }

  async start(): Promise<void> {
    await this.store.load();
    this.membership.restore(this.store.savedGroups());
    await this.membership.start();
  }

  /**
   * The broker is about to close every connection: none of that is a consumer's failure, so no
   * delivery it leaves unsettled counts towards dead-lettering.
   */
  prepareShutdown(): void {
    this.shuttingDown = true;
    this.membership.shuttingDown = true;
  }

  stop(): void {
    this.membership.stop();
    this.fetcher.stop();
  }

  // ---- groups ----

  createGroup(name: string, settings: Partial<GroupSettings> = {}): Promise<GroupState> {
    return this.membership.createGroup(name, settings);
  }

  group(name: string): GroupState {
    return this.membership.group(name);
  }

  /** Counts since the start, for metrics. */
  counters(): { rebalances: number; deadLettered: number } {
    return { rebalances: this.membership.rebalances, deadLettered: this.deadLetters.sent };
  }

  /** The group a member belongs to, without counting as a heartbeat (undefined: no such member). */
  groupOfMember(memberName: string): string | undefined {
    return this.membership.groupOf(memberName);
  }

  listGroups(): GroupState[] {
    return this.membership.listGroups();
  }

  describe(groupName: string): GroupDescription {
    return this.membership.describe(groupName);
  }

  /** Topics whose partition count grew: their groups rebalance to cover the new partitions. */
  partitionsAdded(topic: string): void {
    this.membership.partitionsAdded(topic);
  }

  /** Deletes a group that has no members (refused with group-not-empty otherwise), and its committed offsets. */
  deleteGroup(name: string): Promise<void> {
    return this.membership.deleteGroup(name);
  }

  /**
   * A topic was deleted: its groups rebalance without it, and every group's committed offsets and
   * delivery counts for it are forgotten (a topic created again under its name starts afresh).
   */
  async topicDeleted(topic: string): Promise<void> {
    this.membership.topicDeleted(topic);
    await this.store.forget((_group, candidate) => candidate === topic);
  }

  // ---- membership ----

  async join(groupName: string, memberName: string, options: { instanceId?: string; topics?: string[] } = {}): Promise<MemberView> {
    return this.membership.view(await this.membership.join(groupName, memberName, options));
  }

  /** Replaces the member's subscription. */
  async subscribe(memberName: string, topics: string[]): Promise<MemberView> {
    return this.membership.view(await this.membership.subscribe(memberName, topics));
  }

  /** Adds topics to the member's subscription (the seed's API subscribes one call at a time). */
  async addTopics(memberName: string, topics: string[]): Promise<MemberView> {
    const current = this.membership.member(memberName).topics;
    return this.subscribe(memberName, [...new Set([...current, ...topics])]);
  }

  /** Hears from the member; in cluster mode its group's decisions asked for on this node are taken first, so that it sees them. */
  async heartbeat(memberName: string): Promise<MemberView> {
    const member = this.membership.member(memberName);
    await this.membership.decided(member.group);
    return this.membership.view(member);
  }

  /** A clean leave: the member's partitions go to the others at once. */
  async leave(memberName: string): Promise<void> {
    await this.membership.leave(memberName);
  }

  /**
   * Joins a member for a live connection that holds it until `release`: refused (`name-taken`)
   * while another connection holds it. `onAssignment` hears of every new assignment.
   */
  connect(
    groupName: string,
    memberName: string,
    options: { instanceId?: string; topics?: string[] },
    onAssignment: AssignmentListener,
  ): Promise<MemberBinding> {
    return this.membership.connect(groupName, memberName, options, onAssignment);
  }

  /** Holds a member already joined for a live connection (a STOMP join), until `release`. */
  bind(memberName: string, onAssignment: AssignmentListener): MemberBinding {
    return this.membership.bind(this.membership.member(memberName), onAssignment);
  }

  // ---- reading ----

  /** Where a member starts in a partition it was just given: the committed offset, else the reset policy. */
  startPosition(memberName: string, tp: TopicPartition): Promise<number> {
    return this.fetcher.startPosition(this.membership.member(memberName), tp);
  }

  /** Returns a batch from the member's partitions, waiting up to maxWaitMs for one if there is none yet. */
  async pull(memberName: string, options: PullOptions = {}): Promise<MemberView & { records: PulledRecord[] }> {
    const member = this.membership.member(memberName);
    await this.membership.decided(member.group);
    member.group.fence(options.generation);
    const deadline = this.clock.now() + (options.maxWaitMs ?? 0);
    await this.offsets.autoCommitIfDue(member);
    const records = await this.fetcher.pull(member, options.maxMessages ?? 500, options.maxBytes ?? READ_BYTES, deadline);
    member.lastSeen = this.clock.now();
    this.countDelivered(records);
    return { ...this.membership.view(member), records };
  }

  /** Pulled records count as delivered, per topic (for metrics): one counter lookup per run of a topic. */
  private countDelivered(records: readonly PulledRecord[]): void {
    let counted: string | null = null;
    let counter: TrafficCounter | undefined;
    for (const record of records) {
      if (record.topic !== counted) {
        counted = record.topic;
        counter = this.log.delivered.of(counted);
      }
      counter!.messages++;
      counter!.bytes += record.value.length;
    }
  }

  /**
   * As `pull`, handing on the stored record batches as they are (Kafka's RecordBatch v2, compressed
   * or not, transaction markers included) instead of decoded records: the broker does no work per
   * record, the client decodes.
   */
  async pullBatches(memberName: string, options: Omit<PullOptions, 'maxMessages'> = {}): Promise<MemberView & { partitions: FetchedBatches[] }> {
    const member = this.membership.member(memberName);
    await this.membership.decided(member.group);
    member.group.fence(options.generation);
    const deadline = this.clock.now() + (options.maxWaitMs ?? 0);
    await this.offsets.autoCommitIfDue(member);
    const partitions = await this.fetcher.pullBatches(member, options.maxBytes ?? READ_BYTES, deadline);
    member.lastSeen = this.clock.now();
    // Batches are handed on undecoded: their bytes are counted, their records are not.
    for (const { topic, batches } of partitions) this.log.delivered.of(topic).bytes += batches.length;
    return { ...this.membership.view(member), partitions };
  }

  /**
   * A pull consumer gives up on a message it was handed (RabbitMQ's reject without requeue): it
   * goes to the dead-letter topic at once, and no member of the group is handed it again. The
   * consumer still commits past it as it goes on.
   */
  async reject(memberName: string, ref: CommittedRecordRef, generation?: number): Promise<CommittedRecordRef & { deadLetter: CommittedRecordRef | null }> {
    const member = this.membership.member(memberName);
    member.group.fence(generation);
    if (!member.owns(ref)) throw new RillError('not-owner', `consumer "${member.name}" does not own ${ref.topic}/${ref.partition}`);
    const group = member.group;
    // Only a message it was handed and has not committed: an offset off by one must not dead-letter a healthy message.
    const position = member.positions.get(tpKey(ref));
    const committed = this.store.committed(group.name, ref) ?? 0;
    if (position === undefined || ref.offset >= position || ref.offset < committed) {
      throw new RillError(
        'unknown-message',
        `offset ${ref.offset} of ${ref.topic}/${ref.partition} is not a message consumer "${member.name}" was handed and has not committed (from ${committed} to ${(position ?? committed) - 1})`,
      );
    }
    // A reject sent again (or twice at once): dead-lettered once.
    const rejecting = `${group.name}\u0000${tpKey(ref)}\u0000${ref.offset}`;
    if (this.store.deliveries.isDeadLettered(group.name, ref, ref.offset) || this.rejecting.has(rejecting)) return { ...ref, deadLetter: null };
    this.rejecting.add(rejecting);
    try {
      return { ...ref, deadLetter: await this.deadLetterRejected(member.name, group, ref) };
    } finally {
      this.rejecting.delete(rejecting);
    }
  }

  private async deadLetterRejected(memberName: string, group: GroupState, ref: CommittedRecordRef): Promise<CommittedRecordRef> {
    const record = await readRecordAt(this.log, ref.topic, ref.partition, ref.offset);
    const failures = this.store.deliveries.partition(group.name, ref).get(ref.offset) ?? 0;
    const deadLetter = await this.deadLetters.send(
      {
        group: group.name,
        topic: ref.topic,
        partition: ref.partition,
        record,
        deliveries: Math.max(failures, 0) + 1,
        reason: `rejected by consumer ${memberName} of group ${group.name}`,
      },
      group.settings.deadLetterSuffix,
    );
    await this.store.deliveries.deadLettered(group.name, ref, ref.offset);
    return deadLetter;
  }

  // ---- offsets ----

  /** Commits offsets (the next offset to read, as Kafka) for partitions the member owns in this generation. */
  async commit(memberName: string, offsets: CommittedRecordRef[], generation?: number): Promise<MemberView> {
    const member = this.membership.member(memberName);
    await this.offsets.commit(member, offsets, generation);
    return this.membership.view(member);
  }

  /**
   * Offsets to commit as part of a transaction, checked when it is decided (see
   * TransactionalOffsetCommit): for partitions the member owns, in `generation` if one is named.
   * A pull consumer's (`pulled`) is refused in a group that auto-commits its pulls: those commits
   * would pass inputs whose outputs the transaction has not stored.
   */
  offsetsInTransaction(
    memberName: string,
    source: TransactionOffsetSource,
    options: { generation?: number; pulled?: boolean } = {},
  ): TransactionalOffsetCommit {
    const member = this.membership.member(memberName);
    if (options.pulled === true && member.group.settings.autoCommitIntervalMs > 0) {
      throw new RillError(
        'invalid-request',
        `group "${member.group.name}" auto-commits pulled messages, which would commit past inputs this transaction has not stored the outputs of: create the group with autoCommitIntervalMs 0`,
      );
    }
    return new TransactionalOffsetCommit(member, source, this.store, options.generation);
  }

  /** At start-up: the offsets of a transaction decided before a crash, committed unless a later commit passed them. */
  commitForward(group: string, offsets: readonly CommittedRecordRef[]): Promise<void> {
    return this.store.commitForward(group, offsets);
  }

  /** Remembers what a single-message poll handed out under `messageId`, for `acknowledge`. */
  rememberPolled(memberName: string, messageId: string, ref: CommittedRecordRef): void {
    this.offsets.rememberPolled(this.membership.member(memberName), messageId, ref);
  }

  /** Commits the message handed out under `messageId` (the seed's acknowledgement by id). */
  acknowledge(memberName: string, messageId: string): Promise<CommittedRecordRef> {
    return this.offsets.acknowledge(this.membership.member(memberName), messageId);
  }

  /** Moves a member's position in a partition it owns. */
  seek(memberName: string, tp: TopicPartition, target: SeekTarget): Promise<number> {
    return this.offsets.seek(this.membership.member(memberName), tp, target);
  }

  /** Sets a whole group's committed offsets (an admin operation: the group must have no members). */
  resetOffsets(groupName: string, target: SeekTarget, topicName?: string, dryRun = false): Promise<CommittedRecordRef[]> {
    return this.offsets.resetOffsets(this.membership.group(groupName), target, topicName, dryRun);
  }

  /** Per partition: committed offset, log end and lag (end minus committed). */
  lag(groupName: string): Promise<LagRow[]> {
    return this.offsets.lag(this.membership.group(groupName));
  }

  // ---- push subscriptions ----

  /** The commit and dead-letter rules for a push subscription of a held member to one topic. */
  pushDeliveries(binding: MemberBinding, topic: string, autoAck: boolean): PushDeliveries {
    const group = this.membership.group(binding.group);
    const counts = this.store.deliveries;
    return new PushDeliveries(
      group.name,
      topic,
      autoAck,
      {
        maxDeliveries: () => group.settings.maxDeliveries,
        shuttingDown: () => this.shuttingDown,
        deadLetterExpired: () => group.settings.deadLetterExpired,
        commit: (offsets) => this.commit(binding.member, offsets),
        deadLetter: (partition, record, deliveries, reason) =>
          this.deadLetters.send({ group: group.name, topic, partition, record, deliveries, reason }, group.settings.deadLetterSuffix),
        counts: (partition) => counts.partition(group.name, { topic, partition }),
        failed: (partition, offsets) => counts.failed(group.name, { topic, partition }, offsets),
        deadLettered: (partition, offset) => counts.deadLettered(group.name, { topic, partition }, offset),
      },
      this.clock,
      this.logger,
    );
  }
}

import { forEachRecord, partitionForKey, type Broker, type RecordHeaders, type Topic } from '../broker/index.js';
import { TOPIC_NAME_PATTERN } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import { assign, tpKey, type Assignment, type TopicPartition } from './assignors.js';
import { RillError } from '../errors/index.js';
import { ConsumerGroup, Member, type CommittedRecordRef, type GroupSettings } from './group.js';
import type { OffsetStore } from './offset-store.js';

export interface CoordinatorOptions {
  defaults: GroupSettings;
  /** Remove a dynamic member at once when its connection drops, rather than at session timeout. */
  removeOnDisconnect: boolean;
  autoCreateTopics: boolean;
  defaultPartitions: number;
}

export interface MemberView {
  group: string;
  member: string;
  generation: number;
  assignment: TopicPartition[];
}

export interface PulledRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  messageId: string | null;
  timestamp: number;
  headers: Array<[string, string]>;
  value: Buffer;
}

export interface PullOptions {
  maxMessages?: number;
  maxBytes?: number;
  maxWaitMs?: number;
  generation?: number;
}

export type SeekTarget = { to: 'earliest' } | { to: 'latest' } | { to: 'offset'; offset: number } | { to: 'timestamp'; timestamp: number };

type LogAccess = Pick<Broker, 'topic' | 'createTopic' | 'read' | 'offsets' | 'watch' | 'appendAndWait'>;

const READ_BYTES = 1024 * 1024;
/** Far shorter than any sensible retention of the internal topic. */
const CHECKPOINT_INTERVAL_MS = 3600_000;
const EXPIRY_CHECK_MS = 200;
const MEMBER_NAME = /^[^\s/]{1,249}$/;

/**
 * The group coordinator: consumer groups, their members, generations and assignments, committed
 * offsets and pulls. It stands beside the publish path: it reads the logs through the broker like
 * any consumer and writes committed offsets to the internal topic `__consumer_offsets`.
 */
export class GroupCoordinator {
  private readonly groups = new Map<string, ConsumerGroup>();
  /** Members by name: names are unique across groups, as the seed's API names members alone. */
  private readonly members = new Map<string, Member>();
  private expiryTimer: NodeJS.Timeout | null = null;
  private checkpointTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly broker: LogAccess,
    readonly store: OffsetStore,
    private readonly options: CoordinatorOptions,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.store.load();
    for (const [name, settings] of this.store.savedGroups()) {
      this.groups.set(name, new ConsumerGroup(name, { ...this.options.defaults, ...(JSON.parse(settings) as Partial<GroupSettings>) }));
    }
    this.expiryTimer = setInterval(() => this.expireMembers(), EXPIRY_CHECK_MS);
    this.expiryTimer.unref();
    this.checkpointTimer = setInterval(() => {
      this.store.checkpoint().catch((error: unknown) => this.logger.error({ err: error }, 'offsets checkpoint failed'));
    }, CHECKPOINT_INTERVAL_MS);
    this.checkpointTimer.unref();
  }

  stop(): void {
    if (this.expiryTimer !== null) clearInterval(this.expiryTimer);
    if (this.checkpointTimer !== null) clearInterval(this.checkpointTimer);
  }

  // ---- groups ----

  async createGroup(name: string, settings: Partial<GroupSettings> = {}): Promise<ConsumerGroup> {
    if (!TOPIC_NAME_PATTERN.test(name)) throw new RillError('invalid-request', `invalid group name "${name.slice(0, 300)}": 1 to 249 of A-Z a-z 0-9 . _ -`);
    const existing = this.groups.get(name);
    if (existing !== undefined && Object.keys(settings).length === 0) return existing;
    const group = existing ?? new ConsumerGroup(name, { ...this.options.defaults });
    group.settings = { ...group.settings, ...settings };
    // Registered before the write, so that concurrent joins find this group, not a second one.
    this.groups.set(name, group);
    await this.store.saveGroup(name, group.settings);
    if (existing === undefined) this.logger.info({ group: name, ...group.settings }, 'consumer group created');
    else if (settings.assignor !== undefined) this.rebalance(group, 'settings changed');
    return group;
  }

  group(name: string): ConsumerGroup {
    const group = this.groups.get(name);
    if (group === undefined) throw new RillError('unknown-group', `no consumer group "${name}"`);
    return group;
  }

  listGroups(): ConsumerGroup[] {
    return [...this.groups.values()];
  }

  // ---- membership ----

  /**
   * Adds a member to a group (creating the group if needed). A member joining again under its
   * name, or a static member under its instance id, gets its partitions back without a rebalance.
   */
  async join(groupName: string, memberName: string, options: { instanceId?: string; topics?: string[] } = {}): Promise<MemberView> {
    if (!MEMBER_NAME.test(memberName)) throw new RillError('invalid-request', `invalid consumer name "${memberName.slice(0, 300)}"`);
    const group = await this.createGroup(groupName);
    let member = options.instanceId === undefined ? undefined : group.staticMember(options.instanceId);
    if (member !== undefined && member.name !== memberName) {
      this.members.delete(member.name);
      member.name = memberName;
      this.members.set(memberName, member);
    }
    member ??= this.members.get(memberName);
    if (member !== undefined && member.group !== group) {
      throw new RillError('name-taken', `consumer "${memberName}" is already a member of group "${member.group.name}"`);
    }
    let changed = false;
    if (member === undefined) {
      member = new Member(memberName, group, options.instanceId ?? null);
      group.members.set(memberName, member);
      this.members.set(memberName, member);
      changed = true;
    }
    member.lastSeen = Date.now();
    if (options.topics !== undefined) changed = this.setTopics(member, options.topics) || changed;
    if (changed) this.rebalance(group, `member ${memberName} joined`);
    return this.view(member);
  }

  async subscribe(memberName: string, topics: string[]): Promise<MemberView> {
    const member = this.member(memberName);
    if (this.setTopics(member, topics)) this.rebalance(member.group, `member ${memberName} subscribed to ${topics.join(',')}`);
    return this.view(member);
  }

  private setTopics(member: Member, topics: string[]): boolean {
    for (const topic of topics) this.requireTopic(topic);
    const next = new Set(topics);
    if (next.size === member.topics.size && [...next].every((t) => member.topics.has(t))) return false;
    member.topics.clear();
    for (const topic of next) member.topics.add(topic);
    return true;
  }

  private requireTopic(name: string): Topic {
    const existing = this.broker.topic(name);
    if (existing !== undefined) return existing;
    if (!TOPIC_NAME_PATTERN.test(name) || name.startsWith('__')) throw new RillError('invalid-request', `invalid topic name "${name.slice(0, 300)}"`);
    if (!this.options.autoCreateTopics) throw new RillError('unknown-topic', `topic "${name}" does not exist and auto-create is off`);
    return this.broker.createTopic(name, this.options.defaultPartitions);
  }

  member(name: string): Member {
    const member = this.members.get(name);
    if (member === undefined) throw new RillError('unknown-member', `no consumer "${name}" (register it first, or it was removed after its session timed out)`);
    member.lastSeen = Date.now();
    return member;
  }

  /** Whether a live connection holds the member named so (a push subscription, a STOMP join). */
  isBound(name: string): boolean {
    return this.members.get(name)?.bound === true;
  }

  heartbeat(memberName: string): MemberView {
    return this.view(this.member(memberName));
  }

  /** A clean leave: the member's partitions go to the others at once. */
  leave(memberName: string): void {
    const member = this.members.get(memberName);
    if (member !== undefined) this.remove(member, `member ${memberName} left`);
  }

  /** The connection holding a member dropped: it times out, or leaves at once if so configured. */
  connectionLost(member: Member): void {
    member.bound = false;
    member.lastSeen = Date.now();
    if (this.options.removeOnDisconnect && member.instanceId === null) this.remove(member, `member ${member.name} disconnected`);
  }

  private remove(member: Member, reason: string): void {
    if (this.members.get(member.name) !== member) return;
    this.members.delete(member.name);
    member.group.members.delete(member.name);
    member.assign(member.group.generation, []);
    this.rebalance(member.group, reason);
  }

  private expireMembers(): void {
    const now = Date.now();
    for (const member of [...this.members.values()]) {
      if (!member.bound && now - member.lastSeen > member.group.settings.sessionTimeoutMs) {
        this.remove(member, `member ${member.name} timed out after ${member.group.settings.sessionTimeoutMs} ms without a heartbeat`);
      }
    }
  }

  /** Topics whose partition count grew: their groups rebalance to cover the new partitions. */
  partitionsAdded(topic: string): void {
    for (const group of this.groups.values()) if (group.topics().has(topic)) this.rebalance(group, `topic ${topic} gained partitions`);
  }

  private rebalance(group: ConsumerGroup, reason: string): void {
    group.generation++;
    const partitions = new Map<string, number>();
    for (const topic of group.topics()) partitions.set(topic, this.broker.topic(topic)?.partitions ?? 0);
    const previous: Assignment = new Map([...group.members.values()].map((m) => [m.name, m.assignment]));
    const members = [...group.members.values()].map((m) => ({ id: m.name, topics: m.topics }));
    const next = assign(group.settings.assignor, members, partitions, previous);
    for (const member of group.members.values()) member.assign(group.generation, next.get(member.name) ?? []);
    this.logger.info(
      { group: group.name, generation: group.generation, members: group.members.size, assignor: group.settings.assignor, reason },
      'consumer group rebalanced',
    );
    for (const listener of group.changeListeners) listener();
  }

  view(member: Member): MemberView {
    return { group: member.group.name, member: member.name, generation: member.group.generation, assignment: member.assignment };
  }

  private checkGeneration(member: Member, generation: number | undefined): void {
    if (generation !== undefined && generation !== member.group.generation) {
      throw new RillError(
        'stale-generation',
        `generation ${generation} is stale: group "${member.group.name}" is at generation ${member.group.generation}; take the new assignment (heartbeat) and go on from there`,
      );
    }
  }

  // ---- reading ----

  /** Where a member starts in a partition it was just given: the committed offset, else the reset policy. */
  async startPosition(member: Member, tp: TopicPartition): Promise<number> {
    member.positions.delete(tpKey(tp));
    const topic = this.broker.topic(tp.topic);
    if (topic === undefined) throw new RillError('unknown-topic', `no topic "${tp.topic}"`);
    return this.position(member, tp, topic);
  }

  /** The next offset a member reads in a partition: its position, else the committed offset, else the reset policy. */
  private async position(member: Member, tp: TopicPartition, topic: Topic): Promise<number> {
    const known = member.positions.get(tpKey(tp));
    if (known !== undefined) return known;
    const committed = this.store.committed(member.group.name, tp);
    const offsets = await this.broker.offsets(topic, tp.partition);
    let position: number;
    if (committed !== undefined && committed >= offsets.logStartOffset && committed <= offsets.logEndOffset) position = committed;
    else position = member.group.settings.resetPolicy === 'earliest' ? offsets.logStartOffset : offsets.logEndOffset;
    member.positions.set(tpKey(tp), position);
    return position;
  }

  /** Returns a batch from the member's partitions, waiting up to maxWaitMs for one if there is none yet. */
  async pull(memberName: string, options: PullOptions = {}): Promise<MemberView & { records: PulledRecord[] }> {
    const member = this.member(memberName);
    this.checkGeneration(member, options.generation);
    const maxMessages = options.maxMessages ?? 500;
    const maxBytes = options.maxBytes ?? READ_BYTES;
    const deadline = Date.now() + (options.maxWaitMs ?? 0);
    if (member.group.settings.autoCommitIntervalMs > 0 && Date.now() - member.lastAutoCommit >= member.group.settings.autoCommitIntervalMs) {
      await this.commitPositions(member);
    }
    for (;;) {
      const generation = member.group.generation;
      const records = await this.fetch(member, maxMessages, maxBytes);
      if (records.length > 0 || Date.now() >= deadline || this.members.get(member.name) !== member || generation !== member.group.generation) {
        member.lastSeen = Date.now();
        return { ...this.view(member), records };
      }
      await this.waitForData(member, deadline - Date.now());
    }
  }

  /** Reads every assigned partition at once, each with its share of the byte budget, and merges. */
  private async fetch(member: Member, maxMessages: number, maxBytes: number): Promise<PulledRecord[]> {
    const assignment = member.assignment;
    if (assignment.length === 0) return [];
    const generation = member.group.generation;
    const share = Math.max(64 * 1024, Math.min(READ_BYTES, Math.ceil(maxBytes / assignment.length)));
    const first = member.nextPartition % assignment.length;
    member.nextPartition = (first + 1) % assignment.length;
    const ordered = [...assignment.slice(first), ...assignment.slice(0, first)];
    const reads = await Promise.all(
      ordered.map(async (tp) => {
        const topic = this.broker.topic(tp.topic);
        if (topic === undefined) return null;
        const position = await this.position(member, tp, topic);
        return { tp, position, result: await this.broker.read(topic, tp.partition, position, share) };
      }),
    );
    if (generation !== member.group.generation) return [];
    const records: PulledRecord[] = [];
    let bytes = 0;
    for (const read of reads) {
      if (read === null) continue;
      const { tp, position, result } = read;
      if (result.failure?.code === 'offset-out-of-range') {
        const reset = member.group.settings.resetPolicy === 'earliest' ? result.logStartOffset : result.logEndOffset;
        member.positions.set(tpKey(tp), Math.max(reset, result.logStartOffset));
        continue;
      }
      if (result.batches === null || records.length >= maxMessages || (bytes >= maxBytes && records.length > 0)) continue;
      let next = position;
      forEachRecord(result.batches, position, (record) => {
        if (records.length >= maxMessages || (bytes >= maxBytes && records.length > 0)) return false;
        records.push({ topic: tp.topic, partition: tp.partition, ...record });
        bytes += record.value.length;
        next = record.offset + 1;
        return true;
      });
      member.positions.set(tpKey(tp), next);
    }
    return records;
  }

  private waitForData(member: Member, ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const unwatchers: Array<() => void> = [];
      const done = (): void => {
        clearTimeout(timer);
        for (const unwatch of unwatchers) unwatch();
        member.group.changeListeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      member.group.changeListeners.add(done);
      for (const tp of member.assignment) {
        const topic = this.broker.topic(tp.topic);
        if (topic !== undefined) unwatchers.push(this.broker.watch(topic, tp.partition, done));
      }
    });
  }

  // ---- offsets ----

  /** Commits offsets (the next offset to read, as Kafka) for partitions the member owns in this generation. */
  async commit(memberName: string, offsets: CommittedRecordRef[], generation?: number): Promise<MemberView> {
    const member = this.member(memberName);
    this.checkGeneration(member, generation);
    for (const entry of offsets) {
      if (!member.owns(entry)) {
        throw new RillError('not-owner', `consumer "${memberName}" does not own ${entry.topic}/${entry.partition} in generation ${member.group.generation}`);
      }
      if (!Number.isInteger(entry.offset) || entry.offset < 0) throw new RillError('invalid-request', `offset ${entry.offset} is not a whole number >= 0`);
    }
    await this.store.commit(member.group.name, offsets);
    return this.view(member);
  }

  /** Commits the message handed out under `messageId` (the seed's acknowledgement by id). */
  async acknowledge(memberName: string, messageId: string): Promise<CommittedRecordRef> {
    const member = this.member(memberName);
    const ref = member.delivered.get(messageId);
    if (ref === undefined) throw new RillError('unknown-message', `consumer "${memberName}" has no unacknowledged message "${messageId}"`);
    member.delivered.delete(messageId);
    const next = { topic: ref.topic, partition: ref.partition, offset: ref.offset + 1 };
    const committed = this.store.committed(member.group.name, ref);
    if (committed === undefined || committed < next.offset) await this.commit(memberName, [next]);
    return ref;
  }

  private async commitPositions(member: Member): Promise<void> {
    member.lastAutoCommit = Date.now();
    const offsets = member.assignment.flatMap((tp) => {
      const position = member.positions.get(tpKey(tp));
      return position === undefined ? [] : [{ ...tp, offset: position }];
    });
    if (offsets.length > 0) await this.store.commit(member.group.name, offsets);
  }

  /** Moves a member's position in a partition it owns. */
  async seek(memberName: string, tp: TopicPartition, target: SeekTarget): Promise<number> {
    const member = this.member(memberName);
    if (!member.owns(tp)) throw new RillError('not-owner', `consumer "${memberName}" does not own ${tp.topic}/${tp.partition}`);
    const position = await this.resolve(tp, target);
    member.positions.set(tpKey(tp), position);
    return position;
  }

  private async resolve(tp: TopicPartition, target: SeekTarget): Promise<number> {
    const topic = this.requireTopic(tp.topic);
    if (tp.partition >= topic.partitions) throw new RillError('invalid-request', `topic ${tp.topic} has no partition ${tp.partition}`);
    const offsets = await this.broker.offsets(topic, tp.partition, target.to === 'timestamp' ? target.timestamp : undefined);
    if (target.to === 'earliest') return offsets.logStartOffset;
    if (target.to === 'latest') return offsets.logEndOffset;
    if (target.to === 'timestamp') return offsets.offsetForTimestamp ?? offsets.logEndOffset;
    return Math.min(Math.max(target.offset, offsets.logStartOffset), offsets.logEndOffset);
  }

  /** Sets a whole group's committed offsets (an admin operation: the group must have no members). */
  async resetOffsets(groupName: string, target: SeekTarget, topicName?: string): Promise<CommittedRecordRef[]> {
    const group = this.group(groupName);
    if (group.members.size > 0) throw new RillError('group-not-empty', `group "${groupName}" has ${group.members.size} members; offsets can be reset only when it has none`);
    const topics = topicName !== undefined ? [topicName] : [...new Set(this.store.groupOffsets(groupName).map((o) => o.topic))];
    const entries: CommittedRecordRef[] = [];
    for (const name of topics) {
      const topic = this.requireTopic(name);
      for (let partition = 0; partition < topic.partitions; partition++) {
        entries.push({ topic: name, partition, offset: await this.resolve({ topic: name, partition }, target) });
      }
    }
    await this.store.commit(groupName, entries);
    return entries;
  }

  /** Per partition: committed offset, log end and lag (end minus committed). */
  async lag(groupName: string): Promise<Array<CommittedRecordRef & { logEndOffset: number; lag: number }>> {
    const group = this.group(groupName);
    const partitions = new Map<string, TopicPartition>();
    for (const entry of this.store.groupOffsets(groupName)) partitions.set(tpKey(entry), entry);
    for (const topic of group.topics()) {
      const count = this.broker.topic(topic)?.partitions ?? 0;
      for (let partition = 0; partition < count; partition++) partitions.set(tpKey({ topic, partition }), { topic, partition });
    }
    const rows = await Promise.all(
      [...partitions.values()].map(async (tp) => {
        const topic = this.broker.topic(tp.topic);
        const end = topic === undefined ? 0 : (await this.broker.offsets(topic, tp.partition)).logEndOffset;
        const committed = this.store.committed(groupName, tp) ?? 0;
        return { ...tp, offset: committed, logEndOffset: end, lag: Math.max(0, end - committed) };
      }),
    );
    return rows.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  }

  describe(groupName: string): { group: string; generation: number; settings: GroupSettings; members: Array<MemberView & { topics: string[]; instanceId: string | null }> } {
    const group = this.group(groupName);
    return {
      group: group.name,
      generation: group.generation,
      settings: group.settings,
      members: [...group.members.values()].map((m) => ({ ...this.view(m), topics: [...m.topics], instanceId: m.instanceId })),
    };
  }

  /** Publishes a record to a topic on the coordinator's behalf (dead letters); the topic is created if need be. */
  async publish(topicName: string, key: string | null, messageId: string | null, headers: RecordHeaders, value: Buffer): Promise<TopicPartition & { offset: number }> {
    const topic = this.broker.topic(topicName) ?? this.broker.createTopic(topicName, this.options.defaultPartitions);
    const partition = key === null ? 0 : partitionForKey(key, topic.partitions);
    const offset = await this.broker.appendAndWait(topic, partition, Date.now(), key, messageId, headers, value);
    return { topic: topicName, partition, offset };
  }
}

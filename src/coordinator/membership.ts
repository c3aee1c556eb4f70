import { TOPIC_NAME_PATTERN } from '../config/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { tpKey, type PreviousAssignment, type TopicPartition } from './assignors.js';
import { assignWithLanes, type AssignedTopic } from './lane-assignment.js';
import type { Clock, TimerHandle } from './clock.js';
import { ConsumerGroup, Member, type AssignmentListener, type GroupSettings } from './group.js';
import type { GroupDirectory, SharedMember } from './group-directory.js';
import { HeldMember, type MemberBinding } from './member-binding.js';
import type { OffsetStore } from './offset-store.js';
import { SharedDecisions } from './shared-decisions.js';
import { requireTopic, type LogAccess } from './topics.js';

export interface MembershipOptions {
  defaults: GroupSettings;
  /** Remove a dynamic member at once when its connection drops, rather than at session timeout. */
  removeOnDisconnect: boolean;
  /** Cluster mode: groups whose members may be connected to other nodes, decided in this shared directory. */
  directory?: GroupDirectory;
}

/** A member as answered to clients: a copy, so nothing done with it reaches the coordinator. */
export interface MemberView {
  group: string;
  member: string;
  generation: number;
  assignment: TopicPartition[];
}

/** A group as answered to clients, its members included: copies, like MemberView. */
export interface GroupDescription {
  group: string;
  generation: number;
  settings: GroupSettings;
  /** `node`: in cluster mode, the node holding the member. */
  members: Array<MemberView & { topics: string[]; instanceId: string | null; node?: string }>;
}

const EXPIRY_CHECK_MS = 200;

const MEMBER_NAME = /^[^\s/]{1,249}$/;

/**
 * Groups and their members: joins, subscriptions and leaves, the connections holding members,
 * session timeouts, and the rebalance that numbers each new assignment with a generation.
 */
export class Membership {
  private readonly groups = new Map<string, ConsumerGroup>();
  /** Members by name: names are unique across groups, as the seed's API names members alone. */
  private readonly members = new Map<string, Member>();
  /** Rebalances of every group since the start (for metrics). */
  rebalances = 0;
  private expiryTimer: TimerHandle | null = null;
  /** The broker is closing every connection: members lost to it failed nothing. */
  shuttingDown = false;
  /** Cluster mode: where rebalances are decided. */
  private readonly shared: SharedDecisions | undefined;

  constructor(
    private readonly log: LogAccess,
    private readonly store: OffsetStore,
    private readonly options: MembershipOptions,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    const { directory } = options;
    if (directory === undefined) return;
    this.shared = new SharedDecisions(
      directory,
      {
        groupNamed: (name, settings) => this.groupNamed(name, settings),
        // The session timeout goes with them: the other nodes time this node's members out by it.
        savedSettings: (group) => ({ ...this.store.savedGroups().get(group.name), sessionTimeoutMs: group.settings.sessionTimeoutMs }),
        adoptSettings: (group, settings) => {
          group.settings = { ...this.options.defaults, ...settings };
        },
        generationOf: (name) => this.groups.get(name)?.generation,
        forgetGroup: (name) => {
          const group = this.groups.get(name);
          if (group !== undefined && group.members.size === 0) this.groups.delete(name);
        },
        assign: (group, members, previous) => Object.fromEntries(this.assign(group, members, new Map(Object.entries(previous)))),
        refuse: (member) => this.refuse(member),
        rebalanced: (group, reason) => this.rebalanced(group, reason),
      },
      clock,
      logger,
    );
  }

  /** Brings back the groups saved before a restart (their members are gone: they join again). */
  restore(saved: ReadonlyMap<string, Partial<GroupSettings>>): void {
    for (const [name, settings] of saved) this.groups.set(name, new ConsumerGroup(name, { ...this.options.defaults, ...settings }));
  }

  /** Starts the session timeouts and, in cluster mode, takes in the groups' shared state and follows it. */
  async start(): Promise<void> {
    this.expiryTimer = this.clock.setInterval(() => this.expireMembers(), EXPIRY_CHECK_MS);
    await this.shared?.start();
  }

  stop(): void {
    this.shared?.stop();
    if (this.expiryTimer !== null) this.clock.clearInterval(this.expiryTimer);
    this.expiryTimer = null;
  }

  // ---- groups ----

  async createGroup(name: string, settings: Partial<GroupSettings> = {}): Promise<ConsumerGroup> {
    if (!TOPIC_NAME_PATTERN.test(name)) throw new RillError('invalid-request', `invalid group name "${name.slice(0, 300)}": 1 to 249 of A-Z a-z 0-9 . _ -`);
    let existing = this.groups.get(name);
    if (existing !== undefined && Object.keys(settings).length === 0) return existing;
    if (existing === undefined && this.shared !== undefined) {
      // Cluster mode: a group this node does not know may exist on the others, with settings of its own.
      await this.store.catchUp();
      existing = this.groups.get(name);
      const saved = this.store.savedGroups().get(name);
      if (existing === undefined && saved !== undefined) {
        existing = new ConsumerGroup(name, { ...this.options.defaults, ...saved });
        this.groups.set(name, existing);
      }
      if (existing !== undefined && Object.keys(settings).length === 0) return existing;
    }
    const group = existing ?? new ConsumerGroup(name, { ...this.options.defaults });
    group.settings = { ...group.settings, ...settings };
    // Registered before the write, so that concurrent joins find this group, not a second one.
    this.groups.set(name, group);
    await this.store.saveGroup(name, group.settings);
    if (existing === undefined) this.logger.info({ group: name, ...group.settings }, 'consumer group created');
    // In cluster mode every change goes to the shared row, for the other nodes (and reassigns if the assignor changed).
    if (this.shared !== undefined && existing !== undefined) await this.shared.request(group, 'settings changed', settings.assignor !== undefined, true);
    else if (existing !== undefined && settings.assignor !== undefined) await this.rebalance(group, 'settings changed', true);
    return group;
  }

  /** Cluster mode: a group another node decided about, made here too (with the settings it was saved with) if this node did not know it. */
  private groupNamed(name: string, settings: Partial<GroupSettings>): ConsumerGroup {
    let group = this.groups.get(name);
    if (group === undefined) {
      group = new ConsumerGroup(name, { ...this.options.defaults, ...settings });
      this.groups.set(name, group);
    }
    return group;
  }

  /**
   * Cluster mode: a member of this node leaves, refused, when a member of another node holds its
   * name in the group, or its static instance (the client joined again through that node).
   */
  private refuse(member: Member): void {
    if (this.members.get(member.name) !== member) return;
    this.members.delete(member.name);
    member.group.members.delete(member.name);
    member.removed = true;
    member.refused = true;
    member.assign(member.group.generation, []);
  }

  /** Deletes a group that has no members, with its committed offsets (Kafka's DeleteGroups). */
  async deleteGroup(name: string): Promise<void> {
    const group = this.group(name);
    if (group.memberCount > 0) {
      throw new RillError('group-not-empty', `group "${name}" has ${group.memberCount} members; a group can be deleted only when it has none`);
    }
    // Cluster mode: refused if a member joined on another node meanwhile.
    await this.options.directory?.forget(name);
    // One that joined here while the directory deleted it brings the group back (its decision waited for the deletion).
    if (group.memberCount > 0)
      throw new RillError('group-not-empty', `group "${name}" has ${group.memberCount} members; a group can be deleted only when it has none`);
    this.groups.delete(name);
    await this.store.deleteGroup(name);
    this.logger.info({ group: name }, 'consumer group deleted');
  }

  group(name: string): ConsumerGroup {
    const group = this.groups.get(name);
    if (group === undefined) throw new RillError('unknown-group', `no consumer group "${name}"`);
    return group;
  }

  listGroups(): ConsumerGroup[] {
    return [...this.groups.values()];
  }

  // ---- members ----

  /**
   * Adds a member to a group (creating the group if needed). A member joining again under its
   * name, or a static member under its instance id, gets its partitions back without a rebalance.
   */
  async join(groupName: string, memberName: string, options: { instanceId?: string; topics?: string[] } = {}): Promise<Member> {
    if (!MEMBER_NAME.test(memberName)) throw new RillError('invalid-request', `invalid consumer name "${memberName.slice(0, 300)}"`);
    let group = await this.createGroup(groupName);
    // Deleted while it was being saved (it had no members yet): made again, so that the member never joins a group no one sees.
    while (this.groups.get(groupName) !== group) group = await this.createGroup(groupName);
    let member = options.instanceId === undefined ? undefined : group.staticMember(options.instanceId);
    if (member !== undefined && member.name !== memberName) {
      // A static member comes back under a new name, unless a live connection still holds it.
      if (member.connections > 0) {
        throw new RillError(
          'name-taken',
          `instance "${options.instanceId}" of group "${groupName}" is already consuming on a live connection, as consumer "${member.name}"`,
        );
      }
      if (this.members.has(memberName)) throw new RillError('name-taken', `consumer "${memberName}" already exists`);
      this.members.delete(member.name);
      group.members.delete(member.name);
      member.name = memberName;
      member.joinedAt = this.clock.now();
      this.members.set(memberName, member);
      group.members.set(memberName, member);
    }
    member ??= this.members.get(memberName);
    if (member !== undefined && member.group !== group) {
      throw new RillError('name-taken', `consumer "${memberName}" is already a member of group "${member.group.name}"`);
    }
    let changed = false;
    if (member === undefined) {
      member = new Member(memberName, group, options.instanceId ?? null, this.clock.now());
      group.members.set(memberName, member);
      this.members.set(memberName, member);
      changed = true;
    }
    member.lastSeen = this.clock.now();
    if (options.topics !== undefined) changed = this.setTopics(member, options.topics) || changed;
    const decided = changed ? this.rebalance(group, `member ${memberName} joined`) : undefined;
    if (decided !== undefined) await decided;
    if (member.refused) {
      throw new RillError(
        'name-taken',
        `consumer "${memberName}" of group "${groupName}" is a member on another node of the cluster; give this one another name`,
      );
    }
    return member;
  }

  /** Replaces the member's subscription. */
  async subscribe(memberName: string, topics: string[]): Promise<Member> {
    const member = this.member(memberName);
    const decided = this.setTopics(member, topics) ? this.rebalance(member.group, `member ${memberName} subscribed to ${topics.join(',')}`) : undefined;
    if (decided !== undefined) await decided;
    return member;
  }

  private setTopics(member: Member, topics: string[]): boolean {
    for (const topic of topics) requireTopic(this.log, topic);
    const next = new Set(topics);
    if (next.size === member.topics.size && [...next].every((t) => member.topics.has(t))) return false;
    member.topics.clear();
    for (const topic of next) member.topics.add(topic);
    return true;
  }

  /** The group of the member named so (undefined for no such member); it does not count as hearing from it. */
  groupOf(memberName: string): string | undefined {
    return this.members.get(memberName)?.group.name;
  }

  /** The member named so, which is heard from now (every request counts as a heartbeat). */
  member(name: string): Member {
    const member = this.members.get(name);
    if (member === undefined) throw new RillError('unknown-member', `no consumer "${name}" (register it first, or it was removed after its session timed out)`);
    member.lastSeen = this.clock.now();
    return member;
  }

  /** A clean leave: the member's partitions go to the others at once (in cluster mode: once the returned promise resolves). */
  async leave(memberName: string): Promise<void> {
    const member = this.members.get(memberName);
    if (member !== undefined) await this.remove(member, `member ${memberName} left`);
  }

  /** Resolves once the decisions about the group asked for on this node so far are applied (at once on one node). */
  async decided(group: ConsumerGroup): Promise<void> {
    await this.shared?.pending(group.name);
  }

  // ---- connections ----

  /**
   * Joins a member that a live connection will hold; refused while another connection holds the
   * member, by its name or its instance id.
   */
  async connect(
    groupName: string,
    memberName: string,
    options: { instanceId?: string; topics?: string[] },
    onAssignment: AssignmentListener,
  ): Promise<MemberBinding> {
    this.refuseIfHeld(groupName, memberName, options.instanceId);
    const member = await this.join(groupName, memberName, options);
    // Another connection may have taken it while the join waited for the group's creation.
    this.refuseIfHeld(groupName, memberName, options.instanceId);
    return this.bind(member, onAssignment);
  }

  private refuseIfHeld(groupName: string, memberName: string, instanceId: string | undefined): void {
    if ((this.members.get(memberName)?.connections ?? 0) > 0) {
      throw new RillError('name-taken', `consumer "${memberName}" is already consuming on a live connection; give this subscription another consumer-name`);
    }
    const holder = instanceId === undefined ? undefined : this.groups.get(groupName)?.staticMember(instanceId);
    if (holder !== undefined && holder.connections > 0) {
      throw new RillError(
        'name-taken',
        `instance "${instanceId}" of group "${groupName}" is already consuming on a live connection, as consumer "${holder.name}"`,
      );
    }
  }

  /** Holds a member for a live connection (one joined already). */
  bind(member: Member, onAssignment: AssignmentListener): MemberBinding {
    return new HeldMember(member, onAssignment, (released, clean) => {
      if (clean) this.remove(released, `member ${released.name} left`);
      else if (released.connections === 0) this.connectionLost(released);
    });
  }

  /** The last connection holding a member dropped: it times out, or leaves at once if so configured. */
  private connectionLost(member: Member): void {
    member.lastSeen = this.clock.now();
    if (this.options.removeOnDisconnect && member.instanceId === null) this.remove(member, `member ${member.name} disconnected`, true);
  }

  /** `gone`: it did not leave, it was lost (timed out, disconnected): what it pulled and did not commit failed. */
  private remove(member: Member, reason: string, gone = false): Promise<void> | undefined {
    if (this.members.get(member.name) !== member) return undefined;
    if (gone && !this.shuttingDown) this.countPulledUncommitted(member);
    this.members.delete(member.name);
    member.group.members.delete(member.name);
    member.removed = true;
    member.assign(member.group.generation, []);
    return this.rebalance(member.group, reason);
  }

  /**
   * A member was lost: the oldest message it pulled and did not commit, in each partition, counts
   * as a failed delivery (it may have crashed on it), so that a message that kills every consumer
   * reaching it is dead-lettered after maxDeliveries rather than pulled for ever. The messages
   * pulled after it are not counted: they may be healthy.
   */
  private countPulledUncommitted(member: Member): void {
    const group = member.group.name;
    for (const tp of member.assignment) {
      const key = tpKey(tp);
      const position = member.positions.get(key);
      const pulledFrom = member.pulledFrom.get(key);
      if (position === undefined || pulledFrom === undefined) continue;
      // The oldest message it had pulled and not committed: the one it was on when it went.
      const oldest = Math.max(this.store.committed(group, tp) ?? 0, pulledFrom);
      if (oldest >= position) continue;
      this.store.deliveries.failed(group, tp, [oldest]).catch((error: Error) => {
        this.logger.error({ err: error, group, topic: tp.topic, partition: tp.partition }, 'could not count the delivery of a lost member');
      });
    }
  }

  private expireMembers(): void {
    const now = this.clock.now();
    for (const member of [...this.members.values()]) {
      const { sessionTimeoutMs } = member.group.settings;
      if (member.connections === 0 && now - member.lastSeen > sessionTimeoutMs) {
        this.remove(member, `member ${member.name} timed out after ${sessionTimeoutMs} ms without a heartbeat`, true);
      }
    }
  }

  // ---- assignment ----

  /** Topics whose partition count grew: their groups rebalance to cover the new partitions. */
  partitionsAdded(topic: string): void {
    for (const group of this.groups.values()) if (group.topics().has(topic)) void this.rebalance(group, `topic ${topic} gained partitions`, true);
  }

  /** A topic was deleted: its groups rebalance without it. */
  topicDeleted(topic: string): void {
    for (const group of this.groups.values()) if (group.topics().has(topic)) void this.rebalance(group, `topic ${topic} was deleted`, true);
  }

  /**
   * A new generation and assignment for the group. On one node it is made here and now; in
   * cluster mode it is decided in the shared directory (the returned promise), which every node
   * applies. `force`: reassign even when the members are the same.
   */
  private rebalance(group: ConsumerGroup, reason: string, force = false): Promise<void> | undefined {
    if (this.shared !== undefined) {
      const decided = this.shared.request(group, reason, force);
      // Whoever does not wait for it is not told of its failure: the decision is retried, and logged.
      decided.catch(() => {});
      return decided;
    }
    group.generation++;
    const members = [...group.members.values()].map((m) => ({ name: m.name, topics: [...m.topics] }));
    const next = this.assign(group, members, new Map([...group.members.values()].map((m) => [m.name, m.assignment])));
    for (const member of group.members.values()) member.assign(group.generation, next.get(member.name) ?? []);
    this.rebalanced(group, reason);
    return undefined;
  }

  /** What the group's assignor gives these members of the topics they subscribe to, sticking to `previous` where it can. */
  private assign(
    group: ConsumerGroup,
    members: ReadonlyArray<Pick<SharedMember, 'name' | 'topics'>>,
    previous: PreviousAssignment,
  ): Map<string, TopicPartition[]> {
    const topics = new Map<string, AssignedTopic>();
    for (const name of new Set(members.flatMap((m) => m.topics))) {
      const topic = this.log.topics.get(name);
      topics.set(name, { partitions: topic?.partitions ?? 0, lanes: topic?.lanes ?? 1 });
    }
    return assignWithLanes(
      group.settings.assignor,
      members.map((m) => ({ id: m.name, topics: new Set(m.topics) })),
      topics,
      previous,
    );
  }

  private rebalanced(group: ConsumerGroup, reason: string): void {
    this.rebalances++;
    this.logger.info(
      { group: group.name, generation: group.generation, members: group.memberCount, assignor: group.settings.assignor, reason },
      'consumer group rebalanced',
    );
    for (const listener of group.changeListeners) listener();
  }

  view(member: Member): MemberView {
    return { group: member.group.name, member: member.name, generation: member.group.generation, assignment: [...member.assignment] };
  }

  describe(groupName: string): GroupDescription {
    const group = this.group(groupName);
    const node = this.options.directory?.nodeId;
    return {
      group: group.name,
      generation: group.generation,
      settings: { ...group.settings },
      members: [
        ...[...group.members.values()].map((m) => ({
          ...this.view(m),
          topics: [...m.topics],
          instanceId: m.instanceId,
          ...(node === undefined ? {} : { node }),
        })),
        ...group.remote.map((m) => ({
          group: group.name,
          member: m.name,
          generation: group.generation,
          assignment: [...m.assignment],
          topics: [...m.topics],
          instanceId: m.instanceId,
          node: m.node,
        })),
      ],
    };
  }
}

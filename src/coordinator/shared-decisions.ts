import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { TopicPartition } from './assignors.js';
import type { Clock, TimerHandle } from './clock.js';
import type { ConsumerGroup, GroupSettings, Member } from './group.js';
import { supersedes, type GroupDirectory, type SharedGroupState, type SharedMember } from './group-directory.js';

/**
 * How often a node looks at the cluster: for members of nodes gone quiet (reassignment comes within a
 * session timeout plus this), and for decisions it did not hear of.
 */
const CLUSTER_CHECK_MS = 250;
/** A decision the database could not take is tried again after this. */
const RETRY_MS = 1_000;

/** What the decisions need of the membership they serve. */
export interface DecisionHost {
  /** The group named so, made on this node if it only existed elsewhere until now. */
  groupNamed(name: string, settings: Partial<GroupSettings>): ConsumerGroup;
  /** The settings a group was created or changed with (only those, not the defaults). */
  savedSettings(group: ConsumerGroup): Partial<GroupSettings>;
  /** The group's settings as the cluster has them (another node may have changed them). */
  adoptSettings(group: ConsumerGroup, settings: Partial<GroupSettings>): void;
  /** The assignor's answer for these members, sticking to `previous` where it can. */
  assign(group: ConsumerGroup, members: readonly SharedMember[], previous: Record<string, TopicPartition[]>): Record<string, TopicPartition[]>;
  /** The generation this node applied for the group (undefined: it does not know the group). */
  generationOf(group: string): number | undefined;
  /** Another node deleted the group (it had no members anywhere). */
  forgetGroup(name: string): void;
  /** A member of this node whose name (or static instance) a member held by another node has: it must leave. */
  refuse(member: Member): void;
  /** A new generation was applied to the group. */
  rebalanced(group: ConsumerGroup, reason: string): void;
}

interface Request {
  reasons: string[];
  force: boolean;
  /** The group's settings were changed on this node: they replace the cluster's. */
  settingsChanged: boolean;
  done: Promise<void>;
}

/**
 * Cluster mode's rebalances: a group's decisions are made in the shared directory, one at a time
 * per group whichever node asks, and each node applies the decided generation to the members it
 * holds, from its own decisions and from those other nodes made (heard of at once). Requests for
 * a group coalesce while one of its decisions runs.
 */
export class SharedDecisions {
  private readonly running = new Map<string, Promise<void>>();
  private readonly queued = new Map<string, Request>();
  private watchTimer: TimerHandle | null = null;
  private watching = false;
  private stopped = false;

  constructor(
    private readonly directory: GroupDirectory,
    private readonly host: DecisionHost,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Takes in every group's shared state (members of this node from before a restart are taken out), then follows the other nodes. */
  async start(): Promise<void> {
    this.directory.onChanged((name, generation) => this.heard(name, generation));
    for (const state of await this.directory.list()) {
      const group = this.host.groupNamed(state.group, state.settings);
      this.apply(group, state, 'taken from the cluster at start-up');
      if (state.members.some((m) => m.node === this.directory.nodeId)) void this.request(group, 'this node restarted: its members from before are gone', false);
    }
    this.watchTimer = this.clock.setInterval(() => this.watchCluster(), CLUSTER_CHECK_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.watchTimer !== null) this.clock.clearInterval(this.watchTimer);
    this.watchTimer = null;
  }

  /**
   * Asks for a decision about the group; resolves once one made after the request is applied.
   * `force`: reassign even if the members are the same (partitions added, a topic deleted, another assignor).
   */
  request(group: ConsumerGroup, reason: string, force: boolean, settingsChanged = false): Promise<void> {
    const queued = this.queued.get(group.name);
    if (queued !== undefined) {
      queued.reasons.push(reason);
      queued.force ||= force;
      queued.settingsChanged ||= settingsChanged;
      return queued.done;
    }
    const request: Request = { reasons: [reason], force, settingsChanged, done: Promise.resolve() };
    const before = this.running.get(group.name) ?? Promise.resolve();
    request.done = before
      .catch(() => {})
      .then(async () => {
        this.queued.delete(group.name);
        await this.decide(group, request);
      });
    this.queued.set(group.name, request);
    this.running.set(group.name, request.done);
    void request.done.then(
      () => this.settled(group.name, request),
      () => this.settled(group.name, request),
    );
    return request.done;
  }

  /** The group's decisions asked for so far, settled (their failures are the askers' to hear). */
  pending(name: string): Promise<void> {
    return (this.running.get(name) ?? Promise.resolve()).catch(() => {});
  }

  private settled(name: string, request: Request): void {
    if (this.running.get(name) === request.done) this.running.delete(name);
  }

  private async decide(group: ConsumerGroup, request: Request): Promise<void> {
    const nodeId = this.directory.nodeId;
    const local: SharedMember[] = [...group.members.values()].map((m) => ({
      name: m.name,
      node: nodeId,
      instanceId: m.instanceId,
      topics: [...m.topics].sort(),
      joinedAt: m.joinedAt,
    }));
    let state: SharedGroupState;
    try {
      const settings = { settings: this.host.savedSettings(group), changed: request.settingsChanged };
      state = await this.directory.decide(group.name, settings, local, ({ before, members }) => {
        // Decided with the cluster's settings (its assignor), unless this node has just changed them.
        if (!request.settingsChanged) this.host.adoptSettings(group, before.settings);
        return !request.force && sameMembers(before.members, members) ? null : this.host.assign(group, members, before.assignment);
      });
    } catch (error) {
      if (!this.stopped) {
        this.logger.warn({ err: error, group: group.name }, 'a consumer group decision failed: trying again in a moment');
        this.clock.setTimeout(
          () => void this.request(group, 'a decision that failed, again', request.force, request.settingsChanged).catch(() => {}),
          RETRY_MS,
        );
      }
      throw new RillError('unavailable', `group "${group.name}" could not be rebalanced for now (${(error as Error).message}): retry`);
    }
    this.apply(group, state, request.reasons.join('; '));
  }

  /** A decision another node made: read and applied unless this node has it already. */
  private heard(name: string, generation: number): void {
    if (this.stopped) return;
    this.directory.read(name).then(
      (state) => {
        if (state === undefined || state.generation < generation) return;
        if (state.deleted) this.host.forgetGroup(name);
        else this.apply(this.host.groupNamed(name, state.settings), state, 'decided on another node');
      },
      (error: unknown) => this.logger.warn({ err: error, group: name }, 'could not read a consumer group decision made on another node'),
    );
  }

  /** Makes the decided state this node's: the generation, its members' partitions, the other nodes' members. */
  private apply(group: ConsumerGroup, state: SharedGroupState, reason: string): void {
    if (state.generation < group.generation) return;
    const advanced = state.generation > group.generation;
    const nodeId = this.directory.nodeId;
    group.generation = state.generation;
    this.host.adoptSettings(group, state.settings);
    group.remote = state.members.filter((m) => m.node !== nodeId).map((m) => ({ ...m, assignment: state.assignment[m.name] ?? [] }));
    let missing = false;
    for (const member of [...group.members.values()]) {
      // A member of another node has its name; or, static, its instance id: its client came back through that node (Kafka's static membership).
      if (
        group.remote.some(
          (other) =>
            other.name === member.name || (member.instanceId !== null && other.instanceId === member.instanceId && supersedes(other, member.joinedAt, nodeId)),
        )
      ) {
        this.host.refuse(member);
        continue;
      }
      if (!state.members.some((m) => m.name === member.name && m.node === nodeId)) missing = true;
      const assignment = state.assignment[member.name] ?? [];
      if (advanced || !sameAssignment(member.assignment, assignment)) member.assign(state.generation, assignment);
    }
    if (advanced) this.host.rebalanced(group, reason);
    // A member that joined while the decision ran, or one taken out while this node was unreachable: it needs a decision of its own.
    if (missing) void this.request(group, 'members of this node the last decision did not have', false).catch(() => {});
  }

  /**
   * Groups with members of nodes gone quiet: a decision takes them out and gives their partitions
   * to the others. And decisions this node did not hear of (a LISTEN connection that died unnoticed):
   * read and applied.
   */
  private watchCluster(): void {
    if (this.watching || this.stopped) return;
    this.watching = true;
    this.directory
      .generations()
      .then((known) => {
        for (const { group, generation, deleted } of known) {
          const applied = this.host.generationOf(group);
          if (deleted ? applied !== undefined : generation > (applied ?? -1)) this.heard(group, generation);
        }
      })
      .then(() => this.directory.orphaned())
      .then(async (names) => {
        for (const name of names) {
          const state = await this.directory.read(name);
          if (state === undefined) continue;
          await this.request(this.host.groupNamed(name, state.settings), 'members of a node not heard from within the session timeout', false).catch(() => {});
        }
      })
      .catch((error: unknown) => this.logger.debug({ err: error }, 'could not look for members of nodes gone quiet'))
      .finally(() => (this.watching = false));
  }
}

function sameMembers(a: readonly SharedMember[], b: readonly SharedMember[]): boolean {
  if (a.length !== b.length) return false;
  const key = (m: SharedMember) => `${m.name}\u0000${m.node}\u0000${m.topics.join('\u0000')}`;
  const before = new Set(a.map(key));
  return b.every((m) => before.has(key(m)));
}

function sameAssignment(a: readonly TopicPartition[], b: readonly TopicPartition[]): boolean {
  return a.length === b.length && a.every((tp, i) => tp.topic === b[i]!.topic && tp.partition === b[i]!.partition);
}

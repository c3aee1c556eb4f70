import { LRUCache } from 'lru-cache';
import { RillError } from '../errors/index.js';
import type { AssignorName, TopicPartition } from './assignors.js';
import { tpKey } from './assignors.js';

export interface GroupSettings {
  assignor: AssignorName;
  /** A member not heard from for this long loses its partitions. */
  sessionTimeoutMs: number;
  /** Where a partition with no committed offset starts. */
  resetPolicy: 'earliest' | 'latest';
  /** Positions are committed this often on pull; 0: only explicit commits. */
  autoCommitIntervalMs: number;
  /** Deliveries of one message to push subscribers before it goes to the dead-letter topic. */
  maxDeliveries: number;
  /** Dead-letter topic name: the topic's name plus this. */
  deadLetterSuffix: string;
  /** A message that expires before the group consumed it goes to the dead-letter topic (reason "expired"). */
  deadLetterExpired: boolean;
}

export type AssignmentListener = (generation: number, assignment: readonly TopicPartition[]) => void;

export type CommittedRecordRef = TopicPartition & { offset: number };

/** What may be read of a member outside the coordinator: nothing here can change it. */
interface MemberState {
  readonly name: string;
  readonly instanceId: string | null;
  readonly topics: ReadonlySet<string>;
  readonly assignment: readonly TopicPartition[];
}

/** What may be read of a group outside the coordinator. */
export interface GroupState {
  readonly name: string;
  readonly generation: number;
  readonly settings: Readonly<GroupSettings>;
  /** The members this node holds. */
  readonly members: ReadonlyMap<string, MemberState>;
  /** Members wherever they are connected (in cluster mode, other nodes' too). */
  readonly memberCount: number;
}

/** Cluster mode: a member another node holds, as of the group's generation. */
export interface RemoteMember {
  readonly name: string;
  readonly node: string;
  readonly instanceId: string | null;
  readonly topics: readonly string[];
  readonly assignment: readonly TopicPartition[];
  /** When its client last joined (epoch ms, its node's clock). */
  readonly joinedAt: number;
}

const MAX_REMEMBERED_POLLS = 10_000;

/**
 * One consumer in a group: what it subscribes to, what it owns, where it is. The coordinator's
 * parts share this record; nothing outside the coordinator holds one.
 */
export class Member implements MemberState {
  readonly topics = new Set<string>();
  assignment: readonly TopicPartition[] = [];
  /** Next offset to hand out, by partition; starts at the committed offset. */
  readonly positions = new Map<string, number>();
  /** The first offset a pull handed out since the position was last set, by partition (what a lost member failed on is counted from there). */
  readonly pulledFrom = new Map<string, number>();
  lastSeen: number;
  lastAutoCommit: number;
  /**
   * When its client last joined (epoch ms): cluster mode tells by it which of two members of one
   * static instance on two nodes is the client come back (the later), and which is its past.
   */
  joinedAt: number;
  /** Live connections holding the member (push subscriptions, STOMP joins): while any does, it cannot time out. */
  connections = 0;
  /** Set once it left the group: a long poll it was waiting in returns. */
  removed = false;
  /** Cluster mode: it was refused because a member of another node has its name in the group. */
  refused = false;
  /** Where the next pull starts among the assigned partitions, so that none is always read last. */
  nextPartition = 0;
  /** Messages handed out by single-message polls, by messageID, for acknowledgement by id. */
  readonly polled = new LRUCache<string, CommittedRecordRef>({ max: MAX_REMEMBERED_POLLS });
  readonly listeners = new Set<AssignmentListener>();

  constructor(
    public name: string,
    readonly group: ConsumerGroup,
    readonly instanceId: string | null,
    now: number,
  ) {
    this.lastSeen = now;
    this.lastAutoCommit = now;
    this.joinedAt = now;
  }

  owns(tp: TopicPartition): boolean {
    return this.assignment.some((owned) => owned.topic === tp.topic && owned.partition === tp.partition);
  }

  /** Takes the new assignment: positions of partitions kept stay, the others are forgotten. */
  assign(generation: number, assignment: readonly TopicPartition[]): void {
    const kept = new Set(assignment.map(tpKey));
    for (const key of this.positions.keys()) if (!kept.has(key)) this.positions.delete(key);
    for (const key of this.pulledFrom.keys()) if (!kept.has(key)) this.pulledFrom.delete(key);
    this.assignment = assignment;
    this.nextPartition = 0;
    for (const listener of this.listeners) listener(generation, assignment);
  }
}

export class ConsumerGroup implements GroupState {
  generation = 0;
  /** The members this node holds (in cluster mode, others may be held by other nodes: `remote`). */
  readonly members = new Map<string, Member>();
  /** Cluster mode: the members other nodes hold, and what they were assigned, as of `generation`. */
  remote: readonly RemoteMember[] = [];
  /** Woken on every rebalance (long polls wait on it). */
  readonly changeListeners = new Set<() => void>();

  constructor(
    readonly name: string,
    public settings: GroupSettings,
  ) {}

  /** Members wherever they are connected: this node's and, in cluster mode, the other nodes'. */
  get memberCount(): number {
    return this.members.size + this.remote.length;
  }

  /** The topics any member subscribes to. */
  topics(): Set<string> {
    const topics = new Set<string>();
    for (const member of this.members.values()) for (const topic of member.topics) topics.add(topic);
    return topics;
  }

  staticMember(instanceId: string): Member | undefined {
    for (const member of this.members.values()) if (member.instanceId === instanceId) return member;
    return undefined;
  }

  /** Refuses a request made for an older generation: its assignment may have moved since. */
  fence(generation: number | undefined): void {
    if (generation !== undefined && generation !== this.generation) {
      throw new RillError(
        'stale-generation',
        `generation ${generation} is stale: group "${this.name}" is at generation ${this.generation}; take the new assignment (heartbeat) and go on from there`,
      );
    }
  }
}

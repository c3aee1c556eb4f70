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
}

export type AssignmentListener = (generation: number, assignment: readonly TopicPartition[]) => void;

export type CommittedRecordRef = TopicPartition & { offset: number };

const MAX_REMEMBERED_DELIVERIES = 10_000;

/** One consumer in a group: what it subscribes to, what it owns, where it is. */
export class Member {
  readonly topics = new Set<string>();
  assignment: TopicPartition[] = [];
  /** Next offset to hand out, by partition; starts at the committed offset. */
  readonly positions = new Map<string, number>();
  lastSeen = Date.now();
  /** True while a live connection holds the member (push subscribers): it cannot time out then. */
  bound = false;
  lastAutoCommit = Date.now();
  nextPartition = 0;
  /** Messages handed out by single-message polls, by messageID, for acknowledgement by id. */
  readonly delivered = new Map<string, CommittedRecordRef>();
  readonly listeners = new Set<AssignmentListener>();

  constructor(
    public name: string,
    readonly group: ConsumerGroup,
    readonly instanceId: string | null,
  ) {}

  owns(tp: TopicPartition): boolean {
    return this.assignment.some((owned) => owned.topic === tp.topic && owned.partition === tp.partition);
  }

  remember(messageId: string, ref: CommittedRecordRef): void {
    if (this.delivered.size >= MAX_REMEMBERED_DELIVERIES) this.delivered.delete(this.delivered.keys().next().value!);
    this.delivered.set(messageId, ref);
  }

  /** Takes the new assignment: positions of partitions kept stay, the others are forgotten. */
  assign(generation: number, assignment: TopicPartition[]): void {
    const kept = new Set(assignment.map(tpKey));
    for (const key of this.positions.keys()) if (!kept.has(key)) this.positions.delete(key);
    this.assignment = assignment;
    this.nextPartition = 0;
    for (const listener of this.listeners) listener(generation, assignment);
  }
}

export class ConsumerGroup {
  generation = 0;
  readonly members = new Map<string, Member>();
  /** Woken on every rebalance (long polls wait on it). */
  readonly changeListeners = new Set<() => void>();

  constructor(
    readonly name: string,
    public settings: GroupSettings,
  ) {}

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
}

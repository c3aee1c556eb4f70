import { checkGroupName, checkTopic } from './destinations.js';
import { invalidArgument } from './errors.js';
import { type PulledRecord, pulledRecord } from './messages.js';
import type { Requests } from './requests.js';
import { type MemberView, parseLeft, parseMemberView, parsePullAnswer, type TopicPartition } from './wire.js';

export interface PullConsumerOptions {
  group: string;
  /** The member's name: unique among all groups' members. */
  member: string;
  topics: string[];
  /** Static membership: a member back under this id within the session timeout keeps its partitions. */
  instanceId?: string;
}

export interface PullOptions {
  /** Most records in the answer (default 500). */
  maxMessages?: number;
  /** Most bytes of values in the answer, roughly (default 1 MiB). */
  maxBytes?: number;
  /** With nothing to hand over, wait this long for messages (default 0: answer at once; at most 60000). */
  maxWaitMs?: number;
}

/** A partition's commit: `offset` is the next one to read (the last record processed, plus one). */
export interface CommitOffset {
  topic: string;
  partition: number;
  offset: number;
}

/**
 * A consumer group member that pulls (`/request/join`, `/request/pull`, `/request/commit`). It
 * joins on its first call and again on every new connection (a member joined over a connection
 * lives as long as it does); commit() with no offsets commits everything pulled so far.
 */
export class PullConsumer {
  private view: MemberView | null = null;
  private joinedOn = -1;
  /** Per partition, the offset after the last record pulled and not yet committed. */
  private readonly uncommitted = new Map<string, CommitOffset>();

  constructor(
    private readonly requests: Requests,
    private readonly options: PullConsumerOptions,
  ) {
    checkGroupName('group', options.group);
    checkGroupName('member name', options.member);
    if (!Array.isArray(options.topics) || options.topics.length === 0) throw invalidArgument('a pull consumer needs at least one topic');
    for (const topic of options.topics) checkTopic(topic);
    requests.onAssignment((view) => {
      if (view.member === options.member) this.adopt(view);
    });
  }

  /** The generation and partitions the group last gave this member (null before it joined). */
  get membership(): MemberView | null {
    return this.view;
  }

  /** Joins the group (done by pull() and commit() when needed). */
  async join(): Promise<MemberView> {
    const { group, member, topics, instanceId } = this.options;
    const view = await this.requests.call('join', { group, member, topics, ...(instanceId === undefined ? {} : { instanceId }) }, parseMemberView);
    this.joinedOn = this.requests.epoch;
    this.adopt(view);
    return view;
  }

  /** The member's next records from its partitions; waits up to maxWaitMs when there are none. */
  async pull(options: PullOptions = {}): Promise<PulledRecord[]> {
    await this.joined();
    const request: Record<string, unknown> = { member: this.options.member };
    if (options.maxMessages !== undefined) request.maxMessages = options.maxMessages;
    if (options.maxBytes !== undefined) request.maxBytes = options.maxBytes;
    if (options.maxWaitMs !== undefined) request.maxWaitMs = options.maxWaitMs;
    const answer = await this.requests.call('pull', request, parsePullAnswer);
    this.adopt(answer);
    for (const record of answer.records) {
      const { topic, partition, offset } = record;
      this.uncommitted.set(`${topic}\n${partition}`, { topic, partition, offset: offset + 1 });
    }
    return answer.records.map((record) => pulledRecord(record, answer.generation));
  }

  /**
   * Commits `offsets` (each the next offset to read), or, without them, everything pulled so far.
   * Fenced (`stale-generation`, `not-owner`) when the group rebalanced since the pull: pull again.
   */
  async commit(offsets?: CommitOffset[]): Promise<void> {
    const committing = offsets ?? [...this.uncommitted.values()];
    if (committing.length === 0) return;
    await this.joined();
    const request = { member: this.options.member, generation: this.view!.generation, offsets: committing };
    this.adopt(await this.requests.call('commit', request, parseMemberView));
    for (const { topic, partition, offset } of committing) {
      const key = `${topic}\n${partition}`;
      if ((this.uncommitted.get(key)?.offset ?? Number.POSITIVE_INFINITY) <= offset) this.uncommitted.delete(key);
    }
  }

  /** Leaves the group: its partitions go to the other members at once. */
  async leave(): Promise<void> {
    await this.requests.call('leave', { member: this.options.member }, parseLeft);
    this.view = null;
    this.joinedOn = -1;
    this.uncommitted.clear();
  }

  private async joined(): Promise<void> {
    await this.requests.ready();
    if (this.view === null || this.joinedOn !== this.requests.epoch) await this.join();
  }

  /** A new generation: what was pulled from partitions no longer this member's cannot be committed by it. */
  private adopt(view: MemberView): void {
    if (this.view !== null && view.generation !== this.view.generation) {
      const owned = new Set(view.assignment.map((tp: TopicPartition) => `${tp.topic}\n${tp.partition}`));
      for (const key of this.uncommitted.keys()) if (!owned.has(key)) this.uncommitted.delete(key);
    }
    this.view = { group: view.group, member: view.member, generation: view.generation, assignment: view.assignment };
  }
}

import { forEachRecord, type Topic } from '../broker/index.js';
import { RillError } from '../errors/index.js';
import { tpKey, type TopicPartition } from './assignors.js';
import type { Clock } from './clock.js';
import type { Member } from './group.js';
import type { OffsetStore } from './offset-store.js';
import type { LogAccess } from './topics.js';

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

export const READ_BYTES = 1024 * 1024;

/**
 * The read side of a group: where each member is in each partition it owns, and pulls that read
 * all of them at once, waiting (a long poll) until data comes, the group rebalances or time is up.
 */
export class Fetcher {
  /** Long polls waiting for data, each with what wakes it. */
  private readonly waiting = new Set<() => void>();
  private stopped = false;

  constructor(
    private readonly log: LogAccess,
    private readonly store: OffsetStore,
    private readonly clock: Clock,
  ) {}

  /** Where a member starts in a partition it was just given: the committed offset, else the reset policy. */
  async startPosition(member: Member, tp: TopicPartition): Promise<number> {
    member.positions.delete(tpKey(tp));
    const topic = this.log.topics.get(tp.topic);
    if (topic === undefined) throw new RillError('unknown-topic', `no topic "${tp.topic}"`);
    return this.position(member, tp, topic);
  }

  /** The next offset a member reads in a partition: its position, else the committed offset, else the reset policy. */
  private async position(member: Member, tp: TopicPartition, topic: Topic): Promise<number> {
    const known = member.positions.get(tpKey(tp));
    if (known !== undefined) return known;
    const committed = this.store.committed(member.group.name, tp);
    const offsets = await this.log.offsets(topic, tp.partition);
    let position: number;
    if (committed !== undefined && committed >= offsets.logStartOffset && committed <= offsets.logEndOffset) position = committed;
    else position = member.group.settings.resetPolicy === 'earliest' ? offsets.logStartOffset : offsets.logEndOffset;
    member.positions.set(tpKey(tp), position);
    return position;
  }

  /**
   * Returns a batch from the member's partitions, waiting until `deadline` for one if there is none
   * yet; an empty batch at once if the member leaves or its group rebalances meanwhile, so that the
   * caller learns its new assignment.
   */
  async pull(member: Member, maxMessages: number, maxBytes: number, deadline: number): Promise<PulledRecord[]> {
    const generation = member.group.generation;
    for (;;) {
      const records = await this.fetch(member, maxMessages, maxBytes);
      if (records.length > 0 || this.clock.now() >= deadline || member.removed || generation !== member.group.generation || this.stopped) return records;
      await this.waitForData(member, deadline - this.clock.now());
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
        const topic = this.log.topics.get(tp.topic);
        if (topic === undefined) return null;
        const position = await this.position(member, tp, topic);
        return { tp, position, result: await this.log.read(topic, tp.partition, position, share) };
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
      // Past the last record taken, or past transaction markers that end the batches read.
      const next = forEachRecord(result.batches, position, (record) => {
        if (records.length >= maxMessages || (bytes >= maxBytes && records.length > 0)) return false;
        records.push({ topic: tp.topic, partition: tp.partition, ...record });
        bytes += record.value.length;
        return true;
      });
      member.positions.set(tpKey(tp), next);
    }
    return records;
  }

  /** Answers every long poll at once (with what it has): the broker is shutting down. */
  stop(): void {
    this.stopped = true;
    for (const wake of [...this.waiting]) wake();
  }

  /** Resolves when a partition of the member's gets data, its group rebalances, the fetcher stops, or `ms` have passed. */
  private waitForData(member: Member, ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const unwatchers: Array<() => void> = [];
      const done = (): void => {
        this.clock.clearTimeout(timer);
        for (const unwatch of unwatchers) unwatch();
        member.group.changeListeners.delete(done);
        this.waiting.delete(done);
        resolve();
      };
      this.waiting.add(done);
      const timer = this.clock.setTimeout(done, ms);
      member.group.changeListeners.add(done);
      for (const tp of member.assignment) {
        const topic = this.log.topics.get(tp.topic);
        if (topic !== undefined) unwatchers.push(this.log.watch(topic, tp.partition, done));
      }
    });
  }
}

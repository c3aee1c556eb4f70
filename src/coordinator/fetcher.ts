import { forEachRecord, hasExpired, heldUntil, laneOf, offsetAfter, type StoredRecord, type Topic } from '../broker/index.js';
import { RillError } from '../errors/index.js';
import { tpKey, type TopicPartition } from './assignors.js';
import type { Clock } from './clock.js';
import type { DeadLetters } from './dead-letter.js';
import { DeliveryCounts } from './delivery-counts.js';
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
  /** A null value: the key's deletion, in a compacted topic. */
  tombstone: boolean;
  /** How often the group was handed this message, this time included (earlier ones failed: see DeliveryCounts). */
  deliveryCount: number;
}

/** One partition's part of a fetch of record batches. */
export interface FetchedBatches {
  topic: string;
  partition: number;
  /** The member's position when read: records of the first batch before it were handed out already. */
  fetchOffset: number;
  /** Whole RecordBatch v2 batches, as stored (compressed ones included). */
  batches: Buffer;
}

export interface PullOptions {
  maxMessages?: number;
  maxBytes?: number;
  maxWaitMs?: number;
  generation?: number;
}

export const READ_BYTES = 1024 * 1024;

/** A message a pull stops at to dead-letter: it failed maxDeliveries times, or expired in a group that dead-letters expired ones. */
interface DeadLetterCase {
  record: StoredRecord;
  failures: number;
  reason: string;
}

interface PartitionRead {
  tp: TopicPartition;
  position: number;
  batches: Buffer;
}

/** What one pass over the assigned partitions found, and the partitions it could not read (why, for the error). */
interface Fetched<T> {
  found: T[];
  failures: string[];
  /** Positions moved past messages passed over (dead-lettered): fetch again at once rather than wait. */
  again?: boolean;
  /** In how many ms the first delayed message that stopped a partition may be delivered: the wait ends then. */
  wakeInMs?: number;
}

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
    private readonly deadLetters: DeadLetters,
    private readonly clock: Clock,
  ) {}

  /** Where a member starts in a partition it was just given: the committed offset, else the reset policy. */
  async startPosition(member: Member, tp: TopicPartition): Promise<number> {
    member.positions.delete(tpKey(tp));
    member.pulledFrom.delete(tpKey(tp));
    const topic = this.log.topics.get(tp.topic);
    if (topic === undefined) throw new RillError('unknown-topic', `no topic "${tp.topic}"`);
    return this.position(member, tp, topic);
  }

  /** The next offset a member reads in a partition: its position, else the committed offset, else the reset policy. */
  private async position(member: Member, tp: TopicPartition, topic: Topic): Promise<number> {
    const known = member.positions.get(tpKey(tp));
    if (known !== undefined) return known;
    const generation = member.group.generation;
    // A transaction committing this partition's offset (its previous owner's): start from its outcome.
    await this.store.whenSettled(member.group.name, tp);
    // In cluster mode the previous owner may have committed on another node.
    await this.store.catchUp();
    const committed = this.store.committed(member.group.name, tp);
    const offsets = await this.log.offsets(topic, tp.partition);
    let position: number;
    if (committed !== undefined && committed >= offsets.logStartOffset && committed <= offsets.logEndOffset) position = committed;
    else position = member.group.settings.resetPolicy === 'earliest' ? offsets.logStartOffset : offsets.logEndOffset;
    // Kept only while the partition is still the member's: one lost meanwhile must start afresh if it comes back.
    if (generation === member.group.generation && member.owns(tp)) member.positions.set(tpKey(tp), position);
    return position;
  }

  /**
   * Returns a batch from the member's partitions, waiting until `deadline` for one if there is none
   * yet; an empty batch at once if the member leaves or its group rebalances meanwhile, so that the
   * caller learns its new assignment.
   */
  pull(member: Member, maxMessages: number, maxBytes: number, deadline: number): Promise<PulledRecord[]> {
    return this.longPoll(member, deadline, () => this.fetchRecords(member, maxMessages, maxBytes));
  }

  /**
   * As `pull`, but hands on the stored record batches themselves, as Kafka's Fetch does: whole
   * batches (the first may start before the member's position), never decoded here. The member's
   * position moves past the last batch handed on, transaction markers included.
   */
  pullBatches(member: Member, maxBytes: number, deadline: number): Promise<FetchedBatches[]> {
    return this.longPoll(member, deadline, () => this.fetchBatches(member, maxBytes));
  }

  /**
   * Fetches until something is found or the wait is over. Partitions that could not be read (a
   * damaged batch) fail the request only when, at the end, nothing else was found: the others are
   * served, and waited for, as usual.
   */
  private async longPoll<T>(member: Member, deadline: number, fetchOnce: () => Promise<Fetched<T>>): Promise<T[]> {
    const generation = member.group.generation;
    for (;;) {
      const { found, failures, again, wakeInMs } = await fetchOnce();
      if (found.length > 0) return found;
      const waitOver = this.clock.now() >= deadline || member.removed || generation !== member.group.generation || this.stopped;
      // Dead-lettered messages were passed over: read on at once (within the wait).
      if (again === true && !waitOver) continue;
      if (waitOver) {
        if (failures.length > 0) throw new RillError('storage-error', `cannot read ${failures.join('; ')}`);
        return found;
      }
      await this.waitForData(member, Math.min(deadline - this.clock.now(), wakeInMs ?? Number.POSITIVE_INFINITY));
    }
  }

  /**
   * The records of one read of every assigned partition, within the limits; moves the positions
   * past what it takes. Messages the group dead-lettered are passed over; one that failed
   * maxDeliveries times (its consumers crashed on it) is dead-lettered here, not handed out.
   */
  private async fetchRecords(member: Member, maxMessages: number, maxBytes: number): Promise<Fetched<PulledRecord>> {
    const records: PulledRecord[] = [];
    let bytes = 0;
    let again = false;
    let wakeInMs: number | undefined;
    const toDeadLetter: Array<{ tp: TopicPartition } & DeadLetterCase> = [];
    const { found, failures } = await this.readAssigned(member, maxBytes);
    // Priority lanes: the higher lanes' records first, within the limits.
    if (found.length > 1) found.sort((a, b) => this.lane(b.tp) - this.lane(a.tp));
    const now = Date.now();
    const group = member.group.name;
    const { maxDeliveries, deadLetterExpired } = member.group.settings;
    for (const { tp, position, batches } of found) {
      if (records.length >= maxMessages || (bytes >= maxBytes && records.length > 0)) break;
      const counts = this.store.deliveries.partition(group, tp);
      const taken: PulledRecord[] = [];
      let takenBytes = 0;
      let next: number;
      let deadLetter: DeadLetterCase | null = null;
      try {
        // Past the last record taken, or past transaction markers that end the batches read.
        next = forEachRecord(batches, position, (record) => {
          const count = records.length + taken.length;
          if (count >= maxMessages || (bytes + takenBytes >= maxBytes && count > 0)) return false;
          // Past its time-to-live: passed over (the position moves past it, as if consumed), or dead-lettered first.
          if (hasExpired(record.headers, now)) {
            // Dead-lettered already (by an earlier owner): not again.
            if (!deadLetterExpired || DeliveryCounts.verdict(counts, record.offset, maxDeliveries).action === 'skip') return true;
            deadLetter = { record, failures: 0, reason: `expired before group ${group} consumed it` };
            return false;
          }
          // Delayed: the partition stops at it until its time (a pull position cannot skip it).
          const until = record.headers.length === 0 ? 0 : heldUntil(record.headers, now);
          if (until !== 0) {
            // Stored times are the wall clock's: the wait is a duration from now.
            wakeInMs = Math.min(wakeInMs ?? until - now, until - now);
            return false;
          }
          const verdict = DeliveryCounts.verdict(counts, record.offset, maxDeliveries);
          if (verdict.action === 'skip') return true;
          if (verdict.action === 'dead-letter') {
            const reason = `delivered ${verdict.failures} times to group ${group} without being committed (its consumers gone)`;
            deadLetter = { record, failures: verdict.failures, reason };
            return false;
          }
          // Field by field: a spread copy of each record was a pull's largest cost after its serialization.
          taken.push({
            topic: tp.topic,
            partition: tp.partition,
            offset: record.offset,
            key: record.key,
            messageId: record.messageId,
            timestamp: record.timestamp,
            headers: record.headers,
            value: record.value,
            tombstone: record.tombstone,
            deliveryCount: verdict.failures + 1,
          });
          takenBytes += record.value.length;
          return true;
        });
      } catch (error) {
        // Undecodable: this partition stays where it is, the others are served.
        failures.push(`${tp.topic}/${tp.partition} at offset ${position}: ${(error as Error).message}`);
        continue;
      }
      for (const record of taken) records.push(record);
      bytes += takenBytes;
      const key = tpKey(tp);
      if (taken.length > 0 && !member.pulledFrom.has(key)) member.pulledFrom.set(key, taken[0]!.offset);
      // Stopped at a message to dead-letter: the position stays at it until that is done.
      if (deadLetter !== null) toDeadLetter.push({ tp, ...(deadLetter as DeadLetterCase) });
      // Moved past messages passed over (expired, dead-lettered) with nothing taken: more may follow at once.
      if (next > position && taken.length === 0) again = true;
      member.positions.set(key, next);
    }
    // After the reads, so that no position is set across the wait for a partition revoked meanwhile.
    const generation = member.group.generation;
    for (const { tp, ...deadLetter } of toDeadLetter) {
      const { record } = deadLetter;
      const done = await this.sendDeadLetter(member, tp, deadLetter, failures);
      const key = tpKey(tp);
      if (!done || generation !== member.group.generation || !member.owns(tp) || member.positions.get(key) !== record.offset) continue;
      member.positions.set(key, record.offset + 1);
      again = true;
    }
    return { found: records, failures, again, wakeInMs };
  }

  private lane(tp: TopicPartition): number {
    const topic = this.log.topics.get(tp.topic);
    return topic === undefined ? 0 : laneOf(topic, tp.partition);
  }

  /** Dead-letters a message a pull stopped at; false (and why, in `problems`) if that failed. */
  private async sendDeadLetter(member: Member, tp: TopicPartition, { record, failures, reason }: DeadLetterCase, problems: string[]): Promise<boolean> {
    const group = member.group.name;
    try {
      await this.deadLetters.send(
        { group, topic: tp.topic, partition: tp.partition, record, deliveries: failures, reason },
        member.group.settings.deadLetterSuffix,
      );
      await this.store.deliveries.deadLettered(group, tp, record.offset);
      return true;
    } catch (error) {
      problems.push(`${tp.topic}/${tp.partition} at offset ${record.offset}: could not dead-letter it: ${(error as Error).message}`);
      return false;
    }
  }

  /** The batches of one read of every assigned partition, about `maxBytes` of them (at least one partition's). */
  private async fetchBatches(member: Member, maxBytes: number): Promise<Fetched<FetchedBatches>> {
    const fetched: FetchedBatches[] = [];
    let bytes = 0;
    const { found, failures } = await this.readAssigned(member, maxBytes);
    for (const { tp, position, batches } of found) {
      if (bytes >= maxBytes && fetched.length > 0) break;
      const next = offsetAfter(batches);
      // Batches wholly before the position (a read starts at the batch holding it) hold nothing new.
      if (next <= position) continue;
      fetched.push({ topic: tp.topic, partition: tp.partition, fetchOffset: position, batches });
      bytes += batches.length;
      member.positions.set(tpKey(tp), next);
    }
    return { found: fetched, failures };
  }

  /**
   * Reads every assigned partition at once from the member's positions, each with its share of the
   * byte budget, starting with the next partition in turn. Partitions without data are left out; a
   * position that retention overtook is reset by the group's policy; a partition that could not be
   * read is named in `failures`. Nothing, if the group rebalanced meanwhile.
   */
  private async readAssigned(member: Member, maxBytes: number): Promise<{ found: PartitionRead[]; failures: string[] }> {
    const failures: string[] = [];
    const assignment = member.assignment;
    if (assignment.length === 0) return { found: [], failures };
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
    if (generation !== member.group.generation) return { found: [], failures };
    const found: PartitionRead[] = [];
    for (const read of reads) {
      if (read === null) continue;
      const { tp, position, result } = read;
      if (result.failure?.code === 'offset-out-of-range') {
        const reset = member.group.settings.resetPolicy === 'earliest' ? result.logStartOffset : result.logEndOffset;
        member.positions.set(tpKey(tp), Math.max(reset, result.logStartOffset));
        continue;
      }
      // A damaged batch is reported; a partition its worker does not have open yet (unknown-partition) just has nothing yet.
      if (result.failure?.code === 'storage-error') failures.push(`${tp.topic}/${tp.partition} at offset ${position}: ${result.failure.message}`);
      else if (result.batches !== null) found.push({ tp, position, batches: result.batches });
    }
    return { found, failures };
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

import { BatchCompaction, forEachRecord, MIN_DIRTY_RATIO, readBatchInfo, setBaseOffset, type BatchInfo, type CleanerSettings } from '../storage/index.js';
import type { PartitionKey } from './batch-table.js';
import type { Sql } from './connection.js';

/** A page of rows read at a time: about this many bytes, and at most PAGE_ROWS rows (at least one). */
const PAGE_BYTES = 1024 * 1024;
const PAGE_ROWS = 1000;

/** One row of `rill_batches`, its batch stamped with its base offset. */
interface BatchRow {
  baseOffset: number;
  nextOffset: number;
  appendTime: number;
  size: number;
  data: Buffer;
}

/** A rewritten batch, and the append time it keeps (the latest of the rows it replaces). */
interface CleanedBatch {
  info: BatchInfo;
  appendTime: number;
  data: Buffer;
}

export interface BatchCleanReport {
  /** Rows of the pages rewritten, before and after (kept records of consecutive batches are gathered). */
  rowsBefore: number;
  rowsAfter: number;
  bytesBefore: number;
  bytesAfter: number;
  recordsRemoved: number;
}

/** What the cleaner remembers of a partition between runs (on the node that cleans). */
interface PartitionState {
  /** Offsets below this are clean: no record there is superseded by another record below it. */
  cleanThrough: number;
  /** When the earliest tombstone kept becomes removable (Infinity: none kept). */
  tombstonesDueAt: number;
}

/**
 * Log compaction of a partition kept in `rill_batches`, as the embedded store's LogCleaner does it
 * over segment files, with the same rules (BatchCompaction): each key's latest record is kept, older
 * ones go, and a tombstone goes too once its batch is older than the tombstone retention. It works
 * on the batches before the first one appended within the minimum compaction lag (a prefix of the
 * log), a page of rows at a time: the keys of the part added since its last run are mapped to their
 * latest offsets, then every page of the cleanable part holding a record the map supersedes is
 * rewritten, in one transaction, as fewer rows covering the same offsets. A partition is cleaned
 * again once its dirty part is half of its cleanable bytes, or a tombstone is due.
 *
 * Offsets never change and the rows stay contiguous, so a read in progress sees either the old
 * rows or the new ones. Appends only add rows past the cleanable part; a page changed under the
 * cleaner (its topic deleted, or its policy changed and retention ran) is left as it is and the run
 * ends. The store runs it on one node at a time.
 */
export class BatchCleaner {
  private readonly state = new Map<number, PartitionState>();

  constructor(private readonly sql: Sql) {}

  /** A partition is no longer this node's to know (its topic was deleted). */
  forget(partitionId: number): void {
    this.state.delete(partitionId);
  }

  /** Cleans the partition if it is due; null when there was nothing to do, or it changed under the run. */
  async clean(partitionId: number, partition: PartitionKey, now: number, settings: CleanerSettings): Promise<BatchCleanReport | null> {
    const { topic, partition: number } = partition;
    const [bounds] = (await this.sql`
      SELECT p.start_offset, coalesce(
          (SELECT min(base_offset) FROM rill_batches WHERE topic = ${topic} AND partition = ${number} AND append_time > ${now - settings.minCompactionLagMs}),
          p.next_offset) AS cleanable_end
      FROM rill_partitions p WHERE p.topic = ${topic} AND p.partition = ${number}`) as unknown as Array<{ start_offset: number; cleanable_end: number }>;
    if (bounds === undefined) return null;
    const start = Number(bounds.start_offset);
    const end = Number(bounds.cleanable_end);
    if (end <= start) return null;
    let state = this.state.get(partitionId) ?? { cleanThrough: start, tombstonesDueAt: Number.POSITIVE_INFINITY };
    // A partition that is not where it was (its topic made again under the same name) starts over.
    if (state.cleanThrough > end) state = { cleanThrough: start, tombstonesDueAt: Number.POSITIVE_INFINITY };
    const [sizes] = (await this.sql`
      SELECT coalesce(sum(size), 0)::int8 AS total, coalesce(sum(size) FILTER (WHERE next_offset > ${state.cleanThrough}), 0)::int8 AS dirty
      FROM rill_batches WHERE topic = ${topic} AND partition = ${number} AND next_offset <= ${end}`) as unknown as [{ total: number; dirty: number }];
    const total = Number(sizes.total);
    const dirty = Number(sizes.dirty);
    if (dirty === 0 ? state.tombstonesDueAt > now : dirty < total * MIN_DIRTY_RATIO && state.tombstonesDueAt > now) return null;

    // The latest offset of each key of the dirty part (a tombstone is a key's latest too), up to maxKeys.
    const latest = new Map<string, number>();
    let mappedThrough = state.cleanThrough;
    for (let from = Math.max(state.cleanThrough, start); from < end && latest.size < settings.maxKeys; ) {
      const page = await this.page(partition, from, end);
      if (page.length === 0) break;
      for (const row of page) {
        forEachRecord(row.data, row.baseOffset, (record) => {
          if (record.key !== null) latest.set(record.key, record.offset);
        });
      }
      mappedThrough = page.at(-1)!.nextOffset;
      from = mappedThrough;
      await settings.pace(bytesOf(page));
    }

    const compaction = new BatchCompaction(latest, now, settings);
    const report: BatchCleanReport = { rowsBefore: 0, rowsAfter: 0, bytesBefore: 0, bytesAfter: 0, recordsRemoved: 0 };
    for (let from = start; from < mappedThrough; ) {
      const page = await this.page(partition, from, mappedThrough);
      if (page.length === 0) break;
      from = page.at(-1)!.nextOffset;
      let removable = 0;
      for (const row of page) removable += compaction.removable(row.data, readBatchInfo(row.data), row.appendTime);
      await settings.pace(bytesOf(page));
      if (removable === 0) continue;
      const cleaned = rewrite(page, compaction);
      if (!(await this.replace(partition, page, cleaned))) return null;
      report.rowsBefore += page.length;
      report.rowsAfter += cleaned.length;
      const written = cleaned.reduce((sum, batch) => sum + batch.data.length, 0);
      report.bytesBefore += bytesOf(page);
      report.bytesAfter += written;
      await settings.pace(written);
    }
    report.recordsRemoved = compaction.recordsRemoved;
    this.state.set(partitionId, { cleanThrough: mappedThrough, tombstonesDueAt: compaction.tombstonesDueAt });
    return report;
  }

  /** The rows from `from` (a row's base offset) ending at or before `to`: about PAGE_BYTES of them, in offset order. */
  private async page({ topic, partition }: PartitionKey, from: number, to: number): Promise<BatchRow[]> {
    const rows = (await this.sql`
      SELECT base_offset, next_offset, append_time, size, data FROM (
        SELECT *, sum(size) OVER (ORDER BY base_offset) - size AS before FROM (
          SELECT base_offset, next_offset, append_time, size, data FROM rill_batches
          WHERE topic = ${topic} AND partition = ${partition} AND base_offset >= ${from} AND next_offset <= ${to}
          ORDER BY base_offset LIMIT ${PAGE_ROWS}
        ) r
      ) b WHERE before < ${PAGE_BYTES} ORDER BY base_offset`) as unknown as Array<{
      base_offset: number;
      next_offset: number;
      append_time: number;
      size: number;
      data: Buffer;
    }>;
    return rows.map((row) => {
      // Stored unstamped (the offset is the row's).
      setBaseOffset(row.data, Number(row.base_offset));
      return {
        baseOffset: Number(row.base_offset),
        nextOffset: Number(row.next_offset),
        appendTime: Number(row.append_time),
        size: row.size,
        data: row.data,
      };
    });
  }

  /**
   * Puts `cleaned` in place of the page's rows, in one transaction, if the rows are still the ones
   * read (locked first); false, changing nothing, when they are not.
   */
  private async replace({ topic, partition }: PartitionKey, page: readonly BatchRow[], cleaned: readonly CleanedBatch[]): Promise<boolean> {
    const first = page[0]!.baseOffset;
    const end = page.at(-1)!.nextOffset;
    const pack = Buffer.concat(cleaned.map((batch) => batch.data));
    const positions: number[] = [];
    let position = 0;
    for (const batch of cleaned) {
      positions.push(position);
      position += batch.data.length;
    }
    return this.sql.begin(async (tx) => {
      // The partition's row first, as appends, retention and a topic's deletion take it: never a deadlock with them.
      const [partitionRow] = await tx`SELECT 1 FROM rill_partitions WHERE topic = ${topic} AND partition = ${partition} FOR UPDATE`;
      if (partitionRow === undefined) return false;
      const held = (await tx`
        SELECT base_offset, size, append_time FROM rill_batches
        WHERE topic = ${topic} AND partition = ${partition} AND base_offset >= ${first} AND base_offset < ${end}
        ORDER BY base_offset FOR UPDATE`) as unknown as Array<{ base_offset: number; size: number; append_time: number }>;
      // The same rows (a topic made again under the same name has other append times).
      const unchanged =
        held.length === page.length &&
        held.every(
          (row, i) => Number(row.base_offset) === page[i]!.baseOffset && row.size === page[i]!.size && Number(row.append_time) === page[i]!.appendTime,
        );
      if (!unchanged) return false;
      // The partition's size and batch count follow by trigger.
      await tx`DELETE FROM rill_batches WHERE topic = ${topic} AND partition = ${partition} AND base_offset >= ${first} AND base_offset < ${end}`;
      await tx`
        INSERT INTO rill_batches (topic, partition, base_offset, next_offset, max_timestamp, append_time, size, data)
        SELECT ${topic}, ${partition}, base_offset, next_offset, max_timestamp, append_time, size, substring(${pack}::bytea FROM position + 1 FOR size)
        FROM unnest(
          ${tx.array(cleaned.map((batch) => batch.info.baseOffset))}::int8[],
          ${tx.array(cleaned.map((batch) => batch.info.nextOffset))}::int8[],
          ${tx.array(cleaned.map((batch) => batch.info.maxTimestamp))}::int8[],
          ${tx.array(cleaned.map((batch) => batch.appendTime))}::int8[],
          ${tx.array(cleaned.map((batch) => batch.data.length))}::int[],
          ${tx.array(positions)}::int[]
        ) AS c (base_offset, next_offset, max_timestamp, append_time, size, position)`;
      return true;
    });
  }
}

/** The page's batches without what `compaction` removes, covering exactly the page's offsets. */
function rewrite(page: readonly BatchRow[], compaction: BatchCompaction): CleanedBatch[] {
  const cleaned: CleanedBatch[] = [];
  let row = 0;
  const emit = (data: Buffer, info: BatchInfo): void => {
    // Its append time: the latest of the rows it covers (the compaction lag counts from there).
    let appendTime = 0;
    while (row < page.length && page[row]!.baseOffset < info.nextOffset) appendTime = Math.max(appendTime, page[row++]!.appendTime);
    cleaned.push({ info, appendTime, data });
  };
  compaction.begin(emit);
  for (const batch of page) {
    const info = readBatchInfo(batch.data);
    if (compaction.keepsTombstone(batch.data, info, batch.appendTime)) {
      // On its own, with its own append time: the tombstone's retention counts from it.
      compaction.end();
      compaction.begin(emit);
      compaction.add(batch.data, info, batch.appendTime);
      compaction.end();
      compaction.begin(emit);
    } else compaction.add(batch.data, info, batch.appendTime);
  }
  compaction.end();
  let expected = page[0]!.baseOffset;
  for (const { info } of cleaned) {
    if (info.baseOffset !== expected)
      throw new Error(`the cleaned batches of offsets ${page[0]!.baseOffset} to ${page.at(-1)!.nextOffset} leave a gap at ${expected}`);
    expected = info.nextOffset;
  }
  if (expected !== page.at(-1)!.nextOffset) throw new Error(`the cleaned batches end at ${expected}, not ${page.at(-1)!.nextOffset}`);
  return cleaned;
}

function bytesOf(rows: readonly BatchRow[]): number {
  return rows.reduce((sum, row) => sum + row.size, 0);
}

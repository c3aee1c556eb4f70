import { setBaseOffset } from '../storage/index.js';
import type { Sql } from './connection.js';

/** Where a partition is in the database: its topic's name and its number. */
export interface PartitionKey {
  topic: string;
  partition: number;
}

/** One batch to append, at `position` in the pack that carries a turn's batches. */
export interface PendingBatch extends PartitionKey {
  /** Offsets it spans (its last offset delta + 1). */
  span: number;
  maxTimestamp: number;
  position: number;
  size: number;
}

export interface StoredBatches {
  /** The batches, each stamped with its base offset, end to end. */
  data: Buffer | null;
  logStartOffset: number;
  logEndOffset: number;
}

export interface PartitionBounds {
  logStartOffset: number;
  logEndOffset: number;
  sizeBytes: number;
  batches: number;
}

/** A read returns at most this many batch rows (and at least one). */
const MAX_ROWS_PER_READ = 1000;

/**
 * `rill_batches`: every partition's record batches, a row each, keyed by base offset. The SQL of
 * the data path lives here; the store (postgres-log-store.ts) decides when to run it.
 */
export class BatchTable {
  constructor(
    private readonly sql: Sql,
    /** Whether an append issued now notifies the other nodes (see AppendNotices). */
    private readonly notify: () => boolean = () => true,
  ) {}

  /**
   * Appends batches in one statement (one transaction, one round trip): each partition's next
   * offset is advanced once under its row lock by all of its batches' spans, and its batches get
   * their base offsets in the order given; the batches are cut out of the pack in the database (one
   * bytea parameter is several times cheaper to send than an array of them). Returns each batch's
   * base offset, or -1 for a partition the database does not have.
   */
  async append(batches: readonly PendingBatch[], pack: Buffer, now: number): Promise<number[]> {
    const rows = (await this.sql`
      WITH notices AS (
        -- For this statement's transaction only; read by the trigger, which runs once the statement is done.
        SELECT set_config('rill.append_notices', ${this.notify() ? 'on' : 'off'}, true)
      ), input AS (
        SELECT * FROM unnest(
          ${this.sql.array(batches.map((b) => b.topic))}::text[],
          ${this.sql.array(batches.map((b) => b.partition))}::int[],
          ${this.sql.array(batches.map((b) => b.span))}::int[],
          ${this.sql.array(batches.map((b) => b.maxTimestamp))}::int8[],
          ${this.sql.array(batches.map((b) => b.position))}::int[],
          ${this.sql.array(batches.map((b) => b.size))}::int[]
        ) WITH ORDINALITY AS i (topic, partition, span, max_timestamp, position, size, n)
      ), totals AS (
        SELECT topic, partition, sum(span)::int8 AS span FROM input GROUP BY topic, partition
      ), locked AS (
        -- Rows locked in one order on every node: two nodes appending to the same partitions never deadlock.
        SELECT p.topic, p.partition FROM rill_partitions p JOIN totals t ON p.topic = t.topic AND p.partition = t.partition
        ORDER BY p.topic, p.partition FOR UPDATE OF p
      ), placed AS (
        UPDATE rill_partitions p SET next_offset = p.next_offset + t.span
        FROM totals t JOIN locked l ON l.topic = t.topic AND l.partition = t.partition
        WHERE p.topic = t.topic AND p.partition = t.partition
        RETURNING p.topic, p.partition, p.next_offset - t.span AS first_offset
      ), numbered AS (
        SELECT i.*, pl.first_offset + sum(i.span) OVER (PARTITION BY i.topic, i.partition ORDER BY i.n) - i.span AS base_offset
        FROM input i JOIN placed pl ON pl.topic = i.topic AND pl.partition = i.partition
      ), stored AS (
        INSERT INTO rill_batches (topic, partition, base_offset, next_offset, max_timestamp, append_time, size, data)
        SELECT topic, partition, base_offset, base_offset + span, max_timestamp, ${now}, size, substring(${pack}::bytea FROM position + 1 FOR size)
        FROM numbered
        RETURNING 1
      )
      SELECT n, base_offset::int8 AS base_offset FROM numbered, notices`) as unknown as Array<{ n: number; base_offset: number }>;
    const offsets = batches.map(() => -1);
    for (const row of rows) offsets[Number(row.n) - 1] = row.base_offset;
    return offsets;
  }

  /** Whole batches holding `offset` and what follows, about `maxBytes` (at least one batch). */
  async read({ topic, partition }: PartitionKey, offset: number, maxBytes: number): Promise<StoredBatches> {
    const [bounds] = (await this.sql`
      SELECT start_offset, next_offset FROM rill_partitions WHERE topic = ${topic} AND partition = ${partition}`) as unknown as Array<{
      start_offset: number;
      next_offset: number;
    }>;
    if (bounds === undefined) return { data: null, logStartOffset: 0, logEndOffset: 0 };
    const { start_offset: logStartOffset, next_offset: logEndOffset } = bounds;
    if (offset >= logEndOffset) return { data: null, logStartOffset, logEndOffset };
    const rows = (await this.sql`
      SELECT base_offset, data FROM (
        SELECT base_offset, data, sum(size) OVER (ORDER BY base_offset) - size AS before
        FROM rill_batches
        -- From the batch holding the offset, found through the primary key: never a scan from the partition's start.
        WHERE topic = ${topic} AND partition = ${partition} AND next_offset > ${offset}
          AND base_offset >= coalesce(
            (SELECT max(base_offset) FROM rill_batches WHERE topic = ${topic} AND partition = ${partition} AND base_offset <= ${offset}), 0)
        ORDER BY base_offset
        LIMIT ${MAX_ROWS_PER_READ}
      ) batches WHERE before < ${maxBytes} ORDER BY base_offset`) as unknown as Array<{ base_offset: number; data: Buffer }>;
    if (rows.length === 0) return { data: null, logStartOffset, logEndOffset };
    // Stored unstamped (the offset is the row's): each batch gets its base offset as it leaves.
    const data = Buffer.concat(rows.map((row) => row.data));
    let position = 0;
    for (const row of rows) {
      setBaseOffset(data.subarray(position), row.base_offset);
      position += row.data.length;
    }
    return { data, logStartOffset, logEndOffset };
  }

  async bounds({ topic, partition }: PartitionKey): Promise<PartitionBounds | null> {
    const [row] = (await this.sql`
      SELECT start_offset, next_offset, size_bytes, batches FROM rill_partitions WHERE topic = ${topic} AND partition = ${partition}`) as unknown as Array<{
      start_offset: number;
      next_offset: number;
      size_bytes: number;
      batches: number;
    }>;
    if (row === undefined) return null;
    return { logStartOffset: row.start_offset, logEndOffset: row.next_offset, sizeBytes: row.size_bytes, batches: row.batches };
  }

  /** The first batch whose newest record is at or after `timestamp` (null: none). */
  async batchAtTimestamp({ topic, partition }: PartitionKey, timestamp: number): Promise<{ baseOffset: number; data: Buffer } | null> {
    const [row] = (await this.sql`
      SELECT base_offset, data FROM rill_batches
      WHERE topic = ${topic} AND partition = ${partition} AND max_timestamp >= ${timestamp}
      ORDER BY base_offset LIMIT 1`) as unknown as Array<{ base_offset: number; data: Buffer }>;
    if (row === undefined) return null;
    setBaseOffset(row.data, row.base_offset);
    return { baseOffset: row.base_offset, data: row.data };
  }

  /** An offset at or before every batch appended at or after `since` (the appending node's clock); null: none was. */
  async firstAppendedSince({ topic, partition }: PartitionKey, since: number): Promise<number | null> {
    const [row] = (await this.sql`
      SELECT base_offset AS first FROM rill_batches
      WHERE topic = ${topic} AND partition = ${partition} AND append_time >= ${since}
      ORDER BY base_offset LIMIT 1`) as unknown as Array<{ first: number }>;
    return row?.first ?? null;
  }

  /**
   * Deletes a partition's oldest batches, as the embedded store deletes its oldest segments: by age,
   * those appended before `before` (the broker's clock, never the publishers' timestamps), up to the
   * first that was not (-1: none by age); by size, the oldest while the partition holds more than
   * `maxBytes` (-1: no limit). Always a prefix of the log: its start offset moves past them. Returns
   * the batches deleted.
   */
  async deleteOldest({ topic, partition }: PartitionKey, before: number, maxBytes: number): Promise<number> {
    return this.sql.begin(async (tx) => {
      // Its row lock: appends to the partition wait, and two cleaners never race.
      const [bounds] = (await tx`
        SELECT next_offset, size_bytes FROM rill_partitions WHERE topic = ${topic} AND partition = ${partition} FOR UPDATE`) as unknown as Array<{
        next_offset: number;
        size_bytes: number;
      }>;
      if (bounds === undefined) return 0;
      // Both cuts walk the batches from the oldest and stop at the first one kept: the work is what is deleted, not the partition.
      let byAge = 0;
      if (before >= 0) {
        const [kept] = (await tx`
          SELECT base_offset FROM rill_batches WHERE topic = ${topic} AND partition = ${partition} AND append_time >= ${before}
          ORDER BY base_offset LIMIT 1`) as unknown as Array<{ base_offset: number }>;
        byAge = kept?.base_offset ?? bounds.next_offset;
      }
      let bySize = 0;
      const excess = bounds.size_bytes - maxBytes;
      if (maxBytes >= 0 && excess > 0) {
        // The first batch with at least `excess` bytes before it is the oldest kept: what it and the newer hold fits in maxBytes.
        const [kept] = (await tx`
          SELECT base_offset FROM (
            SELECT base_offset, sum(size) OVER (ORDER BY base_offset) - size AS older_bytes
            FROM rill_batches WHERE topic = ${topic} AND partition = ${partition} ORDER BY base_offset
          ) b WHERE older_bytes >= ${excess} LIMIT 1`) as unknown as Array<{ base_offset: number }>;
        bySize = kept?.base_offset ?? bounds.next_offset;
      }
      const cut = Math.max(byAge, bySize);
      if (cut === 0) return 0;
      // The partition's size and batch count follow by trigger.
      const deleted = await tx`DELETE FROM rill_batches WHERE topic = ${topic} AND partition = ${partition} AND next_offset <= ${cut}`;
      await tx`UPDATE rill_partitions SET start_offset = greatest(start_offset, ${cut}) WHERE topic = ${topic} AND partition = ${partition}`;
      return deleted.count;
    });
  }
}

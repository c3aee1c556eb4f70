import type { OffsetLog } from '../coordinator/index.js';
import type { Sql } from './connection.js';

interface OffsetRow {
  key: string;
  value: string | null;
  at: number;
}

/**
 * Committed offsets, group settings and delivery counts in cluster mode: one row per key (the
 * table is what compacting `__consumer_offsets` would leave, so it never grows past the number of
 * keys, and a node starts by reading one row per key).
 *
 * Each write of a key takes the next number of a sequence under the key's row lock, so a key's
 * numbers grow in the order its writes commit (`at`: which of two entries is newer). Nodes read
 * what changed since they last looked by transaction id: rows written by transactions older than
 * the oldest one still running (the snapshot's xmin) are final, so a reader takes every row whose
 * transaction lies between the xmin of its last read and the xmin now, and never misses a write
 * that committed late (a sequence alone would be skipped past by a reader while its transaction
 * was still open).
 */
export class OffsetTable implements OffsetLog {
  constructor(private readonly sql: Sql) {}

  async write(key: string, value: string | null): Promise<number> {
    const [row] = (await this.sql`
      INSERT INTO rill_offsets (key, value, at, xid) VALUES (${key}, ${value}, nextval('rill_offsets_at'), pg_current_xact_id())
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = nextval('rill_offsets_at'), xid = pg_current_xact_id()
      RETURNING at`) as unknown as [{ at: number }];
    return row.at;
  }

  /** `from`: the xmin where the last read stopped (0: read every row). Resolves to the xmin of this read. */
  async replay(visit: (key: string, value: string | null, at: number) => void, from = 0): Promise<number> {
    return this.sql.begin('isolation level repeatable read read only', async (tx) => {
      const [{ horizon }] = (await tx`SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8 AS horizon`) as unknown as [{ horizon: number }];
      const rows = (await tx`
        SELECT key, value, at FROM rill_offsets
        WHERE xid >= ${String(from)}::xid8 AND xid < ${String(horizon)}::xid8
        ORDER BY at`) as unknown as OffsetRow[];
      for (const row of rows) visit(row.key, row.value, row.at);
      return horizon;
    });
  }

  /** Whether no key was ever written (a database from before this table: its offsets are still in the log). */
  async empty(): Promise<boolean> {
    const rows = await this.sql`SELECT 1 FROM rill_offsets LIMIT 1`;
    return rows.length === 0;
  }
}

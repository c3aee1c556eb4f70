import type { OffsetLog } from '../coordinator/index.js';
import type { Sql } from './connection.js';

/** Arbitrary, fixed: the advisory lock under which the log of an older Rill is copied in once. */
const ADOPT_LOCK = 0x7269_6c6f;

interface OffsetRow {
  key: string;
  value: string | null;
  at: number;
}

/** A key's writes: the one running, and the newest value waiting for it to end (see write). */
interface KeyWrites {
  waiting: { value: string | null; answers: Array<{ resolve: (at: number) => void; reject: (error: unknown) => void }> } | null;
}

/**
 * Committed offsets, group settings and delivery counts in cluster mode: one row per key (the
 * table is what compacting `__consumer_offsets` would leave, so it never grows past the number of
 * keys, and a node starts by reading one row per key).
 *
 * Each write of a key takes the next number of a sequence under the key's row lock, so a key's
 * numbers grow in the order its writes commit (`at`: which of two entries is newer). Nodes read
 * what changed since they last looked by transaction id: a reader takes every row its snapshot
 * sees whose transaction is no older than the oldest one still running at its last read (that
 * snapshot's xmin), so it never misses a write that committed late (a sequence alone would be
 * skipped past by a reader while its transaction was still open). Rows past the xmin are read
 * again next time (the caller skips an entry by its number): stopping at the xmin instead would
 * hide every commit made since the oldest transaction still open on the server began, in any
 * database of it (a new owner of a partition would start from an older commit).
 */
export class OffsetTable implements OffsetLog {
  /** When the server last read was started: another one (a fail-over, a restart) may hand out transaction ids again. */
  private server: string | null = null;
  /** Keys with a write running. */
  private readonly writes = new Map<string, KeyWrites>();
  /** Each key's writes in turn, while any runs or waits. */
  private readonly turns = new Set<Promise<void>>();

  constructor(private readonly sql: Sql) {}

  /**
   * Writes one key's value; resolves to its number (`at`). A key's writes go one at a time, in the
   * order they were made: on two of the pool's connections at once, the later could commit first
   * and the earlier be left as the key's value (a group's committed offset moved back, for every
   * other node, while this one remembers the later). Values written while one runs wait for it, and
   * only the newest of them is written: each of those writes resolves to that one's number.
   */
  write(key: string, value: string | null): Promise<number> {
    let writes = this.writes.get(key);
    const running = writes !== undefined;
    if (writes === undefined) {
      writes = { waiting: null };
      this.writes.set(key, writes);
    }
    const queued = (writes.waiting ??= { value, answers: [] });
    queued.value = value;
    const answered = new Promise<number>((resolve, reject) => queued.answers.push({ resolve, reject }));
    if (!running) {
      const turn = this.writeInTurn(key, writes);
      this.turns.add(turn);
      void turn.finally(() => this.turns.delete(turn));
    }
    return answered;
  }

  /** Resolves once no write runs or waits: a value waiting goes out only after the one running, so the pool must not end before. */
  async settled(): Promise<void> {
    while (this.turns.size > 0) await Promise.all(this.turns);
  }

  private async writeInTurn(key: string, writes: KeyWrites): Promise<void> {
    while (writes.waiting !== null) {
      const { value, answers } = writes.waiting;
      writes.waiting = null;
      try {
        const at = await this.writeNow(key, value);
        for (const answer of answers) answer.resolve(at);
      } catch (error) {
        for (const answer of answers) answer.reject(error);
      }
    }
    this.writes.delete(key);
  }

  private async writeNow(key: string, value: string | null): Promise<number> {
    const [row] = (await this.sql`
      INSERT INTO rill_offsets (key, value, at, xid) VALUES (${key}, ${value}, nextval('rill_offsets_at'), pg_current_xact_id())
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, at = nextval('rill_offsets_at'), xid = pg_current_xact_id()
      RETURNING at`) as unknown as [{ at: number }];
    return row.at;
  }

  /** `from`: the xmin of the last read (0: read every row). Resolves to the xmin of this read, the next one's `from`. */
  async replay(visit: (key: string, value: string | null, at: number) => void, from = 0): Promise<number> {
    return this.sql.begin('isolation level repeatable read read only', async (tx) => {
      const [{ horizon, server }] = (await tx`
        SELECT pg_snapshot_xmin(pg_current_snapshot())::text::int8 AS horizon, pg_postmaster_start_time()::text AS server`) as unknown as [
        { horizon: number; server: string },
      ];
      // A promoted standby may hand out again transaction ids the old primary used (ones that never
      // reached the standby): after a change of server everything is read again (one row per key;
      // entries known already are skipped by their sequence number).
      if (server !== this.server) from = 0;
      this.server = server;
      const rows = (await tx`
        SELECT key, value, at FROM rill_offsets
        WHERE xid >= ${String(from)}::xid8
        ORDER BY at`) as unknown as OffsetRow[];
      for (const row of rows) visit(row.key, row.value, row.at);
      return horizon;
    });
  }

  /** Whether no key was ever written (a database from before this table: its offsets may still be in the log). */
  private async empty(): Promise<boolean> {
    const rows = await this.sql`SELECT 1 FROM rill_offsets LIMIT 1`;
    return rows.length === 0;
  }

  /**
   * Takes in what an older Rill left in its offsets log (`__consumer_offsets`): all of it or nothing
   * (one transaction), and only into a table no node wrote yet (under a lock: nodes starting together
   * copy once, and a copy never lands over commits made since).
   */
  async adopt(log: OffsetLog): Promise<void> {
    if (!(await this.empty())) return;
    const entries = new Map<string, string>();
    await log.replay((key, value) => (value === null ? entries.delete(key) : entries.set(key, value)));
    await this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${ADOPT_LOCK})`;
      if ((await tx`SELECT 1 FROM rill_offsets LIMIT 1`).length > 0) return;
      await tx`
        INSERT INTO rill_offsets (key, value, at, xid)
        SELECT key, value, nextval('rill_offsets_at'), pg_current_xact_id()
        FROM unnest(${tx.array([...entries.keys()])}::text[], ${tx.array([...entries.values()])}::text[]) AS e (key, value)
        ON CONFLICT (key) DO NOTHING`;
    });
  }
}

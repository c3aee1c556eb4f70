import type { Sql } from './connection.js';

/**
 * A job that one node of a cluster at a time does in the background (retention, compaction): a
 * row of `rill_leases` naming the node that holds it, and until when (the database's clock). It is
 * taken, renewed and given back by short statements on any pooled connection, never held by a
 * session: a session's advisory lock dies with its connection, and a connection reserved to hold
 * one cannot be used safely once the database went away under it. A holder that dies is replaced
 * once its lease has run out; the jobs are safe to run twice meanwhile (each change checks, under
 * the partition's row lock, what it changes), the lease only spares the work.
 */
export class Lease {
  /** When this node last took or renewed it (its own clock), or null. */
  private takenAt: number | null = null;

  constructor(
    private readonly sql: Sql,
    readonly name: string,
    private readonly holder: string,
    private readonly durationMs: number,
  ) {}

  /** Takes the lease if no other node holds one that is still running, or renews this node's; whether this node holds it now. */
  async take(): Promise<boolean> {
    const rows = await this.sql`
      INSERT INTO rill_leases (name, holder, until) VALUES (${this.name}, ${this.holder}, now() + make_interval(secs => ${this.durationMs / 1000}))
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
        WHERE rill_leases.until < now() OR rill_leases.holder = excluded.holder
      RETURNING 1`;
    this.takenAt = rows.length === 1 ? performance.now() : null;
    return this.takenAt !== null;
  }

  /** Between steps of the job (and on a timer while it runs): whether this node still holds the lease, renewed once a third of it has run. */
  async hold(): Promise<boolean> {
    if (this.takenAt === null) return false;
    if (performance.now() - this.takenAt < this.durationMs / 3) return true;
    return this.take();
  }

  /**
   * Runs `work` if this node takes the lease (false at once if another node holds it), renewing it
   * on a timer while the work goes, however long one of its steps takes (a large compaction can
   * take minutes), and giving it back after. `work` asks `stillHeld` between its steps: false once
   * another node has it.
   */
  async run(work: (stillHeld: () => Promise<boolean>) => Promise<void>): Promise<boolean> {
    if (!(await this.take())) return false;
    // Renewed at every tick (a third of the lease), one renewal at a time.
    let renewing: Promise<unknown> | null = null;
    const renewal = setInterval(() => {
      if (renewing !== null) return;
      renewing = this.take()
        .catch(() => false)
        .finally(() => {
          renewing = null;
        });
    }, this.durationMs / 3);
    renewal.unref();
    try {
      await work(() => this.hold());
    } finally {
      clearInterval(renewal);
      // A renewal still running would put the row back after it was given back.
      await renewing;
      await this.give();
    }
    return true;
  }

  /** Gives the lease back (if this node still holds it), so that the next node to look may take it at once. */
  async give(): Promise<void> {
    this.takenAt = null;
    await this.sql`DELETE FROM rill_leases WHERE name = ${this.name} AND holder = ${this.holder}`;
  }
}

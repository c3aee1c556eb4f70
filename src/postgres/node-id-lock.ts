import type { Logger } from '../logging/index.js';
import { connect, type Sql } from './connection.js';

/** How long after a failed attempt the lock is asked for again. */
const RETAKE_EVERY_MS = 1000;
/** After ending this node's stale session: its lock goes as its process exits. */
const RETAKE_AFTER_STALE_MS = 100;

/** Two live nodes under one id would both complete that id's transactions: the id is held for the node's life. */
export class NodeIdTakenError extends Error {}

/** A session of the server: its process id, and when it began (process ids are reused; the pair is not). */
interface Session {
  pid: number;
  started: string;
}

/**
 * A node's hold on its id: a session advisory lock named after it, on a connection of its own
 * (not a pooled one reserved: a reserved connection used after the database went away under it
 * crashes the client). The lock lives and dies with that session, so when the connection is lost
 * (the database restarted or failed over) it is asked for again within a tenth of a second, then every second until
 * it is had. A connection only this side saw die (a network partition, a keepalive given up) may
 * leave its session holding the lock on the server: that session, this node's own, is ended and
 * the lock asked for again. If another process took it meanwhile (a second node started under
 * this id while it was free), `conflict` says so, for health, until this node has it again.
 */
export class NodeIdLock {
  private conflictReason: string | null = null;
  private retry: NodeJS.Timeout | null = null;
  private retaking = false;
  private closed = false;
  /** The session that last held the lock for this node. */
  private session: Session | null = null;

  private constructor(
    private readonly sql: Sql,
    private readonly nodeId: string,
    private readonly logger: Logger,
  ) {}

  /** Takes the node id, or throws NodeIdTakenError when a live node holds it. */
  static async take(url: string, nodeId: string, logger: Logger): Promise<NodeIdLock> {
    let lock: NodeIdLock | null = null;
    // One connection that lives as long as the node: a pooled one would be recycled, and the lock with it.
    // Reconnects as the pool does: 50-100 ms after losing the connection, then at most a second apart.
    // The server's keepalives (set by connect) end this session within about 25 s once its client is
    // gone, so that a session whose answer was lost (the lock granted, the reply cut off) does not hold the id for hours.
    const sql = connect(url, 1, nodeId, {
      max_lifetime: null,
      onclose: () => lock?.lost(),
    });
    lock = new NodeIdLock(sql, nodeId, logger);
    try {
      if (!(await lock.ask())) throw new NodeIdTakenError(`another Rill node runs on this database with node id "${nodeId}"`);
    } catch (error) {
      lock.closed = true;
      await sql.end({ timeout: 1 });
      throw error;
    }
    return lock;
  }

  /** Why this node does not hold its id now (another process took it while this node's connection was lost), or null. */
  get conflict(): string | null {
    return this.conflictReason;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    await this.sql.end({ timeout: 1 });
  }

  private async ask(): Promise<boolean> {
    const [row] = (await this.sql`
      SELECT pg_try_advisory_lock(hashtextextended(${this.key}, 0)) AS held, pg_backend_pid() AS pid,
        (SELECT backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()) AS started`) as unknown as [{ held: boolean } & Session];
    if (row.held) this.session = { pid: row.pid, started: row.started };
    return row.held;
  }

  private get key(): string {
    return `rill-node:${this.nodeId}`;
  }

  /** Ends this node's earlier session if the server still has it holding the lock; whether it did. */
  private async endOwnStaleSession(): Promise<boolean> {
    const session = this.session;
    if (session === null) return false;
    // The start time goes as text: a timestamptz parameter would pass through a JavaScript Date, which keeps milliseconds only.
    const ended = await this.sql`
      SELECT pg_terminate_backend(a.pid) AS ended
      FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
      WHERE a.pid = ${session.pid} AND a.backend_start = ${session.started}::text::timestamptz
        AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid::int8 = (hashtextextended(${this.key}, 0) >> 32) & 4294967295
        AND l.objid::int8 = hashtextextended(${this.key}, 0) & 4294967295`;
    return ended.length === 1 && (ended[0] as { ended: boolean }).ended;
  }

  /** The connection closed: the lock went with its session. */
  private lost(): void {
    if (this.closed || this.retaking || this.retry !== null) return;
    this.retakeIn(0);
  }

  private retakeIn(delayMs: number): void {
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.retake();
    }, delayMs);
    this.retry.unref();
  }

  private async retake(): Promise<void> {
    if (this.closed) return;
    this.retaking = true;
    let held: boolean | null;
    let staleEnded = false;
    try {
      held = await this.ask();
    } catch {
      held = null; // the database does not answer yet
    }
    if (held === false) {
      try {
        staleEnded = await this.endOwnStaleSession();
      } catch {
        // Not known to be this node's: still another's, as far as health is told.
      }
    }
    this.retaking = false;
    if (this.closed) return;
    if (staleEnded) {
      this.logger.warn({ nodeId: this.nodeId }, "the database still had this node's lost session holding the node id: it was ended");
      this.retakeIn(RETAKE_AFTER_STALE_MS);
      return;
    }
    if (held === true) {
      if (this.conflictReason !== null) this.logger.info({ nodeId: this.nodeId }, "the node id is this node's again");
      this.conflictReason = null;
      return;
    }
    if (held === false && this.conflictReason === null) {
      this.conflictReason = `another process took node id "${this.nodeId}" while this node's connection to the database was lost; stop the one that should not run under it`;
      this.logger.error({ nodeId: this.nodeId }, this.conflictReason);
    }
    this.retakeIn(RETAKE_EVERY_MS);
  }
}

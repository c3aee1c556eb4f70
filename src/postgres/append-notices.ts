import type { Logger } from '../logging/index.js';
import type { Sql } from './connection.js';

/**
 * Whether this node's appends are NOTIFYed to the other nodes (so that their subscribers hear of
 * them). A node alone has nobody to tell, and a notice is not free: every commit that sends one
 * takes a lock all such commits share and wakes a listening process (on one node at 10,000 msgs/s,
 * about 0.4 ms of the median publish-to-deliver latency). So a node that sees no other node turns
 * them off: each append statement says whether it is notified (`rill.append_notices`, a setting
 * local to its transaction, which the trigger reads), as `appendNotified` says when the statement is
 * issued.
 * When a node says it joined, or another node is seen, they are turned on again and every
 * partition's end is notified once: issued on the appends' connection after the appends issued
 * unnotified, it runs after them (one connection runs its statements in order), so it covers
 * them. Until that notice has gone out, it is owed and asked again at the next heartbeat.
 */
export class AppendNotices {
  private notifying = true;
  /** Whether appends went out unnotified since every partition's end was last notified. */
  private owed = false;
  /** Whether any append ever went out unnotified. */
  private everUnnotified = false;
  private catchingUp = false;
  private closed = false;

  constructor(
    /** The appends' connection (a pool of one). */
    private readonly appendSql: Sql,
    private readonly logger: Logger,
  ) {}

  /** Whether the append statement being issued now notifies its partitions' new ends (one that does not is owed a notice). */
  appendNotified(): boolean {
    if (!this.notifying) {
      this.owed = true;
      this.everUnnotified = true;
    }
    return this.notifying;
  }

  /**
   * The database answers again after a lost connection, and no statement this node sent before the
   * loss still runs there (the store's probe). An unnotified append sent on the lost connection
   * may have committed after the last notice of the ends (its server process outlived the
   * connection): the ends are owed again.
   */
  connectionBack(): void {
    if (!this.everUnnotified) return;
    this.owed = true;
    if (this.notifying) this.scheduleCatchUp();
  }

  /** A heartbeat's view of the other nodes, or a node saying it joined. */
  peers({ others, joinedSince }: { others: boolean; joinedSince: boolean }): void {
    if (this.closed) return;
    if (!others && !joinedSince) {
      if (this.notifying) this.logger.info('no other node: appends are not notified');
      this.notifying = false;
      return;
    }
    if (!this.notifying) this.logger.info('another node is here: notifying appends again');
    this.notifying = true;
    if (this.owed) this.scheduleCatchUp();
  }

  close(): void {
    this.closed = true;
  }

  private scheduleCatchUp(): void {
    if (this.catchingUp || this.closed) return;
    this.catchingUp = true;
    // Once the appends being issued now (decided a moment ago, on their way to the connection
    // through a few promise steps) are queued ahead of it.
    setImmediate(() => this.catchUp());
  }

  /** Notifies every partition's end, after the appends issued unnotified. */
  private catchUp(): void {
    this.owed = false;
    this.catchingUp = true;
    if (this.closed) return;
    this.appendSql`SELECT rill_notify_ends(ARRAY(SELECT json_build_array(topic, partition, next_offset)::text FROM rill_partitions))`.then(
      () => {
        this.catchingUp = false;
      },
      (error: unknown) => {
        // Asked again at the next heartbeat.
        this.catchingUp = false;
        this.owed = true;
        if (!this.closed) this.logger.warn({ err: error }, "could not notify the partitions' ends");
      },
    );
  }
}

import type { Logger } from '../logging/index.js';
import type { Sql } from './connection.js';

/**
 * Whether this node's appends are NOTIFYed to the other nodes (so that their subscribers hear of
 * them). A node alone has nobody to tell, and a notice is not free: every commit that sends one
 * takes a lock all such commits share and wakes a listening process (on one node at 10,000 msgs/s,
 * about 0.4 ms of the median publish-to-deliver latency). So a node that sees no other node's
 * heartbeat turns them off on its appends' session (`rill.append_notices`, read by the trigger),
 * and turns them on again when a node says it joined or its heartbeat is seen, notifying then every
 * partition's end: that covers what it appended unnotified, since the statement runs on the
 * appends' connection after any append in flight. A new connection sends notices (the setting is
 * the session's), so every failure leaves them on.
 */
export class AppendNotices {
  /** Whether they are off on the session (as last asked: a lost connection turns them on). */
  private quiet = false;

  constructor(
    /** The appends' connection (a pool of one). */
    private readonly appendSql: Sql,
    private readonly logger: Logger,
  ) {}

  /** Whether this node's appends are not being notified (diagnostics and tests). */
  get off(): boolean {
    return this.quiet;
  }

  /** A heartbeat's view of the other nodes, or a node saying it joined. */
  peers({ others, joinedSince }: { others: boolean; joinedSince: boolean }): void {
    if (others || joinedSince) this.on();
    else this.offWhileAlone();
  }

  /** The appends' connection was lost: a new session sends notices. */
  connectionLost(): void {
    this.quiet = false;
  }

  private on(): void {
    if (!this.quiet) return;
    this.quiet = false;
    this.appendSql`SELECT set_config('rill.append_notices', 'on', false),
      rill_notify_ends(ARRAY(SELECT json_build_array(topic, partition, next_offset)::text FROM rill_partitions))`.then(
      () => this.logger.info('another node is here: notifying appends again'),
      (error: unknown) => {
        // Asked again at the next heartbeat (a new session, if the connection broke, sends them anyway).
        this.quiet = true;
        this.logger.warn({ err: error }, 'could not turn append notices on');
      },
    );
  }

  private offWhileAlone(): void {
    if (this.quiet) return;
    this.quiet = true;
    this.appendSql`SELECT set_config('rill.append_notices', 'off', false)`.then(
      () => this.logger.info('no other node: appends are not notified'),
      () => {
        // Notices stay on (the session's default): asked again at the next heartbeat.
        this.quiet = false;
      },
    );
  }
}

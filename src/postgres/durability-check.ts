import type { Logger } from '../logging/index.js';
import type { Sql } from './connection.js';

/**
 * Rill acknowledges a message once its COMMIT returns. That the message then survives the loss
 * of the primary depends on two settings, checked at start-up: `synchronous_commit` (on,
 * remote_write, remote_apply: the commit waits for the standby) and `synchronous_standby_names`
 * (there is a standby to wait for). Without them an acknowledged message survives a crash of the
 * primary (its WAL is flushed), but not the loss of its disk or a fail-over.
 */
export async function checkDurability(sql: Sql, logger: Logger): Promise<void> {
  const [{ commit, standbys, fsync }] = (await sql`
    SELECT current_setting('synchronous_commit') AS commit,
           current_setting('synchronous_standby_names') AS standbys,
           current_setting('fsync') AS fsync`) as unknown as [{ commit: string; standbys: string; fsync: string }];
  if (fsync !== 'on' || commit === 'off' || commit === 'local') {
    logger.warn(
      { synchronous_commit: commit, fsync },
      'PostgreSQL may acknowledge a commit before it is on disk: acknowledged messages can be lost in a crash (set fsync = on and synchronous_commit = on)',
    );
  } else if (standbys.trim() === '') {
    logger.warn(
      { synchronous_standby_names: standbys },
      'PostgreSQL has no synchronous standby: acknowledged messages survive a crash of the primary, not the loss of its disk or a fail-over (set synchronous_standby_names)',
    );
  }
}

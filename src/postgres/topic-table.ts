import { topicSettings } from '../config/index.js';
import type { TopicStore } from '../broker/index.js';
import type { Logger } from '../logging/index.js';
import type { TopicDefinition } from '../storage/index.js';
import type { Sql } from './connection.js';

interface TopicRow {
  name: string;
  partitions: number;
  lanes: number;
  settings: unknown;
  created_at: number;
}

/**
 * The topics of a cluster, in `rill_topics` (and a `rill_partitions` row per partition, which
 * holds its next offset). The registry above is synchronous, so writes return at once and are
 * queued in order: appends wait for `settled()`, so a partition's row exists before its first batch.
 */
export class TopicTable implements TopicStore {
  private writes: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly sql: Sql,
    private readonly loaded: TopicDefinition[],
    private readonly logger: Logger,
  ) {}

  static async open(sql: Sql, logger: Logger): Promise<TopicTable> {
    const rows = (await sql`SELECT name, partitions, lanes, settings, created_at FROM rill_topics ORDER BY created_at, name`) as unknown as TopicRow[];
    return new TopicTable(sql, rows.map(definitionOf), logger);
  }

  load(): TopicDefinition[] {
    return this.loaded;
  }

  save(definition: TopicDefinition): void {
    const { name, partitions, lanes = 1, settings = {}, createdAt } = definition;
    this.chain(`storing topic "${name}"`, async () => {
      await this.sql.begin(async (tx) => {
        // A topic made on two nodes at once: one definition wins, partitions only grow.
        await tx`
          INSERT INTO rill_topics (name, partitions, lanes, settings, created_at)
          VALUES (${name}, ${partitions}, ${lanes}, ${tx.json(settings as never)}, ${createdAt})
          ON CONFLICT (name) DO UPDATE SET partitions = greatest(rill_topics.partitions, excluded.partitions), settings = excluded.settings
          WHERE rill_topics.partitions < excluded.partitions OR rill_topics.settings <> excluded.settings`;
        await tx`
          INSERT INTO rill_partitions (topic, partition)
          SELECT ${name}, generate_series(0, partitions - 1) FROM rill_topics WHERE name = ${name}
          ON CONFLICT DO NOTHING`;
      });
    });
  }

  /**
   * Runs a write after the ones before it, again and again until it succeeds (or the store
   * closes): the registry holds the topic already, and its partitions take no append until their
   * rows exist, so a write that failed for a moment (the database restarting) must not be dropped.
   */
  private chain(what: string, write: () => Promise<void>): Promise<void> {
    const done = this.writes.then(async () => {
      for (let wait = RETRY_MIN_MS; !this.closed; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
        try {
          await write();
          return;
        } catch (error) {
          this.logger.warn({ err: error, retryInMs: wait }, `${what} in the database failed; trying again`);
          await new Promise((resolve) => setTimeout(resolve, wait).unref());
        }
      }
    });
    this.writes = done;
    return done;
  }

  /** Resolves once every topic write made so far is done. */
  settled(): Promise<void> {
    return this.writes;
  }

  remove(name: string): Promise<void> {
    // Its partitions and batches go with it (ON DELETE CASCADE), in one transaction, in order with the other writes.
    return this.chain(`deleting topic "${name}"`, async () => {
      await this.sql`DELETE FROM rill_topics WHERE name = ${name}`;
    });
  }

  /** Stops retrying writes (the store is closing). */
  close(): void {
    this.closed = true;
  }

  partitionDirectory(topic: string, partition: number): string {
    return `${topic}/${partition}`;
  }

  /** Every topic as the database has it now. */
  async readAll(): Promise<TopicDefinition[]> {
    const rows = (await this.sql`SELECT name, partitions, lanes, settings, created_at FROM rill_topics ORDER BY created_at, name`) as unknown as TopicRow[];
    return rows.map(definitionOf);
  }

  /** A topic as the database has it now (undefined: gone). */
  async read(name: string): Promise<TopicDefinition | undefined> {
    const rows = (await this.sql`SELECT name, partitions, lanes, settings, created_at FROM rill_topics WHERE name = ${name}`) as unknown as TopicRow[];
    return rows[0] === undefined ? undefined : definitionOf(rows[0]);
  }
}

const RETRY_MIN_MS = 200;
const RETRY_MAX_MS = 5000;

function definitionOf(row: TopicRow): TopicDefinition {
  // Another node wrote it: checked as any input. Settings this Rill does not know (a newer node's)
  // are left out rather than refused, so that nodes of two versions run side by side in an upgrade.
  const known = Object.fromEntries(Object.entries((row.settings ?? {}) as Record<string, unknown>).filter(([key]) => key in topicSettings.shape));
  const settings = topicSettings.parse(known);
  return {
    name: row.name,
    partitions: row.partitions,
    createdAt: row.created_at,
    ...(row.lanes === 1 ? {} : { lanes: row.lanes }),
    ...(Object.keys(settings).length === 0 ? {} : { settings }),
  };
}

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
  private failure: Error | null = null;

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
    this.writes = this.writes.then(async () => {
      try {
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
        this.failure = null;
      } catch (error) {
        // Appends to the topic fail (no partition row) until a later write of it succeeds.
        this.failure = error as Error;
        this.logger.error({ err: error, topic: name }, 'storing a topic in the database failed');
      }
    });
  }

  /** Resolves once every topic write made so far is done (failed ones included: see `lastFailure`). */
  settled(): Promise<void> {
    return this.writes;
  }

  get lastFailure(): Error | null {
    return this.failure;
  }

  async remove(name: string): Promise<void> {
    await this.writes;
    // Its partitions and batches go with it (ON DELETE CASCADE), in one transaction.
    await this.sql`DELETE FROM rill_topics WHERE name = ${name}`;
  }

  partitionDirectory(topic: string, partition: number): string {
    return `${topic}/${partition}`;
  }

  /** A topic as the database has it now (undefined: gone). */
  async read(name: string): Promise<TopicDefinition | undefined> {
    const rows = (await this.sql`SELECT name, partitions, lanes, settings, created_at FROM rill_topics WHERE name = ${name}`) as unknown as TopicRow[];
    return rows[0] === undefined ? undefined : definitionOf(rows[0]);
  }
}

function definitionOf(row: TopicRow): TopicDefinition {
  // Another node (perhaps a newer Rill) wrote it: checked as any input.
  const settings = topicSettings.parse(row.settings ?? {});
  return {
    name: row.name,
    partitions: row.partitions,
    createdAt: row.created_at,
    ...(row.lanes === 1 ? {} : { lanes: row.lanes }),
    ...(Object.keys(settings).length === 0 ? {} : { settings }),
  };
}

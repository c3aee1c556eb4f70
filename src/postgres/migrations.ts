import type { Logger } from '../logging/index.js';
import type { Sql } from './connection.js';

/**
 * The schema, as versioned migrations applied in order (never edited once shipped: a change is a
 * new migration). Record batches are stored whole, in their binary format with their CRC32C, a
 * row per batch, never a row per message.
 */
const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'topics, partitions and their batches',
    sql: `
      CREATE TABLE rill_topics (
        name text PRIMARY KEY,
        partitions int NOT NULL CHECK (partitions > 0),
        lanes int NOT NULL DEFAULT 1,
        settings jsonb NOT NULL DEFAULT '{}',
        created_at bigint NOT NULL
      );
      -- next_offset: the offset the next batch gets. Appends take this row's lock, so two nodes
      -- appending to one partition serialize on it and never reuse or skip an offset.
      CREATE TABLE rill_partitions (
        topic text NOT NULL REFERENCES rill_topics (name) ON DELETE CASCADE,
        partition int NOT NULL,
        next_offset bigint NOT NULL DEFAULT 0,
        start_offset bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (topic, partition)
      );
      CREATE TABLE rill_batches (
        topic text NOT NULL,
        partition int NOT NULL,
        base_offset bigint NOT NULL,
        next_offset bigint NOT NULL,
        max_timestamp bigint NOT NULL,
        append_time bigint NOT NULL,
        size int NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (topic, partition, base_offset),
        FOREIGN KEY (topic, partition) REFERENCES rill_partitions ON DELETE CASCADE
      );
      -- Batches are compressed by Rill when the topic says so: TOAST must not compress them again.
      ALTER TABLE rill_batches ALTER COLUMN data SET STORAGE EXTERNAL;

      -- Every node hears of new batches (to feed its subscribers) and of topics made, changed or
      -- deleted elsewhere. One notification per statement: a partition's new end, in chunks that
      -- keep under NOTIFY's 8,000-byte payload.
      CREATE FUNCTION rill_batches_appended() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        chunk text := '';
        item text;
      BEGIN
        FOR item IN SELECT json_build_array(topic, partition, max(next_offset))::text FROM appended GROUP BY topic, partition LOOP
          IF length(chunk) + length(item) > 7000 THEN
            PERFORM pg_notify('rill_appended', '[' || chunk || ']');
            chunk := '';
          END IF;
          chunk := CASE WHEN chunk = '' THEN item ELSE chunk || ',' || item END;
        END LOOP;
        IF chunk <> '' THEN PERFORM pg_notify('rill_appended', '[' || chunk || ']'); END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER rill_batches_appended AFTER INSERT ON rill_batches
        REFERENCING NEW TABLE AS appended FOR EACH STATEMENT EXECUTE FUNCTION rill_batches_appended();

      -- The topic's creation time tells its incarnations apart: a deletion that a node hears of
      -- late must not delete the topic made again under the same name since. 'by' names the
      -- writer (its application_name, rill:<nodeId>): a node has applied its own changes already.
      CREATE FUNCTION rill_topics_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        writer text := current_setting('application_name', true);
      BEGIN
        IF TG_OP = 'DELETE' THEN
          PERFORM pg_notify('rill_topics', json_build_object('name', OLD.name, 'deleted', true, 'createdAt', OLD.created_at, 'by', writer)::text);
        ELSE
          PERFORM pg_notify('rill_topics', json_build_object('name', NEW.name, 'deleted', false, 'createdAt', NEW.created_at, 'by', writer)::text);
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER rill_topics_changed AFTER INSERT OR UPDATE OR DELETE ON rill_topics
        FOR EACH ROW EXECUTE FUNCTION rill_topics_changed();
    `,
  },
  {
    version: 2,
    name: 'consumer groups shared by the nodes',
    sql: `
      -- Each node writes seen_at every quarter of a second: one write per node, however many members it holds.
      CREATE TABLE rill_nodes (
        node_id text PRIMARY KEY,
        seen_at timestamptz NOT NULL
      );
      -- A decision about a group takes this row's lock: one at a time, whichever node makes it.
      CREATE TABLE rill_groups (
        name text PRIMARY KEY,
        generation int NOT NULL DEFAULT 0,
        settings jsonb NOT NULL DEFAULT '{}',
        session_timeout_ms int NOT NULL,
        assignment jsonb NOT NULL DEFAULT '{}',
        -- A deleted group keeps its row, so that its generations go on growing if it is made again.
        deleted boolean NOT NULL DEFAULT false
      );
      -- node_id: the node holding the member; a node quiet for longer than the session timeout loses its members.
      CREATE TABLE rill_group_members (
        group_name text NOT NULL REFERENCES rill_groups (name) ON DELETE CASCADE,
        member text NOT NULL,
        node_id text NOT NULL,
        instance_id text,
        topics text[] NOT NULL,
        PRIMARY KEY (group_name, member)
      );
      CREATE INDEX rill_group_members_node ON rill_group_members (node_id);
    `,
  },
  {
    version: 3,
    name: "partitions' sizes kept with their offsets",
    sql: `
      -- Describing a partition or scraping metrics never sums its batches. Kept by triggers, once
      -- per statement, so that every writer keeps them (a node of an older Rill too, during an
      -- upgrade); appends and retention hold the partition's row lock already.
      ALTER TABLE rill_partitions ADD COLUMN size_bytes int8 NOT NULL DEFAULT 0, ADD COLUMN batches int8 NOT NULL DEFAULT 0;
      UPDATE rill_partitions p SET size_bytes = s.size_bytes, batches = s.batches
      FROM (SELECT topic, partition, sum(size)::int8 AS size_bytes, count(*)::int8 AS batches FROM rill_batches GROUP BY topic, partition) s
      WHERE p.topic = s.topic AND p.partition = s.partition;
      CREATE FUNCTION rill_batches_counted() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        sign int8 := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
      BEGIN
        UPDATE rill_partitions p SET size_bytes = p.size_bytes + sign * c.bytes, batches = p.batches + sign * c.batches
        FROM (SELECT topic, partition, sum(size)::int8 AS bytes, count(*)::int8 AS batches FROM changed GROUP BY topic, partition) c
        WHERE p.topic = c.topic AND p.partition = c.partition;
        RETURN NULL;
      END $$;
      CREATE TRIGGER rill_batches_counted_in AFTER INSERT ON rill_batches
        REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rill_batches_counted();
      CREATE TRIGGER rill_batches_counted_out AFTER DELETE ON rill_batches
        REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION rill_batches_counted();
    `,
  },
  {
    version: 4,
    name: 'committed offsets as rows',
    sql: `
      -- One row per key of what __consumer_offsets held (committed offsets, group settings, delivery
      -- counts): at orders a key's writes (taken under its row lock), xid says which transaction
      -- wrote it, so that nodes read what changed since they last looked.
      CREATE SEQUENCE rill_offsets_at;
      CREATE TABLE rill_offsets (
        key text PRIMARY KEY,
        value text,
        at int8 NOT NULL,
        xid xid8 NOT NULL
      );
      CREATE INDEX rill_offsets_xid ON rill_offsets (xid);
    `,
  },
  {
    version: 5,
    name: "static members' join times",
    sql: `
      -- When a member's client last joined (epoch ms, its node's clock): of two members of one static
      -- instance on two nodes, the later join stays.
      ALTER TABLE rill_group_members ADD COLUMN joined_at int8 NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 6,
    name: 'leases for the jobs one node at a time does',
    sql: `
      -- Retention and compaction run on one node at a time: the one holding the job's lease (until: the database's clock).
      CREATE TABLE rill_leases (
        name text PRIMARY KEY,
        holder text NOT NULL,
        until timestamptz NOT NULL
      );
    `,
  },
  {
    version: 7,
    name: 'no append notices from a node alone',
    sql: `
      -- Partitions' ends ([topic, partition, end] as JSON) notified on rill_appended, in chunks that
      -- keep under NOTIFY's 8,000-byte payload.
      CREATE FUNCTION rill_notify_ends(ends text[]) RETURNS void LANGUAGE plpgsql AS $$
      DECLARE
        chunk text := '';
        item text;
      BEGIN
        FOREACH item IN ARRAY ends LOOP
          IF length(chunk) + length(item) > 7000 THEN
            PERFORM pg_notify('rill_appended', '[' || chunk || ']');
            chunk := '';
          END IF;
          chunk := CASE WHEN chunk = '' THEN item ELSE chunk || ',' || item END;
        END LOOP;
        IF chunk <> '' THEN PERFORM pg_notify('rill_appended', '[' || chunk || ']'); END IF;
      END $$;
      -- A node alone in the cluster sends no append notices: its append statements set
      -- rill.append_notices = 'off' for their transaction. Nobody listens for them, and each costs
      -- its commit a lock that all notifying commits share, and a process woken. Unset (any other
      -- statement, an older node) they are sent.
      CREATE OR REPLACE FUNCTION rill_batches_appended() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('rill.append_notices', true) = 'off' THEN RETURN NULL; END IF;
        PERFORM rill_notify_ends(ARRAY(SELECT json_build_array(topic, partition, max(next_offset))::text FROM appended GROUP BY topic, partition));
        RETURN NULL;
      END $$;
    `,
  },
];

/** The newest schema this code knows. */
const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** The database holds a schema newer than this node knows: an older node must not write to it. */
export class NewerSchemaError extends Error {}

/** Arbitrary, fixed: the advisory lock that makes nodes starting together migrate one at a time. */
const MIGRATION_LOCK = 0x7269_6c6c;

/**
 * Brings the schema to SCHEMA_VERSION, each migration in its own transaction, under an advisory
 * lock (nodes starting together migrate once). Throws NewerSchemaError, changing nothing, when the
 * database was migrated by a newer Rill.
 */
export async function migrate(sql: Sql, logger: Logger): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`CREATE TABLE IF NOT EXISTS rill_schema (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    const [{ current }] = (await tx`SELECT coalesce(max(version), 0)::int AS current FROM rill_schema`) as unknown as [{ current: number }];
    if (current > SCHEMA_VERSION) {
      throw new NewerSchemaError(
        `the database's Rill schema is version ${current}, newer than this Rill knows (${SCHEMA_VERSION}): run a Rill at least as new as the one that migrated it`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue;
      await tx.unsafe(migration.sql);
      await tx`INSERT INTO rill_schema (version, name) VALUES (${migration.version}, ${migration.name})`;
      logger.info({ version: migration.version, name: migration.name }, 'database schema migrated');
    }
  });
}

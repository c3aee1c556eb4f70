import {
  supersedes,
  type DecisionInput,
  type GroupDirectory,
  type SettingsToWrite,
  type SharedGroupState,
  type SharedMember,
  type TopicPartition,
} from '../coordinator/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { JSONValue } from 'postgres';
import type { Sql } from './connection.js';

/** How often a node writes that it is alive: one row per node, whatever its number of members. */
const NODE_HEARTBEAT_MS = 250;
/** Heartbeat writes waiting for the database at most (the next ones are skipped meanwhile). */
const MAX_HEARTBEATS_IN_FLIGHT = 3;
/** A node whose heartbeat is older than this, and which has no connection to the database, is no longer counted as a peer that may listen for append notices. */
const PEER_SEEN_WITHIN_S = 30;
/** A group's session timeout when its settings do not say (the config's default). */
const DEFAULT_SESSION_TIMEOUT_MS = 30_000;

interface GroupRow {
  name: string;
  generation: number;
  deleted: boolean;
  settings: SharedGroupState['settings'];
  assignment: Record<string, TopicPartition[]>;
}

interface MemberRow {
  group_name: string;
  member: string;
  node_id: string;
  instance_id: string | null;
  topics: string[];
  joined_at: number;
}

/**
 * Consumer groups shared by the nodes of a cluster (the coordinator's GroupDirectory): a row per
 * group (generation, assignment, settings) whose lock makes one decision at a time, a row per
 * member naming the node that holds it, and a row per node that the node touches every
 * NODE_HEARTBEAT_MS. Every decision is NOTIFYed on `rill_groups`, so members learn of new
 * assignments at once wherever they are connected.
 */
export class GroupTable implements GroupDirectory {
  private readonly listeners = new Set<(group: string, generation: number) => void>();
  private heartbeat: NodeJS.Timeout | null = null;
  /** The heartbeat writes in flight: closing waits for them, so that none can bring the node's row back. */
  private readonly touching = new Set<Promise<void>>();
  /** Heartbeat writes made, and the newest whose answer was taken: an older answer is stale. */
  private touches = 0;
  private newestTouchAnswered = 0;
  private readonly peerListeners = new Set<(update: { others: boolean; joinedSince: boolean }) => void>();
  /** How many times another node said it joined. */
  private joinsHeard = 0;
  private closed = false;

  constructor(
    private readonly sql: Sql,
    readonly nodeId: string,
    private readonly logger: Logger,
  ) {}

  /**
   * Says this node is alive (and goes on saying it), and listens for other nodes' decisions and
   * arrivals. Once it listens and its row is written, it tells the other nodes that it joined (its
   * store must already listen for their appends: they may have sent no notices while alone).
   */
  async start(): Promise<void> {
    await this.sql.listen('rill_nodes', (nodeId) => {
      if (nodeId === this.nodeId) return;
      this.joinsHeard++;
      for (const listener of this.peerListeners) listener({ others: true, joinedSince: true });
    });
    await this.touch();
    await this.sql`SELECT pg_notify('rill_nodes', ${this.nodeId})`;
    this.heartbeat = setInterval(() => {
      // Not one at a time: a write queued behind a long statement on a busy connection must not hold
      // the next ones (on other connections) back, or the node would look gone. But a few at most:
      // while the database does not answer they would pile up, and all run at once when it does.
      // Answers that come after a newer one are dropped (see touch); closing waits for every write in flight.
      if (this.touching.size >= MAX_HEARTBEATS_IN_FLIGHT) return;
      const touch = this.touch().catch((error: unknown) => this.logger.debug({ err: error }, "could not write this node's heartbeat"));
      this.touching.add(touch);
      void touch.finally(() => this.touching.delete(touch));
    }, NODE_HEARTBEAT_MS).unref();
    let listening = 0;
    await this.sql.listen(
      'rill_groups',
      (payload) => {
        let notice: { group: string; generation: number; by: string };
        try {
          notice = JSON.parse(payload) as typeof notice;
        } catch {
          return;
        }
        if (notice.by !== this.nodeId) this.tell(notice.group, notice.generation);
      },
      // Listening again after a lost connection: decisions made meanwhile were never heard of.
      () => {
        if (listening++ === 0) return;
        this.list().then(
          (states) => {
            for (const state of states) this.tell(state.group, state.generation);
          },
          (error: unknown) => this.logger.warn({ err: error }, 'could not read the consumer groups again after the connection came back'),
        );
      },
    );
  }

  private tell(group: string, generation: number): void {
    for (const listener of this.listeners) listener(group, generation);
  }

  /** Writes this node's heartbeat, and tells the peer listeners whether another node's is recent. */
  private async touch(): Promise<void> {
    if (this.closed) return;
    const touch = ++this.touches;
    const joinsBefore = this.joinsHeard;
    const [row] = (await this.sql`
      WITH touched AS (
        INSERT INTO rill_nodes (node_id, seen_at) VALUES (${this.nodeId}, now()) ON CONFLICT (node_id) DO UPDATE SET seen_at = now()
      )
      SELECT EXISTS (
        SELECT 1 FROM rill_nodes WHERE node_id <> ${this.nodeId} AND seen_at > now() - make_interval(secs => ${PEER_SEEN_WITHIN_S})
      ) OR EXISTS (
        -- Connected, if its heartbeat lags (or it is an older node): it may be listening.
        SELECT 1 FROM pg_stat_activity
        WHERE datname = current_database() AND application_name LIKE 'rill:%' AND application_name <> ${`rill:${this.nodeId}`}
      ) AS others`) as unknown as [{ others: boolean }];
    if (touch < this.newestTouchAnswered) return;
    this.newestTouchAnswered = touch;
    const update = { others: row.others, joinedSince: this.joinsHeard !== joinsBefore };
    for (const listener of this.peerListeners) listener(update);
  }

  /**
   * Calls `listener` with each heartbeat: whether another node's heartbeat is recent, and whether a
   * node said it joined while the heartbeat was being written (then "no other" may be stale); and
   * at once when a node says it joined.
   */
  onPeers(listener: (update: { others: boolean; joinedSince: boolean }) => void): void {
    this.peerListeners.add(listener);
  }

  onChanged(listener: (group: string, generation: number) => void): void {
    this.listeners.add(listener);
  }

  async decide(
    group: string,
    { settings: ours, changed }: SettingsToWrite,
    local: SharedMember[],
    decide: (input: DecisionInput) => Record<string, TopicPartition[]> | null,
  ): Promise<SharedGroupState> {
    return this.sql.begin(async (tx) => {
      // A node deciding is alive: its heartbeat cannot lag behind its own decisions.
      await tx`INSERT INTO rill_nodes (node_id, seen_at) VALUES (${this.nodeId}, now()) ON CONFLICT (node_id) DO UPDATE SET seen_at = now()`;
      await tx`INSERT INTO rill_groups (name, settings, session_timeout_ms)
               VALUES (${group}, ${tx.json(ours as JSONValue)}, ${ours.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS}) ON CONFLICT (name) DO NOTHING`;
      // The group's lock: one decision at a time, whichever node makes it.
      const [row] = (await tx`SELECT name, generation, settings, assignment, deleted FROM rill_groups WHERE name = ${group} FOR UPDATE`) as unknown as [
        GroupRow,
      ];
      // A deleted group made again takes the settings it is made with, not the old group's.
      const replace = changed || row.deleted;
      const settings = replace ? ours : row.settings;
      const sessionTimeoutMs = settings.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
      if (replace) {
        await tx`UPDATE rill_groups SET settings = ${tx.json(settings as JSONValue)}, session_timeout_ms = ${sessionTimeoutMs} WHERE name = ${group}`;
        row.settings = settings;
      }
      const rows = (await tx`
        SELECT m.group_name, m.member, m.node_id, m.instance_id, m.topics, m.joined_at,
               (m.node_id <> ${this.nodeId} AND (n.seen_at IS NULL OR n.seen_at < now() - make_interval(secs => ${sessionTimeoutMs}::float8 / 1000))) AS gone
        FROM rill_group_members m LEFT JOIN rill_nodes n ON n.node_id = m.node_id
        WHERE m.group_name = ${group}`) as unknown as Array<MemberRow & { gone: boolean }>;
      const before = toState(row, rows);
      const live = rows.filter((r) => r.node_id !== this.nodeId && !r.gone).map(toMember);
      // Static membership across nodes (Kafka's group.instance.id): of two members of one instance,
      // the later join is the client as it is now, come back through another node. Joined here, it
      // takes the other node's member's place and partitions (that node drops its member when it
      // hears of it); joined there, this node's member is its past and is left out.
      const takenOver = new Map<string, SharedMember>();
      const superseded = new Set<string>();
      for (const mine of local) {
        if (mine.instanceId === null) continue;
        for (const theirs of live) {
          if (theirs.instanceId !== mine.instanceId) continue;
          if (supersedes(theirs, mine.joinedAt, this.nodeId)) superseded.add(mine.name);
          // Not while another member of that node has this one's name (a refusal, left to the rules of names).
          else if (!live.some((other) => other !== theirs && other.name === mine.name)) takenOver.set(theirs.name, mine);
        }
      }
      // Another live node's member of the same name keeps it: this node's is left out (and refused).
      const others = live.filter((m) => !takenOver.has(m.name));
      const members = [...others, ...local.filter((m) => !superseded.has(m.name) && !others.some((o) => o.name === m.name))];
      // The decision starts from the partitions of a member taken over given to its successor.
      const start = takenOver.size === 0 ? before : succeeded(before, takenOver);
      let assignment = decide({ before: start, members });
      let generation = row.generation + 1;
      if (assignment === null) {
        if (takenOver.size === 0) {
          if (changed) await tx`SELECT pg_notify('rill_groups', ${JSON.stringify({ group, generation: row.generation, by: this.nodeId })})`;
          return before;
        }
        // Only places taken over: the same generation and partitions, the others undisturbed (no rebalance).
        assignment = start.assignment;
        generation = row.generation;
      }
      await tx`DELETE FROM rill_group_members WHERE group_name = ${group} AND (node_id = ${this.nodeId} OR member <> ALL(${others.map((m) => m.name)}::text[]))`;
      for (const member of members) {
        if (member.node !== this.nodeId) continue;
        await tx`INSERT INTO rill_group_members (group_name, member, node_id, instance_id, topics, joined_at)
                 VALUES (${group}, ${member.name}, ${this.nodeId}, ${member.instanceId}, ${member.topics}::text[], ${member.joinedAt})`;
      }
      // A deleted group that a member joins again is made again.
      await tx`UPDATE rill_groups SET generation = ${generation}, assignment = ${tx.json(assignment as unknown as JSONValue)}, deleted = false WHERE name = ${group}`;
      await tx`SELECT pg_notify('rill_groups', ${JSON.stringify({ group, generation, by: this.nodeId })})`;
      return { group, generation, settings, members, assignment, deleted: false };
    });
  }

  async read(group: string): Promise<SharedGroupState | undefined> {
    // One snapshot: the row and the members of the same decision.
    return this.sql.begin('isolation level repeatable read read only', async (tx) => {
      const [row] = (await tx`SELECT name, generation, settings, assignment, deleted FROM rill_groups WHERE name = ${group}`) as unknown as GroupRow[];
      if (row === undefined) return undefined;
      const rows =
        (await tx`SELECT group_name, member, node_id, instance_id, topics, joined_at FROM rill_group_members WHERE group_name = ${group}`) as unknown as MemberRow[];
      return toState(row, rows);
    });
  }

  async list(): Promise<SharedGroupState[]> {
    return this.sql.begin('isolation level repeatable read read only', async (tx) => {
      const groups = (await tx`SELECT name, generation, settings, assignment, deleted FROM rill_groups WHERE NOT deleted`) as unknown as GroupRow[];
      const rows = (await tx`SELECT group_name, member, node_id, instance_id, topics, joined_at FROM rill_group_members`) as unknown as MemberRow[];
      return groups.map((row) =>
        toState(
          row,
          rows.filter((r) => r.group_name === row.name),
        ),
      );
    });
  }

  async generations(): Promise<Array<{ group: string; generation: number; deleted: boolean }>> {
    return (await this.sql`SELECT name AS "group", generation, deleted FROM rill_groups`) as unknown as Array<{
      group: string;
      generation: number;
      deleted: boolean;
    }>;
  }

  async orphaned(): Promise<string[]> {
    const rows = (await this.sql`
      SELECT DISTINCT m.group_name FROM rill_group_members m
      JOIN rill_groups g ON g.name = m.group_name
      LEFT JOIN rill_nodes n ON n.node_id = m.node_id
      WHERE m.node_id <> ${this.nodeId}
        AND (n.seen_at IS NULL OR n.seen_at < now() - make_interval(secs => g.session_timeout_ms / 1000.0))`) as unknown as Array<{ group_name: string }>;
    return rows.map((r) => r.group_name);
  }

  async forget(group: string): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`SELECT 1 FROM rill_groups WHERE name = ${group} FOR UPDATE`;
      const [{ members }] = (await tx`SELECT count(*)::int AS members FROM rill_group_members WHERE group_name = ${group}`) as unknown as [{ members: number }];
      if (members > 0)
        throw new RillError(
          'group-not-empty',
          `group "${group}" has ${members} members on the nodes of the cluster; a group can be deleted only when it has none`,
        );
      const [row] = (await tx`UPDATE rill_groups SET deleted = true, assignment = '{}' WHERE name = ${group} RETURNING generation`) as unknown as Array<{
        generation: number;
      }>;
      if (row !== undefined) await tx`SELECT pg_notify('rill_groups', ${JSON.stringify({ group, generation: row.generation, by: this.nodeId })})`;
    });
  }

  /** Stops the heartbeat and says this node is gone: members it still had there count as gone at once. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    await Promise.all(this.touching);
    await this.sql`DELETE FROM rill_nodes WHERE node_id = ${this.nodeId}`.catch(() => {});
  }
}

function toMember(row: MemberRow): SharedMember {
  return { name: row.member, node: row.node_id, instanceId: row.instance_id, topics: row.topics, joinedAt: Number(row.joined_at) };
}

/**
 * `state` with the members taken over (by name) replaced by their successors, partitions included.
 * A successor keeps its predecessor's topics here: one that subscribes to others now differs from
 * the members decided, so the assignor runs (sticking to the partitions it has) rather than the
 * place simply changing hands.
 */
function succeeded(state: SharedGroupState, takenOver: ReadonlyMap<string, SharedMember>): SharedGroupState {
  const assignment: Record<string, TopicPartition[]> = {};
  for (const [name, partitions] of Object.entries(state.assignment)) assignment[takenOver.get(name)?.name ?? name] = partitions;
  const members = state.members.map((m) => {
    const successor = takenOver.get(m.name);
    return successor === undefined ? m : { ...successor, topics: m.topics };
  });
  return { ...state, members, assignment };
}

function toState(row: GroupRow, members: MemberRow[]): SharedGroupState {
  return {
    group: row.name,
    generation: row.generation,
    settings: row.settings,
    members: members.map(toMember),
    assignment: row.assignment,
    deleted: row.deleted,
  };
}

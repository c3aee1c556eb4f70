import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { resolveDataDir, type RillConfig } from '../config/index.js';
import {
  ANY_INCARNATION,
  type BrokerHealth,
  type TopicChange,
  type CallReply,
  type CallRequest,
  type LogStore,
  type PartitionAssignment,
  type PartitionSettings,
  type WorkerCall,
  type WorkerFailure,
  WorkerStoppedError,
} from '../broker/index.js';
import type { Logger } from '../logging/index.js';
import { CleaningPace, CleaningStopped, compressBatch, forEachRecord, readBatchInfo, setBaseOffset, stampBatch } from '../storage/index.js';
import { AppendNotices } from './append-notices.js';
import { BatchCleaner } from './batch-cleaner.js';
import { BatchTable, type PendingBatch } from './batch-table.js';
import { connect, cutConnections, isConnectionLost, isDiskFull, isTransient, postgresPatched, type Sql, StatementTimeoutError, within } from './connection.js';
import { checkDurability } from './durability-check.js';
import { AppendsHeldError, AppendTimeoutError, GroupCommit } from './group-commit.js';
import { GroupTable } from './group-table.js';
import { SharedReads } from './shared-reads.js';
import { Lease } from './lease.js';
import { NodeIdLock } from './node-id-lock.js';
import { OffsetTable } from './offset-table.js';
import { migrate } from './migrations.js';
import { TopicTable } from './topic-table.js';

/** How often a node that lost the database tries it again. */
const PROBE_INTERVAL_MS = 250;
/** The least time between two reconnections of the appends' connection for a session refusing writes (see append). */
const READ_ONLY_RECONNECT_MS = 1000;

/**
 * How long a node holds the lease of retention or compaction before it must renew it (it does every
 * third of it while the job runs): a node that died while holding one is replaced after at most this.
 */
const LEASE_MS = 60_000;
/** How long closing waits for the database's answers, all of them together (a compaction run's end, the last writes). */
const CLOSE_WAIT_MS = 5000;

/**
 * Cluster mode's store: every partition's batches in one PostgreSQL database that any number of
 * stateless Rill nodes share. A turn's batches are one SQL statement (one transaction), and a
 * batch is acknowledged only once its COMMIT returned; nodes hear of each other's appends and
 * topics through LISTEN/NOTIFY. The whole database is one placement unit ("worker" 0).
 */
export class PostgresLogStore implements LogStore {
  readonly kind = 'postgres';
  readonly workerCount = 1;
  readonly restarts = 0;
  private readonly partitions = new Map<number, PartitionAssignment>();
  private readonly byKey = new Map<string, number>();
  private readonly batches: BatchTable;
  private readonly groupCommit: GroupCommit;
  /** Consumer groups whose members are connected to different nodes (the coordinator's directory). */
  readonly groups: GroupTable;
  /** Committed offsets, group settings and delivery counts, one row per key (the coordinator's offset log). */
  readonly offsetTable: OffsetTable;
  private readonly appendedListeners = new Set<(partitionId: number, end: number) => void>();
  private readonly topicListeners = new Set<(change: TopicChange) => void>();
  private pending = 0;
  private closed = false;
  /** Why the database is unreachable, since the last request that failed for it (null: it answers). */
  private unreachable: string | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private compactionTimer: NodeJS.Timeout | null = null;
  /** The compaction run going, if any. */
  private compacting: Promise<void> | null = null;
  /** Whether a retention run is going (a slow one is not joined by the next). */
  private retaining = false;
  private readonly cleaner: BatchCleaner;
  /** Reads of the same new batches by this node's readers, made once. */
  private readonly sharedReads = new SharedReads();
  private readonly cleaningPace: CleaningPace;
  private probe: NodeJS.Timeout | null = null;
  /** When the connection was last lost (this node's clock). */
  private lostAt = 0;
  /** When the appends' connection was last made anew for refusing writes as read-only (performance.now()). */
  private readOnlyCutAt = Number.NEGATIVE_INFINITY;
  /** How many times it was lost (a probe answers only for the losses before it asked). */
  private losses = 0;
  /** Reads given up on whose statements have not settled (see `answered`). */
  private readsGivenUp = 0;
  private readonly restartedListeners = new Set<(worker: number) => void>();
  /** Who waits for the probe to find the database back (see `back`). */
  private backWaiters: Array<() => void> = [];
  private topicNotices: Promise<void> = Promise.resolve();

  private constructor(
    private readonly sql: Sql,
    /** The appends' own connection (see open). */
    private readonly appendSql: Sql,
    /** Whether its appends are notified to other nodes (not while it is alone). */
    private readonly appendNotices: AppendNotices,
    readonly topicStore: TopicTable,
    readonly nodeId: string,
    private readonly config: RillConfig,
    private readonly logger: Logger,
    /** This node's hold on its id (let go at close). */
    private readonly nodeLock: NodeIdLock,
  ) {
    this.batches = new BatchTable(sql);
    const { appendTimeoutMs } = config.storage.postgres;
    const appends = new BatchTable(appendSql, () => appendNotices.appendNotified());
    const givenUp = {
      cut: () => {
        const cut = cutConnections(appendSql);
        this.logger.warn(
          { connections: cut },
          'the database did not answer an append in time: its connection is cut, and appends wait until the database answers again',
        );
      },
      back: () => this.back(),
    };
    this.groupCommit = new GroupCommit(
      appends,
      appendTimeoutMs,
      (error) => {
        // A statement given up on failed late: when it was for the connection, what it did on the server is for the probe to wait out.
        if (isConnectionLost(error)) this.lostConnection(error);
        else this.logger.warn({ err: error }, 'an append given up on failed');
      },
      givenUp,
    );
    this.groups = new GroupTable(sql, nodeId, logger);
    this.groups.onPeers((update) => appendNotices.peers(update));
    this.offsetTable = new OffsetTable(sql);
    this.cleaner = new BatchCleaner(sql);
    this.cleaningPace = new CleaningPace(config.storage.compaction.bytesPerSecond);
  }

  /** Connects, migrates the schema (refusing a newer one), checks durability settings and loads the topics. */
  static async open(config: RillConfig, logger: Logger): Promise<PostgresLogStore> {
    const { url, maxConnections } = config.storage.postgres;
    const nodeId = config.storage.nodeId ?? defaultNodeId(config);
    if (!postgresPatched()) {
      logger.warn(
        'postgres.js is not patched (was npm install run with --ignore-scripts?): while there is no primary, each connection will retry the hosts in a tight loop, and after a lost connection the next one may stay stuck or on a standby, or the node stop on an uncaught error; run npx patch-package in the install directory',
      );
    }
    const sql = connect(url!, maxConnections, nodeId);
    // Appends go one statement at a time, all on one connection: one backend keeps the statement's
    // plan and its caches warm (spread over the pool's, each statement woke another process: about
    // 15 % more latency at the median and at p99 on a 2-core machine).
    const appendSql = connect(url!, 1, nodeId);
    const notices = new AppendNotices(appendSql, logger);
    let nodeLock: NodeIdLock | null = null;
    try {
      await migrate(sql, logger);
      nodeLock = await NodeIdLock.take(url!, nodeId, logger);
      await checkDurability(sql, logger);
      // Connected, and its array types known, before the first append's parameters are built.
      await appendSql`SELECT 1`;
      const topics = await TopicTable.open(sql, logger);
      const store = new PostgresLogStore(sql, appendSql, notices, topics, nodeId, config, logger, nodeLock);
      await store.listen();
      await store.groups.start();
      logger.info({ nodeId }, 'storage: PostgreSQL');
      return store;
    } catch (error) {
      await Promise.all([sql.end({ timeout: 1 }), appendSql.end({ timeout: 1 })]);
      await nodeLock?.close();
      throw error;
    }
  }

  private async listen(): Promise<void> {
    let listening = 0;
    await this.sql.listen(
      'rill_appended',
      (payload) => {
        let entries: Array<[string, number, number]>;
        try {
          entries = JSON.parse(payload) as Array<[string, number, number]>;
        } catch {
          return;
        }
        for (const [topic, partition, end] of entries) this.appended(topic, partition, end);
      },
      // Listening again after a lost connection: what was appended meanwhile was never notified.
      () => {
        if (listening++ > 0) this.resync('appended', () => this.resyncEnds());
      },
    );
    let listeningTopics = 0;
    await this.sql.listen(
      'rill_topics',
      (payload) => this.inOrder(() => this.topicChanged(payload)),
      () => {
        if (listeningTopics++ > 0) this.resync('topics', () => this.resyncTopics());
      },
    );
  }

  private appended(topic: string, partition: number, end: number): void {
    const id = this.byKey.get(`${topic}\u0000${partition}`);
    if (id === undefined) return;
    // Before the listeners: the reads they make must not be answered by one kept from before this end.
    this.sharedReads.heard(id, end);
    for (const listener of this.appendedListeners) listener(id, end);
  }

  /** Topic notices are handled one after another: two changes of one topic are never taken out of order. */
  private inOrder(task: () => Promise<void>): void {
    this.topicNotices = this.topicNotices.then(task).catch((error: unknown) => this.logger.warn({ err: error }, 'taking a topic change failed'));
  }

  private resync(what: string, task: () => Promise<void>): void {
    this.inOrder(task);
    this.logger.info({ what }, 'listening again after a lost connection: catching up');
  }

  /** Every partition's end as the database has it (the notices lost while not listening). */
  private async resyncEnds(): Promise<void> {
    const rows = (await this.sql`SELECT topic, partition, next_offset FROM rill_partitions`) as unknown as Array<{
      topic: string;
      partition: number;
      next_offset: number;
    }>;
    for (const row of rows) this.appended(row.topic, row.partition, row.next_offset);
  }

  /** Every topic as the database has it, and the deletions missed. */
  private async resyncTopics(): Promise<void> {
    // This node's own writes first: a topic it made and has not stored yet is no missed deletion.
    await this.topicStore.settled();
    const definitions = await this.topicStore.readAll();
    const present = new Set(definitions.map((definition) => definition.name));
    for (const definition of definitions) for (const listener of this.topicListeners) listener({ name: definition.name, definition });
    for (const topic of new Set([...this.partitions.values()].map((assignment) => assignment.topic))) {
      if (present.has(topic) || topic.startsWith('__')) continue;
      for (const listener of this.topicListeners) listener({ name: topic, deleted: true, createdAt: ANY_INCARNATION });
    }
  }

  /** A topic was made, changed or deleted (by any node): its listeners take it as the database has it now. */
  private async topicChanged(payload: string): Promise<void> {
    let notice: { name: string; deleted: boolean; createdAt: number; by?: string };
    try {
      notice = JSON.parse(payload) as typeof notice;
    } catch {
      return;
    }
    // This node's own change, applied here already: read back now, an echo could be older than a change made since.
    if (notice.by === `rill:${this.nodeId}`) return;
    let change: TopicChange;
    if (notice.deleted) change = { name: notice.name, deleted: true, createdAt: notice.createdAt };
    else {
      const definition = await this.topicStore.read(notice.name);
      // Deleted since: its own notice says so.
      if (definition === undefined) return;
      change = { name: notice.name, definition };
    }
    for (const listener of this.topicListeners) listener(change);
  }

  start(): void {
    const { checkIntervalMs } = this.config.storage.retention;
    this.retentionTimer = setInterval(() => void this.enforceRetention(), checkIntervalMs);
    this.retentionTimer.unref();
    this.compactionTimer = setInterval(() => this.compact(), this.config.storage.compaction.intervalMs);
    this.compactionTimer.unref();
  }

  open(_worker: number, partitions: PartitionAssignment[]): void {
    for (const assignment of partitions) {
      this.partitions.set(assignment.id, assignment);
      this.byKey.set(`${assignment.topic}\u0000${assignment.partition}`, assignment.id);
    }
  }

  configure(_worker: number, settings: PartitionSettings[]): void {
    for (const setting of settings) {
      const assignment = this.partitions.get(setting.id);
      if (assignment !== undefined) this.partitions.set(setting.id, { ...assignment, ...setting });
    }
  }

  forget(_worker: number, partitionIds: readonly number[]): void {
    for (const id of partitionIds) {
      const assignment = this.partitions.get(id);
      if (assignment === undefined) continue;
      this.partitions.delete(id);
      this.cleaner.forget(id);
      this.sharedReads.forget(id);
      this.byKey.delete(`${assignment.topic}\u0000${assignment.partition}`);
    }
  }

  isUp(): boolean {
    return !this.closed;
  }

  /** Tells `listener` of every partition's new end, whichever node appended (this one's too). */
  onAppended(listener: (partitionId: number, end: number) => void): void {
    this.appendedListeners.add(listener);
  }

  /** Tells `listener` of topics another node made, changed or deleted. */
  onTopicChanged(listener: (change: TopicChange) => void): void {
    this.topicListeners.add(listener);
  }

  /** The database answers again after a lost connection: what was in doubt meanwhile may be read back (the deduplicator does). */
  onRestarted(listener: (worker: number) => void): void {
    this.restartedListeners.add(listener);
  }

  /** Resolves once the probe finds the database back after a loss (at once when there is none, or on close). */
  private back(): Promise<void> {
    if (this.probe === null || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.backWaiters.push(resolve));
  }

  /**
   * A statement failed for want of the database: health says so, and a probe tells when it answers
   * again. Answering is not enough: when only this side lost the connection (a reset by a proxy, a
   * network fault), the server may still run the statement that was in doubt, and commit it after
   * a read-back missed it. So the probe also waits until no statement of this node that started
   * before the loss is still running on the server (a new primary has none).
   */
  private lostConnection(error: unknown): void {
    this.unreachable = (error as Error).message;
    this.lostAt = Date.now();
    this.losses++;
    if (this.probe !== null || this.closed) return;
    let probing = false;
    this.probe = setInterval(() => {
      // An append given up on may still commit: what was in doubt is read back only once it was answered.
      if (probing || this.groupCommit.holding) return;
      probing = true;
      const loss = this.losses;
      const lostAtSeconds = this.lostAt / 1000;
      // Unanswered for as long as a read may take, its connections are cut: they may lead to a
      // database gone without a word, and a new primary would wait many minutes for TCP to give up.
      // The loss is placed on the server's clock (this node's may be behind it), the time this
      // query takes to get there added.
      // Only a statement running can still commit. A session idle in a transaction, or waiting in
      // the middle of a statement for the rest of it (ClientRead), waits for what a connection cut
      // with a reset cannot bring (cutConnections): its work is rolled back when the server sees the
      // connection gone (its TCP keepalives, within about 25 s, see connect).
      const { readTimeoutMs } = this.config.storage.postgres;
      within(
        this.sql`
          SELECT count(*)::int AS running FROM pg_stat_activity
          WHERE application_name = ${`rill:${this.nodeId}`} AND pid <> pg_backend_pid() AND state NOT LIKE 'idle%' AND wait_event IS DISTINCT FROM 'ClientRead'
            AND query_start < to_timestamp(${lostAtSeconds}) + (clock_timestamp() - to_timestamp(${Date.now() / 1000}))`,
        readTimeoutMs,
        'whether it is back',
      ).then(
        (rows) => {
          probing = false;
          // Asked before a later loss, or before an append was given up on (it may have waited for a primary as this did): ask again.
          // Also while the reads given up on hold the pool: readers would be refused (the deduplicator's read-back among them).
          if ((rows[0]?.running as number) > 0 || this.groupCommit.holding || this.losses !== loss || this.readsHeldBack()) return;
          if (this.probe !== null) clearInterval(this.probe);
          this.probe = null;
          this.unreachable = null;
          this.logger.info('the database answers again');
          this.appendNotices.connectionBack();
          for (const resolve of this.backWaiters.splice(0)) resolve();
          for (const listener of this.restartedListeners) listener(0);
        },
        (error: unknown) => {
          probing = false;
          if (!(error instanceof StatementTimeoutError) || this.closed) return;
          const cut = cutConnections(this.sql);
          this.logger.warn({ connections: cut }, 'the database did not answer the probe in time: the connections are cut, and made anew');
        },
      );
    }, PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  async call<K extends WorkerCall>(_worker: number, type: K, request: CallRequest<K>): Promise<CallReply<K>> {
    if (this.closed) throw new WorkerStoppedError('the broker is shutting down');
    this.pending++;
    try {
      // A topic made or grown here is in the database before anything reads or appends to it.
      await this.topicStore.settled();
      switch (type) {
        case 'append':
          return (await this.append(request as CallRequest<'append'>)) as CallReply<K>;
        case 'read':
          return (await this.read(request as CallRequest<'read'>)) as CallReply<K>;
        case 'offsets':
          return (await this.offsets(request as CallRequest<'offsets'>)) as CallReply<K>;
        case 'drop':
          this.forget(0, (request as CallRequest<'drop'>).partitionIds);
          return {} as CallReply<K>;
        default:
          return {} as CallReply<K>;
      }
    } finally {
      this.pending--;
    }
  }

  private async append({ partitionIds, batches }: CallRequest<'append'>): Promise<CallReply<'append'>> {
    const baseOffsets = batches.map(() => -1);
    const failures: Array<WorkerFailure | null> = batches.map(() => null);
    const buffers = batches.length === 0 ? [] : [batches[0]!.buffer as ArrayBuffer];
    const pending: PendingBatch[] = [];
    const index: number[] = [];
    const stored: Buffer[] = [];
    let position = 0;
    for (let i = 0; i < batches.length; i++) {
      const assignment = this.partitions.get(partitionIds[i]!);
      if (assignment === undefined) {
        failures[i] = { code: 'unknown-partition', message: `partition ${partitionIds[i]} is not open` };
        continue;
      }
      const bytes = batches[i]!;
      const batch = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const kept = compressBatch(batch, assignment.compression);
      // Sealed with its CRC32C here; its offset is its row's, written into it as it is read.
      stampBatch(kept, 0);
      const info = readBatchInfo(kept);
      pending.push({
        topic: assignment.topic,
        partition: assignment.partition,
        span: info.nextOffset - info.baseOffset,
        maxTimestamp: info.maxTimestamp,
        position,
        size: kept.length,
      });
      stored.push(kept);
      index.push(i);
      position += kept.length;
    }
    if (pending.length === 0) return { baseOffsets, failures, buffers };
    let offsets: number[];
    try {
      offsets = await this.groupCommit.submit(pending, stored, position);
      this.unreachable = null;
    } catch (error) {
      if (error instanceof AppendsHeldError) {
        const failure: WorkerFailure = { code: 'unavailable', message: error.message };
        for (const i of index) failures[i] = failure;
        return { baseOffsets, failures, buffers };
      }
      if (error instanceof AppendTimeoutError || isConnectionLost(error)) {
        this.lostConnection(error);
        // It may have committed before the connection broke: the client must hear "unknown", never a refusal.
        throw new WorkerStoppedError(
          error instanceof AppendTimeoutError
            ? `${error.message}; it may have been stored`
            : `the database connection was lost during an append (${(error as Error).message}); it may have been stored`,
        );
      }
      const failure: WorkerFailure = isDiskFull(error)
        ? { code: 'disk-full', message: `the database is out of disk space: ${(error as Error).message}` }
        : isTransient(error)
          ? { code: 'unavailable', message: `the database refused the write for now (${(error as Error).message}): nothing was written; retry` }
          : { code: 'storage-error', message: `database error: ${(error as Error).message}` };
      if (failure.code === 'storage-error') this.logger.error({ err: error }, 'append failed');
      if ((error as { code?: string }).code === '25006') {
        // A session refusing writes stays so (on a standby, or in a database made read-only for its
        // new sessions): the appends' connection is made anew, at most once a second, and a
        // multi-host URL's target_session_attrs then finds the primary. Health says so until the probe answers.
        if (performance.now() - this.readOnlyCutAt >= READ_ONLY_RECONNECT_MS) {
          this.readOnlyCutAt = performance.now();
          const cut = cutConnections(this.appendSql);
          this.logger.warn({ connections: cut, err: error }, 'the database refused an append as read-only: its connection is made anew');
        }
        this.lostConnection(error);
      }
      for (const i of index) failures[i] = failure;
      return { baseOffsets, failures, buffers };
    }
    for (let k = 0; k < index.length; k++) {
      const i = index[k]!;
      const base = offsets[k]!;
      if (base < 0) {
        failures[i] = { code: 'unknown-partition', message: `partition ${partitionIds[i]} is not in the database (its topic was deleted?)` };
        continue;
      }
      baseOffsets[i] = base;
      this.sharedReads.heard(partitionIds[i]!, base + pending[k]!.span);
      // The batch handed in goes, as it is, to this node's readers waiting for it.
      const bytes = batches[i]!;
      setBaseOffset(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), base);
    }
    return { baseOffsets, failures, buffers };
  }

  private async read({ partitionId, offset, maxBytes }: CallRequest<'read'>): Promise<CallReply<'read'>> {
    const assignment = this.partitions.get(partitionId);
    if (assignment === undefined)
      return { data: null, logStartOffset: 0, logEndOffset: 0, failure: { code: 'unknown-partition', message: `partition ${partitionId} is not open` } };
    try {
      // By partition id: a topic made again under the same name has new ones, so nothing of the old one answers for it.
      const result = await this.sharedReads.read(partitionId, offset, maxBytes, async () => {
        const loaded = await this.answered(() => this.batches.read(assignment, offset, maxBytes), 'a read');
        this.unreachable = null;
        return loaded;
      });
      if (offset < result.logStartOffset && result.data === null) {
        return { ...result, failure: { code: 'offset-out-of-range', message: `offset ${offset} is before the log start ${result.logStartOffset}` } };
      }
      return result;
    } catch (error) {
      return { data: null, logStartOffset: 0, logEndOffset: 0, failure: this.failureOf(error) };
    }
  }

  private async offsets({ partitionId, timestamp, appendedSince }: CallRequest<'offsets'>): Promise<CallReply<'offsets'>> {
    const assignment = this.partitions.get(partitionId);
    if (assignment === undefined)
      return { logStartOffset: 0, logEndOffset: 0, failure: { code: 'unknown-partition', message: `partition ${partitionId} is not open` } };
    try {
      return await this.answered(() => this.offsetsOf(assignment, timestamp, appendedSince), 'a request for offsets');
    } catch (error) {
      return { logStartOffset: 0, logEndOffset: 0, failure: this.failureOf(error) };
    }
  }

  /**
   * What `read` gets from the database, within readTimeoutMs. A read given up on still runs (see
   * `within`) and holds a connection of the pool: while as many as the pool has wait, a new read is
   * refused at once, so that readers retrying against a database that does not answer do not pile
   * up more.
   */
  private async answered<T>(read: () => Promise<T>, what: string): Promise<T> {
    const { readTimeoutMs } = this.config.storage.postgres;
    if (this.readsHeldBack()) {
      // Readers are told when to read again by the probe, which waits for these reads to end.
      const error = new WorkerStoppedError(`the database did not answer ${what}: ${this.readsGivenUp} reads given up on still wait for it; read again`);
      this.lostConnection(error);
      throw error;
    }
    const query = read();
    try {
      return await within(query, readTimeoutMs, what);
    } catch (error) {
      if (error instanceof StatementTimeoutError) {
        this.readsGivenUp++;
        const settled = () => {
          this.readsGivenUp--;
        };
        query.then(settled, settled);
      }
      throw error;
    }
  }

  /** Whether as many reads given up on still wait as the pool has connections (new reads are refused). */
  private readsHeldBack(): boolean {
    return this.readsGivenUp >= this.config.storage.postgres.maxConnections;
  }

  private async offsetsOf(assignment: PartitionAssignment, timestamp: number | undefined, appendedSince: number | undefined): Promise<CallReply<'offsets'>> {
    const bounds = await this.batches.bounds(assignment);
    this.unreachable = null;
    if (bounds === null)
      return { logStartOffset: 0, logEndOffset: 0, failure: { code: 'unknown-partition', message: `partition ${assignment.id} is not in the database` } };
    const { logStartOffset, logEndOffset } = bounds;
    const reply: CallReply<'offsets'> = { logStartOffset, logEndOffset, sizeBytes: bounds.sizeBytes, segments: bounds.batches };
    if (appendedSince !== undefined) {
      const first = await this.batches.firstAppendedSince(assignment, appendedSince);
      reply.appendedSinceOffset = Math.min(first ?? logEndOffset, logEndOffset);
    }
    if (timestamp !== undefined) {
      const found = await this.batches.batchAtTimestamp(assignment, timestamp);
      let offset = logEndOffset;
      if (found !== null) {
        // The first record of that batch at or after the timestamp (Kafka's offsetsForTimes).
        offset = forEachRecord(found.data, found.baseOffset, (record) => record.timestamp < timestamp);
      }
      reply.offsetForTimestamp = Math.min(offset, logEndOffset);
    }
    return reply;
  }

  /**
   * A read's failure. A lost connection is thrown as WorkerStoppedError, as a broker worker's death
   * is: whoever reads for the deduplicator's messageIDs in doubt then keeps them in doubt and reads
   * again once the database answers, never taking an unanswered read for "not stored".
   */
  private failureOf(error: unknown): WorkerFailure {
    if (error instanceof WorkerStoppedError) throw error;
    // No answer in time (no primary, or one that stopped answering): as for a lost connection, the
    // probe tells the readers (the deduplicator's read-back among them) when to read again.
    if (error instanceof StatementTimeoutError) {
      this.lostConnection(error);
      throw new WorkerStoppedError(`${error.message}; read again`);
    }
    if (isConnectionLost(error)) {
      this.lostConnection(error);
      throw new WorkerStoppedError(`the database connection was lost during a read (${(error as Error).message}); read again once it is back`);
    }
    return { code: 'storage-error', message: `database error: ${(error as Error).message}` };
  }

  /** Retention, on one node at a time: whichever holds its lease runs it over every partition it knows (one run at a time on this node). */
  private async enforceRetention(): Promise<void> {
    if (this.closed || this.retaining) return;
    this.retaining = true;
    await this.onOneNode('retention', async (stillHeld) => {
      const now = Date.now();
      for (const assignment of [...this.partitions.values()]) {
        if (this.closed || !(await stillHeld())) break;
        const { retentionMs, retentionBytes, cleanupPolicy } = assignment;
        if (cleanupPolicy === 'compact' || (retentionMs < 0 && retentionBytes < 0)) continue;
        const deleted = await this.batches.deleteOldest(assignment, retentionMs < 0 ? -1 : now - retentionMs, retentionBytes);
        if (deleted > 0) this.logger.info({ topic: assignment.topic, partition: assignment.partition, deleted }, 'retention deleted batches');
      }
    }).finally(() => {
      this.retaining = false;
    });
  }

  /** Log compaction of the compacted topics' partitions, unless a run is still going. */
  private compact(): void {
    if (this.compacting !== null || this.closed) return;
    // Nothing to do (and no statement) without a compacted topic.
    if (![...this.partitions.values()].some((assignment) => assignment.cleanupPolicy === 'compact')) return;
    this.compacting = this.onOneNode('compaction', (stillHeld) => this.compactAll(stillHeld)).finally(() => {
      this.compacting = null;
    });
  }

  /** One compaction run (on the node holding the lease): every compacted partition this node knows, one after the other. */
  private async compactAll(stillHeld: () => Promise<boolean>): Promise<void> {
    const { tombstoneRetentionMs, maxKeysPerRun: maxKeys } = this.config.storage.compaction;
    for (const [id, assignment] of [...this.partitions]) {
      if (this.closed) return;
      if (assignment.cleanupPolicy !== 'compact') continue;
      if (!(await stillHeld())) return;
      const { topic, partition, compression } = assignment;
      try {
        const report = await this.cleaner.clean(id, assignment, Date.now(), {
          tombstoneRetentionMs,
          minCompactionLagMs: assignment.minCompactionLagMs ?? 0,
          maxKeys,
          compression,
          pace: (bytes) => this.cleaningPace.pace(bytes),
        });
        if (report !== null && report.rowsBefore > 0) this.logger.info({ topic, partition, ...report }, 'log compacted');
      } catch (error) {
        if (error instanceof CleaningStopped) return;
        // A topic deleted meanwhile, a lost connection: tried again at the next run.
        if (!this.closed) this.logger.warn({ err: error, topic, partition }, 'log compaction failed');
      }
    }
  }

  /**
   * Runs `work` if this node takes the job's lease (see Lease), so that one node at a time does it
   * (the others skip it this time); `work` renews it as it goes (`stillHeld`: false once another
   * node has it). A failure is logged, and the work runs again at the next interval.
   */
  private async onOneNode(job: 'retention' | 'compaction', work: (stillHeld: () => Promise<boolean>) => Promise<void>): Promise<void> {
    try {
      await new Lease(this.sql, job, this.nodeId, LEASE_MS).run(work);
    } catch (error) {
      if (!this.closed) this.logger.warn({ err: error }, `${job === 'retention' ? 'retention' : 'log compaction'} failed; it runs again at the next interval`);
    }
  }

  pendingRequests(): number {
    return this.pending;
  }

  /** Reads that went to the database, however many readers shared each (diagnostics and tests). */
  get databaseReads(): number {
    return this.sharedReads.loads;
  }

  async killWorker(): Promise<void> {
    throw new Error('the PostgreSQL store has no broker workers to kill');
  }

  health(): BrokerHealth {
    const reason = this.unreachable !== null ? `database unreachable: ${this.unreachable}` : this.nodeLock.conflict;
    if (reason === null) return { status: 'ok' };
    return { status: 'unhealthy', workers: [{ worker: 0, status: 'down', reason, restarts: 0, backoffMs: 0 }] };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Every wait on the database shares one budget of CLOSE_WAIT_MS: one that is gone (killed,
    // failed over, cut off without a reset) must not hold the shutdown, nor each wait add its own.
    const deadline = performance.now() + CLOSE_WAIT_MS;
    if (this.retentionTimer !== null) clearInterval(this.retentionTimer);
    if (this.compactionTimer !== null) clearInterval(this.compactionTimer);
    this.cleaningPace.stop();
    // The run ends at its next pace; a statement of it that the database never answers is not waited for.
    if (this.compacting !== null) await boundedWait(this.compacting, deadline);
    if (this.probe !== null) clearInterval(this.probe);
    for (const resolve of this.backWaiters.splice(0)) resolve();
    this.topicStore.close();
    this.appendNotices.close();
    await boundedWait(this.topicStore.settled(), deadline);
    await boundedWait(this.groups.close(), deadline);
    // Commits made as the node stopped (the last acknowledgments') may wait behind one of their key's.
    await boundedWait(this.offsetTable.settled(), deadline);
    // The id is let go last: a node restarted under it must not find it free while this one's statements still run.
    const seconds = Math.max(0.1, (deadline - performance.now()) / 1000);
    await Promise.all([this.sql.end({ timeout: seconds }), this.appendSql.end({ timeout: seconds })]);
    await this.nodeLock.close();
  }
}

/**
 * A node's name when none is configured: its host and data directory, so that a node restarted
 * in place keeps its name (it completes its own transactions after a crash) and two nodes on one
 * machine differ.
 */
function defaultNodeId(config: RillConfig): string {
  const host =
    os
      .hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 48) || 'node';
  return `${host}-${createHash('sha256').update(resolveDataDir(config)).digest('hex').slice(0, 8)}`;
}

/** Waits for `work` (its failure is the caller's no longer), until `deadline` (performance.now()) at most. */
async function boundedWait(work: Promise<unknown>, deadline: number): Promise<void> {
  const left = deadline - performance.now();
  if (left <= 0) return;
  await Promise.race([work.catch(() => {}), sleep(left, undefined, { ref: false })]);
}

import type { TopicDefinition } from '../storage/index.js';
import type { BrokerHealth } from './front/worker-supervisor.js';
import type { CallReply, CallRequest, PartitionAssignment, PartitionSettings, WorkerCall } from './protocol.js';

export type { BrokerHealth } from './front/worker-supervisor.js';

/**
 * Where topics are defined: `topic.json` files in the data directory (embedded), or a table
 * (PostgreSQL). Writes return at once; a store whose writes are asynchronous orders them before
 * the appends that follow.
 */
export interface TopicStore {
  /** Every topic, oldest first (at start-up). */
  load(): TopicDefinition[];
  /** Creates or replaces a topic's definition (partitions, settings). */
  save(definition: TopicDefinition): void;
  /** Removes a topic and its data; the definition is gone before this resolves. */
  remove(name: string): Promise<void>;
  /** Where a partition's log lives, for the stores that keep one per directory. */
  partitionDirectory(topic: string, partition: number): string;
}

/** A deletion found by reading every topic again (no notice named the incarnation): whichever this node has is gone. */
export const ANY_INCARNATION = -1;

/** A topic as another node of a cluster left it: its definition, or that it was deleted (the incarnation created at `createdAt`, or ANY_INCARNATION). */
export type TopicChange = { name: string; definition: TopicDefinition } | { name: string; deleted: true; createdAt: number };

/**
 * The storage backend behind the broker's front: it stores and serves partitions' record
 * batches, whatever keeps them. The front batches what is published in one event-loop turn and
 * makes one `append` call per placement unit ("worker": a broker worker thread for the embedded
 * store, the whole database for PostgreSQL); everything above the front (gateway, coordinator,
 * transactions, CLI) sees only the Broker and never knows which store runs. The calls and their
 * failures are the broker workers' contract (protocol.ts): a store that cannot tell whether an
 * append was stored rejects with WorkerStoppedError, one that refused it answers with a failure.
 */
export interface LogStore {
  readonly kind: 'embedded' | 'postgres';
  readonly topicStore: TopicStore;
  /** This node's name, for a store that several nodes share. */
  readonly nodeId?: string;
  /** Placement units: partitions are spread over `0 .. workerCount - 1`. */
  readonly workerCount: number;
  /** Placement units that died and were restarted since the start (0 for a store without threads). */
  readonly restarts: number;
  start(): void;
  /** Hands partitions to a placement unit (reopened after any restart). */
  open(worker: number, partitions: PartitionAssignment[]): void;
  /** A topic's storage settings changed. */
  configure(worker: number, settings: PartitionSettings[]): void;
  /** Partitions of a deleted topic: never reopened. */
  forget(worker: number, partitionIds: readonly number[]): void;
  isUp(worker: number): boolean;
  call<K extends WorkerCall>(worker: number, type: K, request: CallRequest<K>, transfer?: ArrayBuffer[]): Promise<CallReply<K>>;
  /** Requests in flight (diagnostics and tests). */
  pendingRequests(worker: number): number;
  /** A store in a database: the reads that went to it (diagnostics and tests). */
  readonly databaseReads?: number;
  /** Ends a placement unit at once, as a crash would (tests). */
  killWorker(worker: number): Promise<void>;
  health(): BrokerHealth;
  /** Calls `listener` when a placement unit restarted and reopened its partitions. */
  onRestarted(listener: (worker: number) => void): void;
  /** A store shared by several nodes: tells of partitions' new ends, whichever node appended. */
  onAppended?(listener: (partitionId: number, end: number) => void): void;
  /** A store shared by several nodes: tells of topics another node made, changed or deleted. */
  onTopicChanged?(listener: (change: TopicChange) => void): void;
  close(): Promise<void>;
}

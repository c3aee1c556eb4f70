import type { StorageConfig } from '../config/index.js';
import type { CompressionCodec } from '../storage/index.js';

/*
 * The one contract between the gateway thread (broker/front) and the broker workers
 * (broker/worker): every request a worker answers, with its payload and its reply, in one typed
 * map. Payloads are Uint8Arrays whose ArrayBuffers are transferred, never copied; one append
 * carries the batches of every partition the worker owns that had data in one event-loop turn.
 * Failures cross the thread boundary as a code, never as free text to be parsed.
 */

export interface WorkerInit {
  workerIndex: number;
  storage: StorageConfig;
  logLevel: string;
}

export interface PartitionAssignment {
  /** Global partition id, the index the front uses for this partition. */
  id: number;
  topic: string;
  partition: number;
  directory: string;
  /** How the worker compresses the batches it stores in this partition. */
  compression: CompressionCodec;
  /** The topic's retention: closed segments older than this go (-1: kept forever). */
  retentionMs: number;
  /** The topic's retention: oldest segments go while the partition is larger than this (-1: no limit). */
  retentionBytes: number;
  /** `compact`: the log cleaner keeps each key's latest record, and retention deletes nothing. */
  cleanupPolicy: 'delete' | 'compact';
  /** A segment size of the partition's own, under `storage.segmentBytes` (the committed offsets' log rolls sooner, to be compacted). */
  segmentBytes?: number;
  /** Segments appended to more recently than this are not compacted (the topic's deduplication window, which is read back from the log). */
  minCompactionLagMs?: number;
}

/** What a topic's configuration changes in its partitions' storage (sent to their worker, no reply). */
export type PartitionSettings = Pick<PartitionAssignment, 'id' | 'compression' | 'retentionMs' | 'retentionBytes' | 'cleanupPolicy' | 'minCompactionLagMs'>;

/** `unavailable`: refused, nothing written, for a reason that passes (a database that is not the primary now). */
export type WorkerFailureCode = 'unknown-partition' | 'offset-out-of-range' | 'storage-error' | 'disk-full' | 'unavailable';

export interface WorkerFailure {
  code: WorkerFailureCode;
  message: string;
}

export interface PartitionOffsets {
  logStartOffset: number;
  /** The end readers may see: the durable end under the fsync policy, the written end otherwise. */
  logEndOffset: number;
  /** With a timestamp: the first offset at or after it. */
  offsetForTimestamp?: number;
  /** With `appendedSince`: an offset at or before every record the broker appended since then. */
  appendedSinceOffset?: number;
  /** Bytes of the partition's segments. */
  sizeBytes?: number;
  /** Segment files of the partition. */
  segments?: number;
}

/** Every request a worker answers: what the front sends, what comes back. */
export interface WorkerCalls {
  append: {
    request: { partitionIds: number[]; batches: Uint8Array[] };
    reply: {
      /** Per batch: its base offset, or -1 with a failure at the same index. */
      baseOffsets: number[];
      failures: Array<WorkerFailure | null>;
      /** The batches' memory, handed back once written so the front can build in it again. */
      buffers: ArrayBuffer[];
      /** How long the journal's fdatasync that made them durable took (on the first answer of each group commit only). */
      syncMs?: number;
    };
  };
  read: {
    request: { partitionId: number; offset: number; maxBytes: number };
    reply: PartitionOffsets & { data: Uint8Array | null; failure?: WorkerFailure };
  };
  offsets: {
    request: { partitionId: number; timestamp?: number; appendedSince?: number };
    reply: PartitionOffsets & { failure?: WorkerFailure };
  };
  /** Partitions of a deleted topic: closed, and their journal records never replayed; the front removes the files. */
  drop: {
    request: { partitionIds: number[] };
    reply: { failure?: WorkerFailure };
  };
  close: {
    request: object;
    reply: object;
  };
}

export type WorkerCall = keyof WorkerCalls;
export type CallRequest<K extends WorkerCall> = WorkerCalls[K]['request'];
export type CallReply<K extends WorkerCall> = WorkerCalls[K]['reply'];

/** A request on the wire: its kind, the id its reply carries back, and its payload. */
export type RequestMessage<K extends WorkerCall = WorkerCall> = { [C in K]: { type: C; requestId: number } & CallRequest<C> }[K];
export type ReplyMessage<K extends WorkerCall = WorkerCall> = { [C in K]: { type: C; requestId: number } & CallReply<C> }[K];

/** What the front posts to a worker: partitions to own or their settings (no reply), or a request. */
export type ToWorker = { type: 'open'; partitions: PartitionAssignment[] } | { type: 'configure'; partitions: PartitionSettings[] } | RequestMessage;

/** What a worker posts back: a reply, or a fatal error it could not attribute to a request. */
export type FromWorker = ReplyMessage | { type: 'fatal'; message: string };

import type { StorageConfig } from '../config/index.js';

/*
 * The messages between the gateway thread and the broker workers. Payloads are Uint8Arrays
 * whose ArrayBuffers are transferred, never copied; one append message carries the batches of
 * every partition the worker owns that had data in one event-loop turn.
 */

export interface WorkerInit {
  workerIndex: number;
  storage: StorageConfig;
  logLevel: string;
}

export interface PartitionAssignment {
  id: number;
  topic: string;
  partition: number;
  directory: string;
}

export type ToWorker =
  | { type: 'open'; partitions: PartitionAssignment[] }
  | { type: 'append'; requestId: number; partitionIds: number[]; batches: Uint8Array[] }
  | { type: 'read'; requestId: number; partitionId: number; offset: number; maxBytes: number }
  | { type: 'offsets'; requestId: number; partitionId: number; timestamp?: number }
  | { type: 'close'; requestId: number };

export interface PartitionOffsets {
  logStartOffset: number;
  /** The end readers may see: the durable end under the fsync policy, the written end otherwise. */
  logEndOffset: number;
  /** With a timestamp: the first offset at or after it. */
  offsetForTimestamp?: number;
}

export type FromWorker =
  | {
      type: 'appended';
      requestId: number;
      baseOffsets: number[];
      errors: Array<string | null>;
      /** The batches' memory, handed back once written so the gateway can build in it again. */
      buffers: ArrayBuffer[];
    }
  | {
      type: 'read-result';
      requestId: number;
      data: Uint8Array | null;
      logStartOffset: number;
      logEndOffset: number;
      error?: 'offset-out-of-range' | 'unknown-partition' | string;
    }
  | ({ type: 'offsets-result'; requestId: number; error?: string } & PartitionOffsets)
  | { type: 'closed'; requestId: number }
  | { type: 'fatal'; message: string };

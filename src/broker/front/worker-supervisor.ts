import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { RillError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type { CallReply, CallRequest, FromWorker, PartitionAssignment, ReplyMessage, ToWorker, WorkerCall, WorkerInit } from '../protocol.js';

interface Pending {
  resolve: (reply: ReplyMessage) => void;
  reject: (error: Error) => void;
}

interface WorkerSlot {
  index: number;
  worker: Worker;
  pending: Map<number, Pending>;
  restarts: number;
  stopping: boolean;
}

/** The worker's entry: the built file, or the TypeScript source through tsx when running from source. */
function workerEntry(): { url: URL; workerData: (init: WorkerInit) => object } {
  if (import.meta.url.endsWith('.ts')) {
    const entry = new URL('../worker/main.ts', import.meta.url).href;
    return {
      url: new URL('../worker/dev-worker-loader.mjs', import.meta.url),
      workerData: (init) => ({ ...init, entry }),
    };
  }
  return { url: new URL('../worker/main.js', import.meta.url), workerData: (init) => init };
}

/**
 * Starts the broker workers and keeps them running: a worker that dies is restarted and reopens
 * its partitions from disk, and every request that was in flight to it fails with a retriable
 * `unavailable` error (never a silent drop, never an acknowledgment for data that was not stored).
 */
export class WorkerSupervisor extends EventEmitter {
  private readonly slots: WorkerSlot[] = [];
  private readonly assignments: PartitionAssignment[][];
  private nextRequestId = 1;
  private closed = false;

  constructor(
    private readonly init: Omit<WorkerInit, 'workerIndex'>,
    readonly workerCount: number,
    private readonly logger: Logger,
  ) {
    super();
    this.assignments = Array.from({ length: workerCount }, () => []);
  }

  start(): void {
    for (let index = 0; index < this.workerCount; index++) {
      this.slots.push(this.spawn(index, 0));
    }
  }

  /** Hands partitions to a worker; they are reopened after any restart. */
  open(workerIndex: number, partitions: PartitionAssignment[]): void {
    this.assignments[workerIndex]!.push(...partitions);
    this.slot(workerIndex).worker.postMessage({ type: 'open', partitions } satisfies ToWorker);
  }

  /** Sends one request of the worker protocol and resolves with its reply. */
  call<K extends WorkerCall>(workerIndex: number, type: K, request: CallRequest<K>, transfer: ArrayBuffer[] = []): Promise<CallReply<K>> {
    if (this.closed) return Promise.reject(new RillError('unavailable', 'the broker is shutting down'));
    const slot = this.slot(workerIndex);
    const requestId = this.nextRequestId++;
    return new Promise<CallReply<K>>((resolve, reject) => {
      // The worker answers a request with a reply of the same type and id (see worker/main.ts).
      slot.pending.set(requestId, { resolve: resolve as (reply: ReplyMessage) => void, reject });
      slot.worker.postMessage({ ...request, type, requestId } as ToWorker, transfer);
    });
  }

  /** Requests sent to a worker and not yet answered. */
  pendingRequests(workerIndex: number): number {
    return this.slot(workerIndex).pending.size;
  }

  /** Ends a worker abruptly, as a crash would (used by tests and chaos drills). */
  async killWorker(workerIndex: number): Promise<void> {
    await this.slot(workerIndex).worker.terminate();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const closing = this.slots.map((slot) => {
      slot.stopping = true;
      return this.call(slot.index, 'close', {})
        .catch(() => undefined)
        .then(() => slot.worker.terminate());
    });
    this.closed = true;
    await Promise.all(closing);
  }

  private slot(index: number): WorkerSlot {
    const slot = this.slots[index];
    if (slot === undefined) throw new RangeError(`no broker worker ${index}`);
    return slot;
  }

  private spawn(index: number, restarts: number): WorkerSlot {
    const entry = workerEntry();
    const init: WorkerInit = { ...this.init, workerIndex: index };
    const worker = new Worker(entry.url, {
      workerData: entry.workerData(init),
      name: `rill-broker-${index}`,
      // A worker makes little JS garbage (its data lives in transferred buffers): a small young
      // generation keeps each thread's resident memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    const slot: WorkerSlot = { index, worker, pending: new Map(), restarts, stopping: false };
    const owned = this.assignments[index] ?? [];
    if (owned.length > 0) worker.postMessage({ type: 'open', partitions: owned } satisfies ToWorker);
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'fatal') {
        this.logger.error({ worker: index, message: message.message }, 'broker worker reported a fatal error');
        return;
      }
      const pending = slot.pending.get(message.requestId);
      if (pending === undefined) return;
      slot.pending.delete(message.requestId);
      pending.resolve(message);
    });
    worker.on('error', (error) => {
      this.logger.error({ worker: index, err: error }, 'broker worker crashed');
    });
    worker.on('exit', (code) => this.onExit(slot, code));
    return slot;
  }

  private onExit(slot: WorkerSlot, code: number): void {
    const failure = new RillError('unavailable', `broker worker ${slot.index} stopped before answering; retry`);
    for (const pending of slot.pending.values()) pending.reject(failure);
    slot.pending.clear();
    if (slot.stopping || this.closed) return;
    this.logger.warn({ worker: slot.index, exitCode: code, restarts: slot.restarts + 1 }, 'broker worker restarted');
    // Requests posted to the replacement queue behind its 'open' and are served once it has
    // recovered its partitions from disk.
    this.slots[slot.index] = this.spawn(slot.index, slot.restarts + 1);
    this.emit('worker-restarted', slot.index);
  }
}

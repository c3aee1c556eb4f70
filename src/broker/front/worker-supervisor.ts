import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { RillError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type {
  CallReply,
  CallRequest,
  FromWorker,
  PartitionAssignment,
  PartitionSettings,
  ReplyMessage,
  ToWorker,
  WorkerCall,
  WorkerInit,
} from '../protocol.js';
import { RestartBackoff } from './restart-backoff.js';

interface Pending {
  resolve: (reply: ReplyMessage) => void;
  reject: (error: Error) => void;
}

/**
 * - `starting`: started with the broker, opening its partitions (requests wait behind the opening);
 * - `up`: it answered after opening its partitions;
 * - `down`: it died; it is restarted after its backoff, and requests fail at once meanwhile;
 * - `restarting`: started again, reopening its partitions (requests wait behind the reopening);
 * - `stopping`: the broker is closing.
 */
type WorkerState = 'starting' | 'up' | 'down' | 'restarting' | 'stopping';

interface WorkerSlot {
  readonly index: number;
  /** The running thread; null while down. */
  worker: Worker | null;
  state: WorkerState;
  /** Requests sent to the running thread and not yet answered. */
  pending: Map<number, Pending>;
  /** The id of the request that tells when the running thread has opened its partitions. */
  probeId: number;
  readonly backoff: RestartBackoff;
  /** Why the worker last died. */
  lastFailure: string;
  /** What the running thread said went wrong (a `fatal` message or an uncaught error), if anything. */
  reported: string | null;
  /** Ended on purpose by killWorker. */
  killed: boolean;
  restartAt: number;
  restartTimer: NodeJS.Timeout | null;
}

/**
 * A request a worker took and never answered because it stopped: unlike a refusal, its outcome is
 * unknown (an append may have been written before the worker died, and be read after its restart).
 */
export class WorkerStoppedError extends RillError {
  constructor(message: string) {
    super('unavailable', message);
  }
}

/** A request refused at once because its worker is down (restarting after its backoff): nothing was done. */
export class WorkerDownError extends RillError {
  constructor(message: string) {
    super('unavailable', message);
  }
}

/** The `brokers` settings the supervisor follows. */
export interface BrokerWorkerSettings {
  workers: number;
  /** Defaults: 100 ms and 30 s. */
  restartBackoffMs?: number;
  restartBackoffMaxMs?: number;
}

/** One worker that is not serving, for GET /health. */
export interface WorkerHealth {
  worker: number;
  /** `down`: dead, waiting for its restart; `restarting`: reopening its partitions; `crash-looping`: up, after restarting again and again. */
  status: 'down' | 'restarting' | 'crash-looping';
  /** Why it died last. */
  reason: string;
  /** Restarts in a row (the pending one included). */
  restarts: number;
  /** The wait before its last (or pending) restart. */
  backoffMs: number;
  /** While down: how long until it is restarted. */
  restartInMs?: number;
}

/** `ok` when every worker is up and none is crash-looping; otherwise the workers that are not serving. */
export type BrokerHealth = { status: 'ok' } | { status: 'unhealthy'; workers: WorkerHealth[] };

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
 * A request every worker answers once it has handled the messages before it: a partition id no
 * worker owns. Its answer after an `open` says that the worker has opened those partitions.
 */
const READY_PROBE = { partitionId: -1 };

/**
 * Starts the broker workers and keeps them running: a worker that dies is restarted after a
 * backoff (brokers.restartBackoffMs, doubling with each restart in a row up to
 * brokers.restartBackoffMaxMs) and reopens its partitions from disk. Every request that was in
 * flight to it fails with a retriable `unavailable` error (never a silent drop, never an
 * acknowledgment for data that was not stored), and so does every request made while it is down.
 * `health()` names the workers that are down, reopening their partitions, or crash-looping.
 */
export class WorkerSupervisor extends EventEmitter {
  /** Workers that died and were (or are to be) restarted, since the start. */
  restarts = 0;
  readonly workerCount: number;
  private readonly slots: WorkerSlot[] = [];
  private assignments: PartitionAssignment[][];
  private readonly restart: { restartBackoffMs: number; restartBackoffMaxMs: number };
  private nextRequestId = 1;
  private closed = false;

  constructor(
    private readonly init: Omit<WorkerInit, 'workerIndex'>,
    settings: BrokerWorkerSettings,
    private readonly logger: Logger,
  ) {
    super();
    this.workerCount = settings.workers;
    this.restart = { restartBackoffMs: settings.restartBackoffMs ?? 100, restartBackoffMaxMs: settings.restartBackoffMaxMs ?? 30_000 };
    this.assignments = Array.from({ length: this.workerCount }, () => []);
  }

  start(): void {
    for (let index = 0; index < this.workerCount; index++) {
      const slot: WorkerSlot = {
        index,
        worker: null,
        state: 'starting',
        pending: new Map(),
        probeId: 0,
        backoff: new RestartBackoff(this.restart),
        lastFailure: '',
        reported: null,
        killed: false,
        restartAt: 0,
        restartTimer: null,
      };
      this.slots.push(slot);
      this.launch(slot, 'starting');
    }
  }

  /** Hands partitions to a worker; they are reopened after any restart. */
  open(workerIndex: number, partitions: PartitionAssignment[]): void {
    this.assignments[workerIndex]!.push(...partitions);
    // A worker that is down gets them with the rest when it is restarted.
    this.slot(workerIndex).worker?.postMessage({ type: 'open', partitions } satisfies ToWorker);
  }

  /** A topic's settings changed: its partitions on this worker take them now, and after any restart. */
  configure(workerIndex: number, settings: PartitionSettings[]): void {
    const byId = new Map(settings.map((setting) => [setting.id, setting]));
    const owned = this.assignments[workerIndex]!;
    owned.forEach((assignment, i) => {
      const setting = byId.get(assignment.id);
      if (setting !== undefined) owned[i] = { ...assignment, ...setting };
    });
    this.slot(workerIndex).worker?.postMessage({ type: 'configure', partitions: settings } satisfies ToWorker);
  }

  /** Partitions of a deleted topic: never reopened by a restart. */
  forget(workerIndex: number, partitionIds: readonly number[]): void {
    const gone = new Set(partitionIds);
    this.assignments[workerIndex] = this.assignments[workerIndex]!.filter((assignment) => !gone.has(assignment.id));
  }

  /** Whether the worker runs (requests to it are answered). */
  isUp(workerIndex: number): boolean {
    return this.slot(workerIndex).worker !== null;
  }

  /**
   * Sends one request of the worker protocol and resolves with its reply. Fails at once, with the
   * retriable `unavailable`, while the worker is down.
   */
  call<K extends WorkerCall>(workerIndex: number, type: K, request: CallRequest<K>, transfer: ArrayBuffer[] = []): Promise<CallReply<K>> {
    if (this.closed) return Promise.reject(new RillError('unavailable', 'the broker is shutting down'));
    const slot = this.slot(workerIndex);
    if (slot.worker === null) {
      const inMs = Math.max(0, slot.restartAt - Date.now());
      return Promise.reject(new WorkerDownError(`broker worker ${slot.index} is down (${slot.lastFailure}) and restarts in ${inMs} ms; retry`));
    }
    return this.send(slot, slot.worker, type, request, transfer);
  }

  /** Requests sent to a worker and not yet answered (the supervisor's own readiness probe left out). */
  pendingRequests(workerIndex: number): number {
    const slot = this.slot(workerIndex);
    return slot.pending.size - (slot.pending.has(slot.probeId) ? 1 : 0);
  }

  /** Ends a worker abruptly, as a crash would (used by tests and chaos drills); nothing when it is down already. */
  async killWorker(workerIndex: number): Promise<void> {
    const slot = this.slot(workerIndex);
    if (slot.worker === null) return;
    slot.killed = true;
    await slot.worker.terminate();
  }

  /** Whether every worker is up; otherwise which are not, and why. */
  health(): BrokerHealth {
    const now = Date.now();
    const workers: WorkerHealth[] = [];
    for (const slot of this.slots) {
      const { index: worker, backoff, lastFailure: reason } = slot;
      const common = { worker, reason, restarts: backoff.restartsInARow, backoffMs: backoff.lastBackoffMs };
      if (slot.state === 'down') workers.push({ ...common, status: 'down', restartInMs: Math.max(0, slot.restartAt - now) });
      else if (slot.state === 'restarting') workers.push({ ...common, status: 'restarting' });
      else if (slot.state === 'up' && backoff.crashLooping) workers.push({ ...common, status: 'crash-looping' });
    }
    return workers.length === 0 ? { status: 'ok' } : { status: 'unhealthy', workers };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const closing = this.slots.map((slot) => {
      slot.state = 'stopping';
      if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
      slot.restartTimer = null;
      const { worker } = slot;
      if (worker === null) return Promise.resolve();
      return this.send(slot, worker, 'close', {})
        .catch(() => undefined)
        .then(() => worker.terminate());
    });
    await Promise.all(closing);
  }

  private slot(index: number): WorkerSlot {
    const slot = this.slots[index];
    if (slot === undefined) throw new RangeError(`no broker worker ${index}`);
    return slot;
  }

  private send<K extends WorkerCall>(slot: WorkerSlot, worker: Worker, type: K, request: CallRequest<K>, transfer: ArrayBuffer[] = []): Promise<CallReply<K>> {
    const requestId = this.nextRequestId++;
    return new Promise<CallReply<K>>((resolve, reject) => {
      // The worker answers a request with a reply of the same type and id (see worker/main.ts).
      slot.pending.set(requestId, { resolve: resolve as (reply: ReplyMessage) => void, reject });
      worker.postMessage({ ...request, type, requestId } as ToWorker, transfer);
    });
  }

  /** Starts the slot's worker thread, hands it the slot's partitions and waits for it to answer. */
  private launch(slot: WorkerSlot, state: 'starting' | 'restarting'): void {
    const entry = workerEntry();
    const init: WorkerInit = { ...this.init, workerIndex: slot.index };
    let worker: Worker;
    try {
      worker = new Worker(entry.url, {
        workerData: entry.workerData(init),
        name: `rill-broker-${slot.index}`,
        // A worker makes little JS garbage (its data lives in transferred buffers): a small young
        // generation keeps each thread's resident memory small.
        resourceLimits: { maxYoungGenerationSizeMb: 4 },
      });
    } catch (error) {
      // No thread at all (too many open files, say): as if it had died at once.
      this.logger.error({ worker: slot.index, err: error }, 'broker worker could not be started');
      this.died(slot, `could not start the thread: ${(error as Error).message}`, null);
      return;
    }
    slot.worker = worker;
    slot.state = state;
    slot.reported = null;
    slot.killed = false;
    const owned = this.assignments[slot.index] ?? [];
    if (owned.length > 0) worker.postMessage({ type: 'open', partitions: owned } satisfies ToWorker);
    slot.probeId = this.nextRequestId;
    this.send(slot, worker, 'offsets', READY_PROBE).then(
      () => this.ready(slot, worker),
      () => undefined, // it died first: onExit has it
    );
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'fatal') {
        slot.reported = message.message;
        this.logger.error({ worker: slot.index, message: message.message }, 'broker worker reported a fatal error');
        return;
      }
      const pending = slot.pending.get(message.requestId);
      if (pending === undefined) return;
      slot.pending.delete(message.requestId);
      pending.resolve(message);
    });
    worker.on('error', (error) => {
      slot.reported ??= error.message;
      this.logger.error({ worker: slot.index, err: error }, 'broker worker crashed');
    });
    worker.on('exit', (code) => {
      if (slot.worker !== worker) return;
      const reason = slot.reported ?? (slot.killed ? 'killed' : `exited with code ${code}`);
      this.died(slot, reason, code);
    });
  }

  private ready(slot: WorkerSlot, worker: Worker): void {
    if (slot.worker !== worker || (slot.state !== 'starting' && slot.state !== 'restarting')) return;
    const restarted = slot.state === 'restarting';
    slot.state = 'up';
    slot.backoff.up();
    if (restarted) this.emit('worker-restarted', slot.index);
  }

  /** The slot's worker is gone: fails what was in flight to it and restarts it after its backoff. */
  private died(slot: WorkerSlot, reason: string, exitCode: number | null): void {
    slot.worker = null;
    const failure = new WorkerStoppedError(`broker worker ${slot.index} stopped before answering (${reason}); retry`);
    for (const pending of slot.pending.values()) pending.reject(failure);
    slot.pending.clear();
    if (slot.state === 'stopping' || this.closed) return;
    slot.lastFailure = reason;
    slot.state = 'down';
    const waitMs = slot.backoff.died();
    this.restarts++;
    slot.restartAt = Date.now() + waitMs;
    this.logger.warn(
      { worker: slot.index, exitCode, reason, restartsInARow: slot.backoff.restartsInARow, restartInMs: waitMs, crashLooping: slot.backoff.crashLooping },
      'broker worker stopped; it is restarted after a backoff',
    );
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (!this.closed) this.launch(slot, 'restarting');
    }, waitMs);
  }
}

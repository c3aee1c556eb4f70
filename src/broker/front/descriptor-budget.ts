import fs from 'node:fs';
import type { Logger } from '../../logging/index.js';
import { MIN_OPEN_FILES } from '../../storage/index.js';

/*
 * The file descriptors storage keeps open, in one place (docs/configuration.md, `storage`, says the
 * same). Every partition lives in one process, its broker workers being threads: they share the
 * process's open-file limit. Partitions do not hold descriptors of their own: each thread opens
 * segment files through a cache of at most `storage.openFilesPerWorker` files
 * (src/storage/open-files.ts), and index files are opened only to be written, then closed. So the
 * descriptors storage holds are bounded by the caches, whatever the number of partitions:
 *
 * - one cache per broker worker, and one on the main thread (it replays journals at start-up);
 * - each worker's journal: its active file, the one before it while a checkpoint runs, and
 *   briefly a spare being reused or a directory being synced.
 *
 * At start-up that estimate is checked against the open-file limit, less a reserve for everything
 * else (connections, the worker threads, Node itself); a capacity that does not fit is shrunk.
 */

/** Descriptors a broker worker's journal holds at most (journal/journal.ts). */
const JOURNAL_FILES_PER_WORKER = 4;
/** Descriptors left to everything but storage (sockets, worker threads, Node itself): a fifth of the limit, at least this many. */
const MIN_RESERVE = 256;
const RESERVE_SHARE = 0.2;

/**
 * The soft "Max open files" limit of this process, from /proc/self/limits (Linux); null when it
 * cannot be read (another system) or is unlimited: then nothing is checked. Node raises its soft
 * limit to the hard one at start, so this is what the broker may really use.
 */
export function readOpenFileLimit(file = '/proc/self/limits'): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  if (soft === undefined || soft === 'unlimited') return null;
  const limit = Number(soft);
  return Number.isSafeInteger(limit) && limit > 0 ? limit : null;
}

/**
 * The share of the open-file limit storage may use: the limit less a reserve for connections and
 * the rest; and the cache capacity per thread that keeps storage within it.
 */
export class DescriptorBudget {
  /** Descriptors kept for everything but storage. */
  readonly reserve: number;

  /** `limit`: the process's open-file limit (readOpenFileLimit), null when unknown. */
  constructor(readonly limit: number | null) {
    this.reserve = limit === null ? 0 : Math.min(limit, Math.max(MIN_RESERVE, Math.ceil(limit * RESERVE_SHARE)));
  }

  /** The most descriptors storage may keep open: the limit less the reserve. */
  get budget(): number {
    return this.limit === null ? Number.POSITIVE_INFINITY : this.limit - this.reserve;
  }

  /** Descriptors storage keeps open at most with `perThread` files in each cache (`workers` workers and the main thread) and their journals. */
  static estimate(perThread: number, workers: number): number {
    return perThread * (workers + 1) + workers * JOURNAL_FILES_PER_WORKER;
  }

  /** The largest capacity per thread, at most `configured`, whose estimate fits the budget; never below MIN_OPEN_FILES. */
  fit(configured: number, workers: number): number {
    if (DescriptorBudget.estimate(configured, workers) <= this.budget) return configured;
    const fitting = Math.floor((this.budget - workers * JOURNAL_FILES_PER_WORKER) / (workers + 1));
    return Math.max(MIN_OPEN_FILES, Math.min(configured, fitting));
  }
}

/**
 * At start-up, before any partition opens: the capacity every thread's cache of open segment
 * files gets, `configured` (`storage.openFilesPerWorker`) or, when that does not fit the process's
 * open-file limit with `workers` broker workers, as much as fits (logged as a warning, naming the
 * fix). The numbers are logged either way.
 */
export function fitOpenFiles(configured: number, workers: number, logger: Logger, limit = readOpenFileLimit()): number {
  const budget = new DescriptorBudget(limit);
  const perThread = budget.fit(configured, workers);
  if (limit === null) {
    logger.debug({ openFilesPerWorker: perThread }, 'open-file limit unknown: the descriptor budget is not checked');
    return perThread;
  }
  const estimated = DescriptorBudget.estimate(perThread, workers);
  const numbers = { openFileLimit: limit, workers, openFilesPerWorker: perThread, estimatedDescriptors: estimated, descriptorBudget: budget.budget };
  if (estimated > budget.budget) {
    logger.warn(
      { ...numbers, configured },
      `the open-file limit (${limit}) leaves ${budget.budget} descriptors to storage (${budget.reserve} are kept for connections), too few even for ` +
        `${perThread} open segment files per thread (${workers} broker workers and the main thread): storage and connections may fail with EMFILE; ` +
        'raise the limit (ulimit -n, LimitNOFILE in a systemd unit) and restart',
    );
  } else if (perThread < configured) {
    logger.warn(
      { ...numbers, configured },
      `storage.openFilesPerWorker (${configured}) does not fit the open-file limit (${limit}) with ${workers} broker workers and the main thread: ` +
        `each keeps at most ${perThread} segment files open instead (older segments are reopened when read); ` +
        'raise the limit (ulimit -n, LimitNOFILE in a systemd unit) and restart to keep more open',
    );
  } else logger.info(numbers, 'descriptor budget');
  return perThread;
}

import fs from 'node:fs';
import { RillError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';

/*
 * The estimate of the file descriptors partitions keep open, in one place (docs/configuration.md,
 * `limits`, says the same). Every partition lives in one process, its broker workers being threads:
 * they share the process's open-file limit.
 *
 * - Each segment of a partition keeps its `.log` file open as long as the partition is open.
 * - The active (newest) segment also keeps its offset index and time index open once it has been
 *   appended to (src/storage/log-segment.ts, index-file.ts).
 *
 * So a partition with s segments holds about s + 2 descriptors, and a new partition 3. Segments
 * rolled after start-up are not counted until the next start.
 */

/** The active segment's offset index and time index. */
const ACTIVE_INDEX_FILES = 2;
/** Segment files, as src/storage names them: the base offset in 20 digits. */
const SEGMENT_FILE = /^\d{20}\.log$/;
/** Descriptors left to everything but partitions (sockets, worker threads, Node itself): a fifth of the limit, at least this many. */
const MIN_RESERVE = 256;
const RESERVE_SHARE = 0.2;

/** Descriptors a partition with `segments` segments keeps open. */
function partitionDescriptors(segments: number): number {
  return Math.max(1, segments) + ACTIVE_INDEX_FILES;
}

const NEW_PARTITION = partitionDescriptors(1);

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

/** Segments in a partition's directory; 0 when it does not exist yet. */
function segmentsOnDisk(directory: string): number {
  try {
    return fs.readdirSync(directory).filter((name) => SEGMENT_FILE.test(name)).length;
  } catch {
    return 0;
  }
}

/**
 * The share of the open-file limit partitions may use: the limit less a reserve for connections
 * and the rest. Creating a topic or partitions that would pass it is refused (`limit-reached`), so
 * that a flood of topics meets a clear refusal instead of EMFILE in a broker worker.
 */
export class DescriptorBudget {
  /** Descriptors kept for everything but partitions. */
  readonly reserve: number;
  private estimate = 0;

  /** `limit`: the process's open-file limit (readOpenFileLimit), null when unknown. */
  constructor(readonly limit: number | null) {
    this.reserve = limit === null ? 0 : Math.min(limit, Math.max(MIN_RESERVE, Math.ceil(limit * RESERVE_SHARE)));
  }

  /** Descriptors the partitions counted so far are estimated to keep open. */
  get estimated(): number {
    return this.estimate;
  }

  /** The most descriptors partitions may keep open: the limit less the reserve. */
  get budget(): number {
    return this.limit === null ? Number.POSITIVE_INFINITY : this.limit - this.reserve;
  }

  /** Counts a partition found on disk (at start-up), by its segments. */
  addExisting(directory: string): void {
    this.estimate += partitionDescriptors(segmentsOnDisk(directory));
  }

  /** Throws `limit-reached` when `partitions` new partitions would pass the budget; `what` says what was asked. */
  check(partitions: number, what: string): void {
    const needed = this.estimate + partitions * NEW_PARTITION;
    if (needed <= this.budget) return;
    throw new RillError(
      'limit-reached',
      `cannot ${what}: the partitions would keep about ${needed} files open, more than the ${this.budget} this process may use for them ` +
        `(its open-file limit is ${this.limit}; ${this.reserve} are kept for connections); raise the limit (ulimit -n, LimitNOFILE in a systemd unit) and restart`,
    );
  }

  /** Counts `partitions` new partitions. */
  addNew(partitions: number): void {
    this.estimate += partitions * NEW_PARTITION;
  }

  /** How many more new partitions fit. */
  get room(): number {
    return this.limit === null ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor((this.budget - this.estimate) / NEW_PARTITION));
  }

  /**
   * At start-up, once the topics on disk are counted: the numbers at info level, and a warning
   * when those topics alone need more than the budget (80% of the limit, or the limit less 256).
   */
  report(logger: Logger, partitions: number, maxPartitions: number): void {
    if (this.limit === null) {
      logger.debug('open-file limit unknown: the descriptor budget is not checked');
      return;
    }
    const numbers = {
      openFileLimit: this.limit,
      partitions,
      estimatedDescriptors: this.estimate,
      descriptorBudget: this.budget,
      newPartitionsThatFit: this.room,
    };
    if (this.estimate > this.budget) {
      logger.warn(
        numbers,
        `the topics on disk need about ${this.estimate} open files, more than the ${this.budget} of this process's limit of ${this.limit} left for partitions: ` +
          'new topics will be refused (limit-reached) and partitions may fail to open (EMFILE); raise the limit (ulimit -n, LimitNOFILE in a systemd unit) and restart',
      );
    } else if (this.room < maxPartitions - partitions) {
      logger.info(
        numbers,
        `descriptor budget: about ${this.room} more partitions fit under the open-file limit (${this.limit}), fewer than limits.maxPartitions allows`,
      );
    } else logger.info(numbers, 'descriptor budget');
  }
}

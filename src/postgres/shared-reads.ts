import { LRUCache } from 'lru-cache';
import { offsetAfter } from '../storage/index.js';
import type { StoredBatches } from './batch-table.js';

/** How long a read that found batches is kept for the node's other readers. */
const RECENT_MS = 1000;
/** Bytes of batches kept at most, all partitions together, and reads kept at most. */
const MAX_RECENT_BYTES = 32 * 1024 * 1024;
const MAX_RECENT_READS = 4096;
/** What a kept read counts for at least: a small result may hold a slab of Node's buffer pool. */
const MIN_READ_BYTES = 8 * 1024;

/**
 * A node's reads of the partitions, shared by its readers: a read asked for while the same one is
 * running waits for it, and one that found batches is kept a moment (RECENT_MS, at most
 * MAX_RECENT_BYTES), so that the subscribers of one node that follow a partition, all told of its
 * new end at once, cost the database one read and not one each. Batches below a partition's end
 * do not change (compaction rewrites only rows older than the topic's deduplication window, with
 * the same records; retention deletes whole ones), so a kept read stays true; one that reached the
 * partition's end then is no longer used once a later end is heard of (`heard`), nor is a running
 * read joined once a later end was heard since it began: a reader told of an end gets at least what
 * the database had up to it. (A read through a node that has not yet heard of another node's
 * append may get a kept read up to RECENT_MS old, as it would have got the same read then.)
 */
export class SharedReads {
  /** Reads running, with the end heard of their partition when each began. */
  private readonly running = new Map<string, { loading: Promise<StoredBatches>; heardEnd: number }>();
  private readonly recent = new LRUCache<string, StoredBatches>({
    max: MAX_RECENT_READS,
    maxSize: MAX_RECENT_BYTES,
    sizeCalculation: (result) => Math.max(MIN_READ_BYTES, result.data?.length ?? 0),
    ttl: RECENT_MS,
    // Gone when their time is up, not when the cache next fills.
    ttlAutopurge: true,
  });
  /** The highest end heard of per partition (its appends, this node's and the others'). */
  private readonly ends = new Map<number, number>();
  /** Reads that went to the database (diagnostics and tests). */
  loads = 0;

  /** A partition has a new end (an append committed, here or on another node). */
  heard(partition: number, end: number): void {
    if (end > (this.ends.get(partition) ?? 0)) this.ends.set(partition, end);
  }

  /** The result of `load` for this partition (its id, never reused), offset and size: one running or kept, or a new one. */
  read(partition: number, offset: number, maxBytes: number, load: () => Promise<StoredBatches>): Promise<StoredBatches> {
    const key = `${partition}\u0000${offset}\u0000${maxBytes}`;
    const kept = this.recent.get(key);
    if (kept !== undefined && !this.outgrown(partition, kept)) return Promise.resolve(kept);
    const heardEnd = this.ends.get(partition) ?? 0;
    const running = this.running.get(key);
    // Joined only if no later end was heard since it began: it may have looked before that commit.
    if (running !== undefined && running.heardEnd >= heardEnd) return running.loading;
    this.loads++;
    const entry = {
      heardEnd,
      loading: load().then(
        (result) => {
          if (this.running.get(key) === entry) this.running.delete(key);
          // Nothing found is not kept: the next read may find what was appended since.
          if (result.data !== null) this.recent.set(key, result);
          return result;
        },
        (error: unknown) => {
          if (this.running.get(key) === entry) this.running.delete(key);
          throw error;
        },
      ),
    };
    this.running.set(key, entry);
    return entry.loading;
  }

  /** Whether a kept read reached its partition's end then, and the partition has grown since. */
  private outgrown(partition: number, kept: StoredBatches): boolean {
    if ((this.ends.get(partition) ?? 0) <= kept.logEndOffset) return false;
    return kept.data === null || offsetAfter(kept.data) >= kept.logEndOffset;
  }

  /** A partition of a deleted topic (its id is never used again). */
  forget(partition: number): void {
    this.ends.delete(partition);
  }
}

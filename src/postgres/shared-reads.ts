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
 * partition's end then is no longer used once a later end is heard of (`heard`), so that a reader
 * never gets less than the database has for it.
 */
export class SharedReads {
  private readonly running = new Map<string, Promise<StoredBatches>>();
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
    const running = this.running.get(key);
    if (running !== undefined) return running;
    this.loads++;
    const loading = load().then(
      (result) => {
        this.running.delete(key);
        // Nothing found is not kept: the next read may find what was appended since.
        if (result.data !== null) this.recent.set(key, result);
        return result;
      },
      (error: unknown) => {
        this.running.delete(key);
        throw error;
      },
    );
    this.running.set(key, loading);
    return loading;
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

import { LRUCache } from 'lru-cache';
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
 * the same records; retention deletes whole ones): a result kept a moment is still true, at worst
 * short of the newest end, which the readers are told of anyway.
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
  /** Reads that went to the database (diagnostics and tests). */
  loads = 0;

  /** The result of `load` for this partition (its id, never reused), offset and size: one running or kept, or a new one. */
  read(partition: number, offset: number, maxBytes: number, load: () => Promise<StoredBatches>): Promise<StoredBatches> {
    const key = `${partition}\u0000${offset}\u0000${maxBytes}`;
    const kept = this.recent.get(key);
    if (kept !== undefined) return Promise.resolve(kept);
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
}

import type { StorageConfig } from '../config/index.js';
import type { LogConfig } from '../storage/index.js';

/** What a partition log takes of the storage configuration (the front replays journals with it, workers open logs with it). */
export function logConfigOf(storage: StorageConfig): LogConfig {
  return {
    segmentBytes: storage.segmentBytes,
    segmentMs: storage.segmentMs,
    indexIntervalBytes: storage.indexIntervalBytes,
    retentionMs: storage.retention.ms,
    retentionBytes: storage.retention.bytes,
  };
}

/** Where the broker workers keep their journals: `<dataDir>/journal/<worker index>/`. */
export const JOURNALS_DIRECTORY = 'journal';

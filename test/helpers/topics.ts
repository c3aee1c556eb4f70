import type { EffectiveTopicSettings, Topic } from '../../src/broker/index.js';

/** The broker's default topic settings, as unit tests' fake topics run with. */
export const DEFAULT_TOPIC_SETTINGS: EffectiveTopicSettings = {
  retentionMs: -1,
  retentionBytes: -1,
  cleanupPolicy: 'delete',
  maxMessageBytes: 1024 * 1024,
  compression: 'none',
  deduplicationWindowMs: 0,
  ttlMs: 0,
};

/** A topic for unit tests: partition `p` has global id `ids[p]` (default: `p`). */
export function testTopic(name: string, partitions: number, ids: number[] = Array.from({ length: partitions }, (_, p) => p)): Topic {
  return { name, partitions, partitionIds: ids, lanes: 1, settings: DEFAULT_TOPIC_SETTINGS, ownSettings: {}, deleted: false };
}

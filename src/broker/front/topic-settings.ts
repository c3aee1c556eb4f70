import type { RillConfig, TopicSettings } from '../../config/index.js';

/** What a topic runs with: its own settings, or the broker's defaults. */
export type EffectiveTopicSettings = Required<TopicSettings>;

export const TOPIC_SETTING_KEYS = [
  'retentionMs',
  'retentionBytes',
  'cleanupPolicy',
  'maxMessageBytes',
  'compression',
  'deduplicationWindowMs',
  'ttlMs',
] as const satisfies ReadonlyArray<keyof TopicSettings>;

/** The broker's defaults for every topic (the global configuration). */
export function defaultTopicSettings(config: Pick<RillConfig, 'storage' | 'topics' | 'stomp'>): EffectiveTopicSettings {
  return {
    retentionMs: config.storage.retention.ms,
    retentionBytes: config.storage.retention.bytes,
    cleanupPolicy: 'delete',
    // No message larger than a frame can come anyway: that is the default limit.
    maxMessageBytes: config.topics.maxMessageBytes ?? config.stomp.maxFrameBytes,
    compression: config.topics.compression,
    deduplicationWindowMs: config.topics.deduplicationWindowMs,
    ttlMs: config.topics.ttlMs,
  };
}

/**
 * Internal topics keep what the broker needs of them whatever the defaults: no deduplication, no
 * time-to-live, no compression; the committed offsets' log is compacted (only live offsets are
 * read back at start-up, and none ages out).
 */
function internalSettings(name: string, defaults: EffectiveTopicSettings): EffectiveTopicSettings {
  return { ...defaults, cleanupPolicy: name === OFFSETS_TOPIC ? 'compact' : 'delete', compression: 'none', deduplicationWindowMs: 0, ttlMs: 0 };
}

/** The committed offsets' log (the coordinator's). */
export const OFFSETS_TOPIC = '__consumer_offsets';

/**
 * A topic's settings: the ones set on it through the admin API (stored with it) win over its
 * definition in the configuration file, which wins over the broker's defaults.
 */
export function effectiveSettings(
  name: string,
  defaults: EffectiveTopicSettings,
  definition: TopicSettings | undefined,
  own: TopicSettings | undefined,
): EffectiveTopicSettings {
  if (name.startsWith('__')) return internalSettings(name, defaults);
  const settings = { ...defaults };
  for (const key of TOPIC_SETTING_KEYS) {
    const value = own?.[key] ?? definition?.[key];
    if (value !== undefined) (settings as Record<string, unknown>)[key] = value;
  }
  return settings;
}

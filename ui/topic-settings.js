// The settings a topic may set itself (docs/protocol.md, "Topic settings"), for the create and alter forms.

const COMPRESSIONS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

export const TOPIC_SETTINGS = [
  { name: 'retentionMs', label: 'retention (ms, -1 keeps all)' },
  { name: 'retentionBytes', label: 'retention per partition (bytes, -1: no limit)' },
  { name: 'maxMessageBytes', label: 'largest message (bytes)' },
  { name: 'compression', label: 'compression', choices: COMPRESSIONS },
  { name: 'deduplicationWindowMs', label: 'deduplication window (ms, 0: off)' },
  { name: 'ttlMs', label: 'time-to-live (ms, 0: never expires)' },
];

/** A setting's value as the API takes it: compression is a name, the others whole numbers. */
export function settingValue(name, text) {
  if (name === 'compression') return text;
  const value = Number(text);
  if (!Number.isInteger(value)) throw new Error(`${name} takes a whole number, not "${text}"`);
  return value;
}

import { forEachRecord, type Broker } from '../broker/index.js';
import type { TopicPartition } from './assignors.js';

/** How committed offsets and group settings reach the disk and come back at start-up. */
export interface OffsetLog {
  /** Appends one entry durably: `value` null removes the key. */
  write(key: string, value: string | null): Promise<void>;
  /** Calls `visit` for every entry ever written, oldest first. */
  replay(visit: (key: string, value: string | null) => void): Promise<void>;
}

const OFFSET_PREFIX = 'offset/';
const GROUP_PREFIX = 'group/';

function offsetKey(group: string, tp: TopicPartition): string {
  return `${OFFSET_PREFIX}${group}/${tp.topic}/${tp.partition}`;
}

/**
 * Committed offsets and group settings, kept in memory and logged to the internal topic
 * `__consumer_offsets` (as Kafka does): the last entry written for a key wins at replay.
 */
export class OffsetStore {
  private readonly offsets = new Map<string, number>();
  private readonly groups = new Map<string, string>();

  constructor(private readonly log: OffsetLog) {}

  async load(): Promise<void> {
    await this.log.replay((key, value) => {
      if (key.startsWith(OFFSET_PREFIX)) {
        if (value === null) this.offsets.delete(key);
        else this.offsets.set(key, (JSON.parse(value) as { offset: number }).offset);
      } else if (key.startsWith(GROUP_PREFIX)) {
        if (value === null) this.groups.delete(key.slice(GROUP_PREFIX.length));
        else this.groups.set(key.slice(GROUP_PREFIX.length), value);
      }
    });
  }

  committed(group: string, tp: TopicPartition): number | undefined {
    return this.offsets.get(offsetKey(group, tp));
  }

  async commit(group: string, entries: Array<TopicPartition & { offset: number }>): Promise<void> {
    const now = Date.now();
    await Promise.all(
      entries.map((entry) => this.log.write(offsetKey(group, entry), JSON.stringify({ offset: entry.offset, committedAt: now }))),
    );
    for (const entry of entries) this.offsets.set(offsetKey(group, entry), entry.offset);
  }

  /** Every committed offset of a group. */
  groupOffsets(group: string): Array<TopicPartition & { offset: number }> {
    const prefix = `${OFFSET_PREFIX}${group}/`;
    const result: Array<TopicPartition & { offset: number }> = [];
    for (const [key, offset] of this.offsets) {
      if (!key.startsWith(prefix)) continue;
      const rest = key.slice(prefix.length);
      const slash = rest.lastIndexOf('/');
      result.push({ topic: rest.slice(0, slash), partition: Number(rest.slice(slash + 1)), offset });
    }
    return result;
  }

  savedGroups(): Map<string, string> {
    return this.groups;
  }

  /**
   * Writes every live entry again. The internal topic is subject to time retention like any other,
   * so a periodic checkpoint keeps the offsets of idle partitions from ageing out with their segment.
   */
  async checkpoint(): Promise<number> {
    const writes: Array<Promise<void>> = [];
    for (const [key, offset] of this.offsets) writes.push(this.log.write(key, JSON.stringify({ offset, committedAt: Date.now() })));
    for (const [group, settings] of this.groups) writes.push(this.log.write(`${GROUP_PREFIX}${group}`, settings));
    await Promise.all(writes);
    return writes.length;
  }

  async saveGroup(group: string, settings: object): Promise<void> {
    const value = JSON.stringify(settings);
    await this.log.write(`${GROUP_PREFIX}${group}`, value);
    this.groups.set(group, value);
  }
}

export const OFFSETS_TOPIC = '__consumer_offsets';

/** The offsets log kept in the internal topic, written through the broker like any record. */
export function brokerOffsetLog(broker: Pick<Broker, 'topic' | 'createTopic' | 'read' | 'offsets' | 'appendAndWait'>): OffsetLog {
  const topic = broker.topic(OFFSETS_TOPIC) ?? broker.createTopic(OFFSETS_TOPIC, 1);
  return {
    async write(key, value) {
      // An empty value is a tombstone: every live value is JSON, never empty.
      await broker.appendAndWait(topic, 0, Date.now(), key, null, null, Buffer.from(value ?? ''));
    },
    async replay(visit) {
      const { logStartOffset, logEndOffset } = await broker.offsets(topic, 0);
      let offset = logStartOffset;
      while (offset < logEndOffset) {
        const result = await broker.read(topic, 0, offset, 4 * 1024 * 1024);
        if (result.batches === null) break;
        forEachRecord(result.batches, offset, (record) => {
          visit(record.key ?? '', record.value.length === 0 ? null : record.value.toString('utf8'));
          offset = record.offset + 1;
        });
      }
    },
  };
}

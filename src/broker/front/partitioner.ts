import murmurhash3 from 'murmurhash3js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: the range is every ASCII character, control characters included
const ASCII = /^[\x00-\x7f]*$/;

/**
 * murmur3 x86 32-bit (seed 0) of the key's UTF-8 bytes. murmurhash3js hashes the low byte of
 * each UTF-16 code unit, so a non-ASCII key is first turned into one character per UTF-8 byte.
 */
export function hashKey(key: string): number {
  const bytes = ASCII.test(key) ? key : Buffer.from(key, 'utf8').toString('latin1');
  return murmurhash3.x86.hash32(bytes) >>> 0;
}

/** The partition a key belongs to: stable for a given key and partition count. */
export function partitionForKey(key: string, partitions: number): number {
  return hashKey(key) % partitions;
}

/** How records without a key are spread over a topic's partitions (`topics.keylessPartitioner`). */
export type KeylessPartitioning = 'sticky' | 'round-robin';

/** Bytes a sticky partition takes in one event-loop turn before the next one is used (Kafka's batch.size is 16 KiB). */
const STICKY_BATCH_BYTES = 64 * 1024;

interface StickyState {
  counter: number;
  turn: number;
  bytes: number;
}

/**
 * Picks the partition of a record without a key.
 * - `round-robin`: each record the next partition. With many partitions, every record makes a
 *   batch of its own: a write, an index entry, a buffer, per record.
 * - `sticky` (the default, Kafka's since 2.4, KIP-480): the records of one event-loop turn go to
 *   one partition, up to 64 KiB, and the next turn (or the next 64 KiB) to the next partition:
 *   one batch where round-robin makes hundreds, and the partitions still fill evenly over time.
 */
export class KeylessPartitioner {
  private readonly counters = new Map<string, number>();
  private readonly sticky = new Map<string, StickyState>();
  private turn = 0;
  private turnEnding = false;

  constructor(private readonly mode: KeylessPartitioning = 'sticky') {}

  next(topic: string, partitions: number, bytes: number): number {
    if (this.mode === 'round-robin') {
      const counter = this.counters.get(topic) ?? 0;
      this.counters.set(topic, counter + 1);
      return counter % partitions;
    }
    if (!this.turnEnding) {
      this.turnEnding = true;
      setImmediate(() => {
        this.turn++;
        this.turnEnding = false;
      });
    }
    let state = this.sticky.get(topic);
    if (state === undefined) {
      state = { counter: 0, turn: this.turn, bytes: 0 };
      this.sticky.set(topic, state);
    } else if (state.turn !== this.turn || state.bytes >= STICKY_BATCH_BYTES) {
      state.counter++;
      state.turn = this.turn;
      state.bytes = 0;
    }
    state.bytes += bytes;
    return state.counter % partitions;
  }
}

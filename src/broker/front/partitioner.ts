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

/** Spreads keyless records over the partitions of each topic in turn. */
export class RoundRobin {
  private readonly counters = new Map<string, number>();

  next(topic: string, partitions: number): number {
    const counter = this.counters.get(topic) ?? 0;
    this.counters.set(topic, counter + 1);
    return counter % partitions;
  }
}

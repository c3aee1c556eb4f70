/**
 * A messageID's fingerprint: three 32-bit hashes of its characters, seeded per topic and per
 * process (so that IDs cannot be crafted to collide). Two different IDs share all 95 bits that
 * the index compares with a chance of about 2^-95 per pair: with a million IDs remembered, one
 * false match in some 10^22 lookups.
 */
export class Fingerprint {
  a = 0;
  b = 0;
  c = 0;

  /** Computes the fingerprint of `text` under `seed` into this object (no allocation: it is reused). */
  of(text: string, seed: number): this {
    let a = seed ^ 0x811c9dc5;
    let b = Math.imul(seed, 0x9e3779b1) ^ 0x2545f491;
    let c = Math.imul(seed ^ 0x5bd1e995, 0x85ebca6b);
    for (let i = 0; i < text.length; i++) {
      const char = text.charCodeAt(i);
      a = Math.imul(a ^ char, 0x01000193);
      b = Math.imul(b ^ char, 0x5bd1e995);
      c = Math.imul(c ^ char, 0xcc9e2d51);
    }
    this.a = mix(a ^ text.length) & 0x7fffffff;
    this.b = mix(b);
    this.c = mix(c);
    return this;
  }
}

/** murmur3's finaliser: every input bit reaches every output bit. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const EMPTY = -1;
/** A bucket's value is stored plus one: a zeroed array is an empty table, with no fill (its pages stay untouched until used). */
const FREE = 0;
const INITIAL_BUCKETS = 2048;
/** A bucket is four int32s side by side (fingerprint a, b, c, then the value): one cache line per probe. */
const STRIDE = 4;

/**
 * Fingerprint to a non-negative int32 (a ring and slot, StoredMessageIds' reference), in one
 * typed array: an open-addressing table with linear probing, kept at most half full, and
 * backward-shift deletion (no tombstones). No object and no string per entry, so a million
 * entries cost the garbage collector nothing to walk, and a lookup touches one cache line.
 */
export class FingerprintIndex {
  private buckets: Int32Array;
  private mask: number;
  size = 0;
  /** How often the table doubled (each time rehashing every entry, at once). */
  resizes = 0;

  /** Sized for `expected` entries from the start: growing rehashes the whole table in one go, a pause of milliseconds at 100,000s of entries. */
  constructor(expected = 0) {
    let count = INITIAL_BUCKETS;
    while (count < expected * 2) count *= 2;
    this.buckets = new Int32Array(count * STRIDE);
    this.mask = count - 1;
  }

  /** The value stored for the fingerprint, or -1. */
  get(fingerprint: Fingerprint): number {
    const { a, b, c } = fingerprint;
    const buckets = this.buckets;
    for (let i = a & this.mask; ; i = (i + 1) & this.mask) {
      const at = i * STRIDE;
      const value = buckets[at + 3]!;
      if (value === FREE) return EMPTY;
      if (buckets[at] === a && buckets[at + 1] === b && buckets[at + 2] === c) return value - 1;
    }
  }

  /** Stores `value` (0 to 2^31 - 2) for the fingerprint, replacing what was there. */
  set(fingerprint: Fingerprint, value: number): void {
    if ((this.size + 1) * 2 > this.mask + 1) this.resize((this.mask + 1) * 2);
    this.put(fingerprint.a, fingerprint.b, fingerprint.c, value + 1);
  }

  /** Removes the fingerprint (a, b, c) if it holds `value` (it may have been stored again since). */
  deleteIf(a: number, b: number, c: number, value: number): void {
    const buckets = this.buckets;
    const mask = this.mask;
    let hole = a & mask;
    for (; ; hole = (hole + 1) & mask) {
      const at = hole * STRIDE;
      const found = buckets[at + 3]!;
      if (found === FREE) return;
      if (buckets[at] === a && buckets[at + 1] === b && buckets[at + 2] === c) {
        if (found !== value + 1) return;
        break;
      }
    }
    // Backward shift: pull later entries of the run into the hole when their home allows it.
    for (let j = (hole + 1) & mask; buckets[j * STRIDE + 3] !== FREE; j = (j + 1) & mask) {
      const home = buckets[j * STRIDE]! & mask;
      // Whether `home` lies cyclically outside (hole, j]: then the entry may move to the hole.
      const movable = hole <= j ? home <= hole || home > j : home <= hole && home > j;
      if (!movable) continue;
      buckets.copyWithin(hole * STRIDE, j * STRIDE, j * STRIDE + STRIDE);
      hole = j;
    }
    buckets[hole * STRIDE + 3] = FREE;
    this.size--;
  }

  /** Replaces the value stored for (a, b, c) if it is `from` (a ring renumbering its slots). */
  moveIf(a: number, b: number, c: number, from: number, to: number): void {
    const buckets = this.buckets;
    for (let i = a & this.mask; ; i = (i + 1) & this.mask) {
      const at = i * STRIDE;
      const value = buckets[at + 3]!;
      if (value === FREE) return;
      if (buckets[at] === a && buckets[at + 1] === b && buckets[at + 2] === c) {
        if (value === from + 1) buckets[at + 3] = to + 1;
        return;
      }
    }
  }

  /** `stored`: the value plus one. */
  private put(a: number, b: number, c: number, stored: number): void {
    const buckets = this.buckets;
    for (let i = a & this.mask; ; i = (i + 1) & this.mask) {
      const at = i * STRIDE;
      const found = buckets[at + 3]!;
      if (found === FREE) {
        buckets[at] = a;
        buckets[at + 1] = b;
        buckets[at + 2] = c;
        buckets[at + 3] = stored;
        this.size++;
        return;
      }
      if (buckets[at] === a && buckets[at + 1] === b && buckets[at + 2] === c) {
        buckets[at + 3] = stored;
        return;
      }
    }
  }

  private resize(count: number): void {
    const old = this.buckets;
    this.buckets = new Int32Array(count * STRIDE);
    this.mask = count - 1;
    this.size = 0;
    this.resizes++;
    for (let at = 0; at < old.length; at += STRIDE) if (old[at + 3] !== FREE) this.put(old[at]!, old[at + 1]!, old[at + 2]!, old[at + 3]!);
  }
}

import { type Fingerprint, FingerprintIndex } from './fingerprint-index.js';

const INITIAL_SLOTS = 1024;
/**
 * Entries made room for at the start (index and first ring), up to the capacity: growing past a
 * size copies every entry at once, and at 100,000s of entries that paused the gateway thread for
 * over 10 ms, a latency spike for every publisher. The default capacity (250,000) fits, so a busy
 * broker never grows them: about 8 MiB for the index (soon all touched: hashing spreads its
 * writes) and 2 MiB for the ring's entry column at once; the ring's typed arrays are zeroed, not
 * filled, so their pages take memory as the ring reaches them.
 */
const PREALLOCATED_IDS = 2 ** 18;
/**
 * The index maps a fingerprint to a reference, a non-negative int32: ring * 2^24 + slot (a ring
 * holds at most 16 M: `limits.maxDeduplicationIds` is capped there; at most 127 rings, one per
 * distinct window length, as the configuration checks).
 */
const SLOT_BITS = 2 ** 24;
const MAX_WINDOW_LENGTHS = 127;
/** The offset of an entry whose first copy is still on its way (or in doubt). */
const IN_FLIGHT = -1;

/**
 * The messageIDs received lately in the topics of one window length, in the order they came (so
 * also in the order their window ends): a ring of slots, each holding a messageID's fingerprint
 * (which includes its topic), where it was stored (or IN_FLIGHT while its first copy is on its
 * way, with the caller's `Entry` beside it) and when it came, in typed arrays. An entry is
 * numbered by its sequence (the how-many-th added), which survives the ring's growth.
 */
export class MessageIdRing<Entry> {
  private fingerprintsA = new Int32Array(0);
  private fingerprintsB = new Int32Array(0);
  private fingerprintsC = new Int32Array(0);
  private partitions = new Int32Array(0);
  private offsets = new Float64Array(0);
  private times = new Float64Array(0);
  private entries = new Array<Entry | undefined>(0);
  /** The oldest slot in use, how many are, and how many were ever added (the next sequence). */
  private start = 0;
  count = 0;
  private added = 0;
  /** How often the columns grew (each time copying every entry). */
  growths = 0;

  constructor(
    private readonly id: number,
    readonly windowMs: number,
    private readonly index: FingerprintIndex,
    private readonly maxSlots: number,
    initialSlots: number = INITIAL_SLOTS,
  ) {
    this.grow(Math.min(maxSlots, Math.max(INITIAL_SLOTS, initialSlots)));
  }

  /** Adds an entry (stored at `offset`, or IN_FLIGHT with `entry`) and indexes it; the caller has made room. Returns its sequence. */
  add(fingerprint: Fingerprint, partition: number, offset: number, now: number, entry: Entry | undefined): number {
    if (this.count === this.slots) {
      this.growths++;
      this.grow(Math.min(this.maxSlots, this.slots * 2));
    }
    const slot = (this.start + this.count) % this.slots;
    this.count++;
    this.fingerprintsA[slot] = fingerprint.a;
    this.fingerprintsB[slot] = fingerprint.b;
    this.fingerprintsC[slot] = fingerprint.c;
    this.partitions[slot] = partition;
    this.offsets[slot] = offset;
    this.times[slot] = now;
    this.entries[slot] = entry;
    this.index.set(fingerprint, this.reference(slot));
    return this.added++;
  }

  /** The slot of the entry with this sequence, or -1 if it has been forgotten. */
  slotOf(sequence: number): number {
    const age = sequence - (this.added - this.count);
    return age < 0 ? -1 : (this.start + age) % this.slots;
  }

  partition(slot: number): number {
    return this.partitions[slot]!;
  }

  /** Where the message was stored, or IN_FLIGHT. */
  offset(slot: number): number {
    return this.offsets[slot]!;
  }

  entry(slot: number): Entry | undefined {
    return this.entries[slot];
  }

  setEntry(slot: number, entry: Entry | undefined): void {
    this.entries[slot] = entry;
  }

  /** The first copy is stored: at `offset` of `partition`. */
  stored(slot: number, partition: number, offset: number): void {
    this.partitions[slot] = partition;
    this.offsets[slot] = offset;
    this.entries[slot] = undefined;
  }

  /** The first copy was not stored: the fingerprint is forgotten (the slot waits to be reused). */
  dropped(slot: number): void {
    this.index.deleteIf(this.fingerprintsA[slot]!, this.fingerprintsB[slot]!, this.fingerprintsC[slot]!, this.reference(slot));
    this.entries[slot] = undefined;
  }

  /** Whether the message in `slot` came less than the window ago. */
  isWithinWindow(slot: number, now: number): boolean {
    return this.times[slot]! + this.windowMs > now;
  }

  /** When the oldest entry came (Infinity when empty). */
  get oldestTime(): number {
    return this.count === 0 ? Number.POSITIVE_INFINITY : this.times[this.start]!;
  }

  /** Forgets the entries whose window is over: the oldest first, which is the order they end in. */
  expire(now: number): void {
    while (this.count > 0 && this.times[this.start]! + this.windowMs <= now) this.forgetOldest();
  }

  forgetOldest(): void {
    const slot = this.start;
    // The index may point elsewhere by now: the messageID received again after its window, say.
    this.index.deleteIf(this.fingerprintsA[slot]!, this.fingerprintsB[slot]!, this.fingerprintsC[slot]!, this.reference(slot));
    this.entries[slot] = undefined;
    this.start = (slot + 1) % this.slots;
    this.count--;
  }

  reference(slot: number): number {
    return this.id * SLOT_BITS + slot;
  }

  private get slots(): number {
    return this.times.length;
  }

  /** Moves the slots in use, oldest first, to the start of larger columns, and tells the index their new numbers. */
  private grow(slots: number): void {
    const old = {
      a: this.fingerprintsA,
      b: this.fingerprintsB,
      c: this.fingerprintsC,
      partitions: this.partitions,
      offsets: this.offsets,
      times: this.times,
      entries: this.entries,
    };
    const oldSlots = this.slots;
    this.fingerprintsA = new Int32Array(slots);
    this.fingerprintsB = new Int32Array(slots);
    this.fingerprintsC = new Int32Array(slots);
    this.partitions = new Int32Array(slots);
    this.offsets = new Float64Array(slots);
    this.times = new Float64Array(slots);
    this.entries = new Array<Entry | undefined>(slots);
    for (let i = 0; i < this.count; i++) {
      const from = (this.start + i) % oldSlots;
      const a = old.a[from]!;
      const b = old.b[from]!;
      const c = old.c[from]!;
      this.fingerprintsA[i] = a;
      this.fingerprintsB[i] = b;
      this.fingerprintsC[i] = c;
      this.partitions[i] = old.partitions[from]!;
      this.offsets[i] = old.offsets[from]!;
      this.times[i] = old.times[from]!;
      this.entries[i] = old.entries[from];
      if (from !== i) this.index.moveIf(a, b, c, this.reference(from), this.reference(i));
    }
    this.start = 0;
  }
}

/** Where an entry is: its ring and slot. */
export interface EntryAt<Entry> {
  ring: MessageIdRing<Entry>;
  slot: number;
}

/**
 * Every topic's recent messageIDs, by fingerprint (which includes the topic), in one ring per
 * window length (so that each ring ends its entries in the order it got them). An entry is made
 * when the first copy comes (IN_FLIGHT, with the caller's `Entry`), and told where it was stored
 * once it is: one random access to the index per message, not two. The rings together hold at
 * most `capacity` entries (`limits.maxDeduplicationIds`), so memory is bounded whatever the rate:
 * about 72 bytes per entry, in typed arrays. When full, entries whose window is over go first;
 * only then is the oldest entry still within its window forgotten, and counted as forgotten early.
 * No string is hashed or compared, and the garbage collector has nothing per entry to walk.
 */
export class StoredMessageIds<Entry> {
  private readonly index: FingerprintIndex;
  private readonly rings: Array<MessageIdRing<Entry>> = [];
  private readonly found: EntryAt<Entry> = { ring: null as unknown as MessageIdRing<Entry>, slot: 0 };
  private evicted = 0;

  /** `preallocated`: entries made room for at the start, in the index and in the first ring (the one of the default window, usually the only one). */
  constructor(
    readonly capacity: number,
    private readonly preallocated: number = Math.min(capacity, PREALLOCATED_IDS),
  ) {
    this.index = new FingerprintIndex(preallocated);
  }

  /** How often the index or a ring grew (each time copying every entry at once). */
  get growths(): number {
    return this.index.resizes + this.rings.reduce((sum, ring) => sum + ring.growths, 0);
  }

  /** Whether a topic may take a window of `windowMs` (each length has a ring; there are at most MAX_WINDOW_LENGTHS). */
  hasRoomFor(windowMs: number): boolean {
    return this.rings.length < MAX_WINDOW_LENGTHS || this.rings.some((ring) => ring.windowMs === windowMs);
  }

  /** The ring of the topics whose window is `windowMs`. */
  ringFor(windowMs: number): MessageIdRing<Entry> {
    let ring = this.rings.find((candidate) => candidate.windowMs === windowMs);
    if (ring === undefined) {
      if (this.rings.length === MAX_WINDOW_LENGTHS) throw new RangeError(`more than ${MAX_WINDOW_LENGTHS} different deduplication windows`);
      ring = new MessageIdRing<Entry>(this.rings.length, windowMs, this.index, this.capacity, this.rings.length === 0 ? this.preallocated : INITIAL_SLOTS);
      this.rings.push(ring);
    }
    return ring;
  }

  /** Where the fingerprint's entry is, or null; the answer is reused by the next call. */
  find(fingerprint: Fingerprint): EntryAt<Entry> | null {
    const reference = this.index.get(fingerprint);
    if (reference < 0) return null;
    this.found.ring = this.rings[Math.floor(reference / SLOT_BITS)]!;
    this.found.slot = reference % SLOT_BITS;
    return this.found;
  }

  /** Adds an entry to `ring` (making room first if every ring together is full); returns its sequence. */
  add(ring: MessageIdRing<Entry>, fingerprint: Fingerprint, partition: number, offset: number, now: number, entry?: Entry): number {
    if (this.size >= this.capacity) {
      this.expire(now);
      if (this.size >= this.capacity) {
        let oldest = ring;
        for (const candidate of this.rings) if (candidate.oldestTime < oldest.oldestTime) oldest = candidate;
        oldest.forgetOldest();
        this.evicted++;
      }
    }
    return ring.add(fingerprint, partition, offset, now, entry);
  }

  get size(): number {
    let size = 0;
    for (const ring of this.rings) size += ring.count;
    return size;
  }

  /** How many messageIDs were forgotten before their window was over, for want of room. */
  get evictedEarly(): number {
    return this.evicted;
  }

  expire(now: number): void {
    for (const ring of this.rings) ring.expire(now);
  }
}

export { IN_FLIGHT };

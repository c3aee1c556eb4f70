/** What a topic keeps per messageID: the ring slot of a stored message, or something of its own (a publish in flight). */
export type MessageIdTable<Pending> = Map<string, number | Pending>;

const INITIAL_SLOTS = 1024;

/**
 * The messageIDs stored lately in the topics of one window length, in the order they were stored
 * (so also in the order their window ends): a ring of slots, each holding a messageID, the table
 * of the topic it belongs to, and where and when it was stored. Each topic finds its own through
 * its table, messageID to slot. Columns in typed arrays rather than an object per message: a
 * million entries cost a million strings (which the tables hold anyway) and about 28 bytes each here.
 */
export class MessageIdRing<Pending> {
  private messageIds = new Array<string | undefined>(0);
  private tables = new Array<MessageIdTable<Pending> | undefined>(0);
  private partitions = new Int32Array(0);
  private offsets = new Float64Array(0);
  private times = new Float64Array(0);
  /** The oldest slot in use, and how many are. */
  private start = 0;
  count = 0;

  constructor(
    readonly windowMs: number,
    private readonly maxSlots: number,
  ) {
    this.grow(Math.min(maxSlots, INITIAL_SLOTS));
  }

  /** Remembers a stored message in its topic's table; returns its slot. The caller makes room first (StoredMessageIds). */
  add(table: MessageIdTable<Pending>, messageId: string, partition: number, offset: number, now: number): number {
    if (this.count === this.slots) this.grow(Math.min(this.maxSlots, this.slots * 2));
    const slot = (this.start + this.count) % this.slots;
    this.count++;
    this.messageIds[slot] = messageId;
    this.tables[slot] = table;
    this.partitions[slot] = partition;
    this.offsets[slot] = offset;
    this.times[slot] = now;
    table.set(messageId, slot);
    return slot;
  }

  partition(slot: number): number {
    return this.partitions[slot]!;
  }

  offset(slot: number): number {
    return this.offsets[slot]!;
  }

  /** Whether the message in `slot` was stored less than the window ago. */
  isWithinWindow(slot: number, now: number): boolean {
    return this.times[slot]! + this.windowMs > now;
  }

  /** When the oldest entry was stored (Infinity when empty). */
  get oldestTime(): number {
    return this.count === 0 ? Number.POSITIVE_INFINITY : this.times[this.start]!;
  }

  /** Forgets the messageIDs whose window is over: the oldest first, which is the order they end in. */
  expire(now: number): void {
    while (this.count > 0 && this.times[this.start]! + this.windowMs <= now) this.forgetOldest();
  }

  forgetOldest(): void {
    const slot = this.start;
    const table = this.tables[slot]!;
    const messageId = this.messageIds[slot]!;
    // The table may have moved on: the messageID published again after its window, say.
    if (table.get(messageId) === slot) table.delete(messageId);
    this.messageIds[slot] = undefined;
    this.tables[slot] = undefined;
    this.start = (slot + 1) % this.slots;
    this.count--;
  }

  private get slots(): number {
    return this.times.length;
  }

  /** Moves the slots in use, oldest first, to the start of larger columns, and tells their tables their new numbers. */
  private grow(slots: number): void {
    const old = { messageIds: this.messageIds, tables: this.tables, partitions: this.partitions, offsets: this.offsets, times: this.times };
    const oldSlots = this.slots;
    this.messageIds = new Array<string | undefined>(slots);
    this.tables = new Array<MessageIdTable<Pending> | undefined>(slots);
    this.partitions = new Int32Array(slots);
    this.offsets = new Float64Array(slots);
    this.times = new Float64Array(slots);
    for (let i = 0; i < this.count; i++) {
      const from = (this.start + i) % oldSlots;
      const messageId = old.messageIds[from]!;
      const table = old.tables[from]!;
      this.messageIds[i] = messageId;
      this.tables[i] = table;
      this.partitions[i] = old.partitions[from]!;
      this.offsets[i] = old.offsets[from]!;
      this.times[i] = old.times[from]!;
      if (table.get(messageId) === from) table.set(messageId, i);
    }
    this.start = 0;
  }
}

/**
 * Every topic's recent messageIDs: one ring per window length (so that each ring ends its entries
 * in the order it got them), all rings together holding at most `capacity` entries
 * (`limits.maxDeduplicationIds`), so memory is bounded whatever the rate. When full, entries whose
 * window is over go first; only then is the oldest entry still within its window forgotten, and
 * counted as forgotten early.
 */
export class StoredMessageIds<Pending> {
  private readonly rings = new Map<number, MessageIdRing<Pending>>();
  private evicted = 0;

  constructor(readonly capacity: number) {}

  /** The ring of the topics whose window is `windowMs`. */
  ringFor(windowMs: number): MessageIdRing<Pending> {
    let ring = this.rings.get(windowMs);
    if (ring === undefined) {
      ring = new MessageIdRing<Pending>(windowMs, this.capacity);
      this.rings.set(windowMs, ring);
    }
    return ring;
  }

  get size(): number {
    let size = 0;
    for (const ring of this.rings.values()) size += ring.count;
    return size;
  }

  /** How many messageIDs were forgotten before their window was over, for want of room. */
  get evictedEarly(): number {
    return this.evicted;
  }

  /** Remembers a stored message in `ring`, making room first if every ring together is full. */
  add(ring: MessageIdRing<Pending>, table: MessageIdTable<Pending>, messageId: string, partition: number, offset: number, now: number): number {
    if (this.size >= this.capacity) {
      this.expire(now);
      if (this.size >= this.capacity) {
        let oldest = ring;
        for (const candidate of this.rings.values()) if (candidate.oldestTime < oldest.oldestTime) oldest = candidate;
        oldest.forgetOldest();
        this.evicted++;
      }
    }
    return ring.add(table, messageId, partition, offset, now);
  }

  expire(now: number): void {
    for (const ring of this.rings.values()) ring.expire(now);
  }
}

/** What a topic keeps per messageID: the ring slot of a stored message, or something of its own (a publish in flight). */
export type MessageIdTable<Pending> = Map<string, number | Pending>;

const INITIAL_SLOTS = 1024;

/**
 * The messageIDs stored lately, of every topic, in the order they were stored: a ring of at most
 * `capacity` slots, each holding a messageID, the table of the topic it belongs to, and where and
 * when it was stored. When the ring is full the oldest is forgotten to make room (so memory is
 * bounded whatever the rate: `limits.maxDeduplicationIds`), and `expire` forgets the ones past
 * their topic's window. Each topic finds its own through its table, messageID to slot.
 *
 * Columns in typed arrays rather than an object per message: a million entries cost a million
 * strings (which the tables hold anyway) and about 28 bytes each here, not a million objects.
 */
export class StoredMessageIds<Pending> {
  private messageIds = new Array<string | undefined>(0);
  private tables = new Array<MessageIdTable<Pending> | undefined>(0);
  private partitions = new Int32Array(0);
  private offsets = new Float64Array(0);
  private times = new Float64Array(0);
  /** The oldest slot in use, and how many are. */
  private start = 0;
  private count = 0;
  private evicted = 0;

  constructor(readonly capacity: number) {
    this.grow(Math.min(capacity, INITIAL_SLOTS));
  }

  get size(): number {
    return this.count;
  }

  /** How many messageIDs were forgotten before their window was over, for want of room. */
  get evictedEarly(): number {
    return this.evicted;
  }

  /** Remembers a stored message in its topic's table (forgetting the oldest one if the ring is full); returns its slot. */
  add(table: MessageIdTable<Pending>, messageId: string, partition: number, offset: number, now: number): number {
    if (this.count === this.slots && this.slots < this.capacity) this.grow(Math.min(this.capacity, this.slots * 2));
    if (this.count === this.slots) {
      this.forgetOldest();
      this.evicted++;
    }
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

  storedAt(slot: number): number {
    return this.times[slot]!;
  }

  /**
   * Forgets, oldest first, the messageIDs whose topic's window (`windowOf` its table) is over,
   * stopping at the first one still within its window: one that outlives its window behind it is
   * found expired by its lookup instead.
   */
  expire(now: number, windowOf: (table: MessageIdTable<Pending>) => number): void {
    while (this.count > 0) {
      const table = this.tables[this.start]!;
      if (this.times[this.start]! + windowOf(table) > now) return;
      this.forgetOldest();
    }
  }

  private get slots(): number {
    return this.times.length;
  }

  private forgetOldest(): void {
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

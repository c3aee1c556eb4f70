/*
 * Kafka's variable-length integers (protobuf's zig-zag varints): records carry their length,
 * deltas, key and value lengths and header counts this way. Values stay plain JS numbers: 32-bit
 * varints with bit operations, the 64-bit ones (timestamp deltas) with arithmetic, exact below 2^53.
 */

/** Bytes the zig-zag varint of `value` takes. */
export function varintSize(value: number): number {
  let unsigned = value >= 0 ? value * 2 : -value * 2 - 1;
  // Lengths and deltas are small: answer those without a loop (this runs several times a record).
  if (unsigned < 0x80) return 1;
  if (unsigned < 0x4000) return 2;
  if (unsigned < 0x20_0000) return 3;
  let size = 1;
  while (unsigned >= 128) {
    unsigned = Math.floor(unsigned / 128);
    size++;
  }
  return size;
}

/** Writes the zig-zag varint of `value` (any safe integer) at `position`; returns the position after it. */
export function writeVarint(buffer: Buffer, value: number, position: number): number {
  let p = position;
  if (value >= -0x4000_0000 && value < 0x4000_0000) {
    let unsigned = ((value << 1) ^ (value >> 31)) >>> 0;
    while (unsigned > 127) {
      buffer[p++] = (unsigned & 127) | 128;
      unsigned >>>= 7;
    }
    buffer[p++] = unsigned;
    return p;
  }
  if (value >= -UNSIGNED_EXACT / 2 && value < UNSIGNED_EXACT / 2) {
    let unsigned = value >= 0 ? value * 2 : -value * 2 - 1;
    while (unsigned > 127) {
      buffer[p++] = (unsigned % 128) | 128;
      unsigned = Math.floor(unsigned / 128);
    }
    buffer[p++] = unsigned;
    return p;
  }
  // Past 2^52 the zig-zag value is past 2^53, where numbers are no longer exact (a timestamp delta
  // between two far-apart dates): BigInt, on this rare path only.
  const big = BigInt(value);
  let unsigned = big >= 0n ? big * 2n : -big * 2n - 1n;
  while (unsigned > 127n) {
    buffer[p++] = Number(unsigned & 127n) | 128;
    unsigned >>= 7n;
  }
  buffer[p++] = Number(unsigned);
  return p;
}

/** Unsigned values below this are exact as numbers. */
const UNSIGNED_EXACT = 2 ** 53;

/** A record batch whose records cannot be read: its bytes are damaged, or not Kafka's. */
export class CorruptRecordsError extends Error {}

/** Reads varints from a buffer, keeping its place; `position` is public so callers can skip bytes. */
export class VarintReader {
  constructor(
    readonly buffer: Buffer,
    public position: number,
    readonly end: number,
  ) {}

  /** A zig-zag varint of up to 64 bits (Kafka's varint and varlong alike), as a number. */
  read(): number {
    const buffer = this.buffer;
    let p = this.position;
    let byte = p < this.end ? buffer[p++]! : -1;
    if (byte < 0) throw new CorruptRecordsError('varint runs past the end of its batch');
    if (byte < 128) {
      this.position = p;
      return byte & 1 ? -((byte + 1) >>> 1) : byte >>> 1;
    }
    const start = this.position;
    let unsigned = byte & 127;
    let scale = 128;
    for (let i = 1; ; i++) {
      if (i >= 10) throw new CorruptRecordsError('varint longer than 10 bytes');
      byte = p < this.end ? buffer[p++]! : -1;
      if (byte < 0) throw new CorruptRecordsError('varint runs past the end of its batch');
      unsigned += (byte & 127) * scale;
      if (byte < 128) break;
      scale *= 128;
    }
    this.position = p;
    if (unsigned >= UNSIGNED_EXACT) return this.readExactly(start, p);
    return unsigned % 2 === 0 ? unsigned / 2 : -(unsigned + 1) / 2;
  }

  /** The varint between `start` and `end`, decoded with BigInt: its zig-zag value is past 2^53. */
  private readExactly(start: number, end: number): number {
    let unsigned = 0n;
    for (let p = end - 1; p >= start; p--) unsigned = (unsigned << 7n) | BigInt(this.buffer[p]! & 127);
    const value = unsigned & 1n ? -((unsigned + 1n) >> 1n) : unsigned >> 1n;
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new CorruptRecordsError('varint past the safe integers (no offset or timestamp delta is so large)');
    }
    return Number(value);
  }
}

// Offsets and millisecond timestamps stay far below 2^53, so they travel as JS numbers and are
// stored as little-endian 64-bit integers written in two 32-bit halves (no BigInt on the hot path).
const TWO_32 = 0x1_0000_0000;

export function writeInt64(buffer: Buffer, value: number, position: number): void {
  const high = Math.floor(value / TWO_32);
  buffer.writeUInt32LE(value - high * TWO_32, position);
  buffer.writeInt32LE(high, position + 4);
}

export function readInt64(buffer: Buffer, position: number): number {
  return buffer.readInt32LE(position + 4) * TWO_32 + buffer.readUInt32LE(position);
}

/** Big-endian, as Kafka's record batches store them. */
export function writeInt64BE(buffer: Buffer, value: number, position: number): void {
  const high = Math.floor(value / TWO_32);
  buffer.writeInt32BE(high, position);
  buffer.writeUInt32BE(value - high * TWO_32, position + 4);
}

export function readInt64BE(buffer: Buffer, position: number): number {
  return buffer.readInt32BE(position) * TWO_32 + buffer.readUInt32BE(position + 4);
}

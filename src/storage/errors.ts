export class OffsetOutOfRangeError extends Error {
  constructor(
    readonly offset: number,
    readonly logStartOffset: number,
    readonly logEndOffset: number,
  ) {
    super(`offset ${offset} is outside the log [${logStartOffset}, ${logEndOffset}]`);
    this.name = 'OffsetOutOfRangeError';
  }
}

/**
 * A stored batch that fails its check when read (its CRC, its length, its offsets): damaged on
 * disk after recovery checked it (bit rot, or a write outside Rill). Never handed to a reader.
 */
export class CorruptBatchError extends Error {
  constructor(
    readonly directory: string,
    /** The offset being read when the damage was found: in the damaged batch, or just before it. */
    readonly baseOffset: number,
  ) {
    super(`${directory}: the stored batch at offset ${baseOffset} is damaged (its CRC32C, length or offsets do not check)`);
    this.name = 'CorruptBatchError';
  }
}

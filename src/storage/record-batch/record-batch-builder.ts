import { writeBatchHeader } from './batch-header.js';
import { BATCH_HEADER_BYTES, MESSAGE_ID_HEADER, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE } from './layout.js';
import { varintSize, writeVarint } from './varint.js';

export type RecordHeaders = ReadonlyArray<readonly [string, string]>;

/** Strings up to this long are tried as ASCII in a loop: cheaper than a call into Buffer.write. */
const SHORT_STRING = 63;

/** The most a varint-prefixed record field's prefix and fixed parts take besides its bytes. */
const MAX_VARINT32 = 5;
const MAX_VARINT64 = 10;

/**
 * Builds one RecordBatch v2 in a growable buffer that can be transferred to another thread. Runs on
 * the gateway thread for every published message, so it writes each field once where it belongs:
 * a length prefix is sized from an upper bound and, in the rare case the real length needs a
 * shorter varint, the bytes after it are moved back.
 */
export class RecordBatchBuilder {
  private buffer: Buffer;
  private position = BATCH_HEADER_BYTES;
  private count = 0;
  private baseTimestamp = 0;
  private maxTimestamp = 0;

  /** Builds into `reuse` when it is large enough (a buffer a worker handed back), else a new one. */
  constructor(initialCapacity = 16 * 1024, reuse?: ArrayBuffer) {
    const capacity = Math.max(initialCapacity, BATCH_HEADER_BYTES);
    this.buffer = Buffer.from(reuse !== undefined && reuse.byteLength >= capacity ? reuse : new ArrayBuffer(capacity));
  }

  get recordCount(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.position;
  }

  /**
   * `messageId` is stored as the record header `message-id`, before the other headers; a null
   * `value` is a tombstone. `offsetDelta`: the record's offset less the batch's (the next one by
   * default; the log cleaner keeps the offsets of the records it keeps, gaps and all).
   */
  append(
    timestamp: number,
    key: string | null,
    messageId: string | null,
    headers: RecordHeaders | null,
    value: Buffer | null,
    offsetDelta: number = this.count,
  ): void {
    if (this.count === 0) {
      this.baseTimestamp = timestamp;
      this.maxTimestamp = timestamp;
    } else if (timestamp > this.maxTimestamp) this.maxTimestamp = timestamp;
    const headerCount = (messageId === null ? 0 : 1) + (headers === null ? 0 : headers.length);
    let bodyBound = 1 + MAX_VARINT64 + MAX_VARINT32 * 3 + (value === null ? 0 : value.length);
    if (key !== null) bodyBound += key.length * 3;
    if (messageId !== null) bodyBound += MAX_VARINT32 * 2 + MESSAGE_ID_HEADER.length + messageId.length * 3;
    if (headers !== null) {
      for (const [name, headerValue] of headers) bodyBound += MAX_VARINT32 * 2 + (name.length + headerValue.length) * 3;
    }
    const lengthBound = varintSize(bodyBound);
    this.ensure(lengthBound + bodyBound);
    const buffer = this.buffer;
    const start = this.position;
    const bodyStart = start + lengthBound;
    let p = bodyStart;
    buffer[p++] = 0; // record attributes: none are defined
    p = writeVarint(buffer, timestamp - this.baseTimestamp, p);
    p = writeVarint(buffer, offsetDelta, p);
    p = key === null ? writeVarint(buffer, -1, p) : writeString(buffer, key, p);
    if (value === null) p = writeVarint(buffer, -1, p);
    else {
      p = writeVarint(buffer, value.length, p);
      value.copy(buffer, p);
      p += value.length;
    }
    p = writeVarint(buffer, headerCount, p);
    if (messageId !== null) {
      for (let i = 0; i < MESSAGE_ID_HEADER_KEY.length; i++) buffer[p++] = MESSAGE_ID_HEADER_KEY[i]!;
      p = writeString(buffer, messageId, p);
    }
    if (headers !== null) {
      for (let i = 0; i < headers.length; i++) {
        const [name, headerValue] = headers[i]!;
        p = writeString(buffer, name, p);
        p = writeString(buffer, headerValue, p);
      }
    }
    const bodyLength = p - bodyStart;
    const lengthSize = varintSize(bodyLength);
    if (lengthSize < lengthBound) {
      buffer.copyWithin(start + lengthSize, bodyStart, p);
      p -= lengthBound - lengthSize;
    }
    writeVarint(buffer, bodyLength, start);
    this.position = p;
    this.count++;
  }

  /**
   * Writes the batch header and hands over the bytes; the builder must not be used after. `span`:
   * the offsets the batch covers, less one, when they are not just its records' (a cleaned batch
   * keeps the offsets of the records it dropped), and the timestamp of a batch left with none.
   */
  finish(span?: { lastOffsetDelta: number; emptyTimestamp: number }): Buffer {
    const buffer = this.buffer;
    const empty = this.count === 0 && span !== undefined;
    writeBatchHeader(buffer, this.position, {
      attributes: 0,
      recordCount: this.count,
      lastOffsetDelta: span?.lastOffsetDelta ?? this.count - 1,
      baseTimestamp: empty ? span.emptyTimestamp : this.baseTimestamp,
      maxTimestamp: empty ? span.emptyTimestamp : this.maxTimestamp,
      producerId: NO_PRODUCER_ID,
      producerEpoch: NO_PRODUCER_EPOCH,
      baseSequence: NO_SEQUENCE,
    });
    return buffer.subarray(0, this.position);
  }

  private ensure(extra: number): void {
    if (this.position + extra <= this.buffer.length) return;
    const grown = Buffer.from(new ArrayBuffer(Math.max(this.buffer.length * 2, this.position + extra)));
    this.buffer.copy(grown, 0, 0, this.position);
    this.buffer = grown;
  }
}

/** The header key `message-id` as a record holds it (varint length, then the bytes), encoded once. */
const MESSAGE_ID_HEADER_KEY = (() => {
  const bytes = Buffer.alloc(1 + MESSAGE_ID_HEADER.length);
  writeString(bytes, MESSAGE_ID_HEADER, 0);
  return bytes;
})();

/**
 * Writes a varint length and the UTF-8 bytes of `text`. The prefix is sized for the most bytes the
 * text can take (3 per UTF-16 unit); when the real length needs fewer, the bytes move back.
 */
function writeString(buffer: Buffer, text: string, position: number): number {
  const length = text.length;
  if (length <= SHORT_STRING) {
    // ASCII (keys and message ids nearly always are): one byte a character, a one-byte prefix.
    let i = 0;
    for (; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) break;
      buffer[position + 1 + i] = code;
    }
    if (i === length) {
      buffer[position] = length << 1;
      return position + 1 + length;
    }
  }
  const prefixBound = varintSize(text.length * 3);
  const written = buffer.write(text, position + prefixBound, 'utf8');
  const prefix = varintSize(written);
  if (prefix < prefixBound) buffer.copyWithin(position + prefix, position + prefixBound, position + prefixBound + written);
  writeVarint(buffer, written, position);
  return position + prefix + written;
}

import { Decoder as ZstdDecoder, Encoder as ZstdEncoder } from '@toondepauw/node-zstd';
import { compressFrameSync, decompressFrameSync } from 'lz4-napi';
import { compressSync as snappyCompressSync, uncompressSync as snappyUncompressSync } from 'snappy';
import { gunzipSync, gzipSync } from 'node:zlib';

/*
 * Compression of a Kafka RecordBatch v2 records section (everything after the records-count field),
 * which Kafka compresses as one blob. Attributes bits 0-2 name the codec. Every function here is
 * synchronous, because the read path and the worker's append path are.
 *
 * - gzip (1): node:zlib, standard gzip (RFC 1952), as Java's GZIPOutputStream, librdkafka and kafkajs
 *   write it. Default level 6, Kafka's default too.
 * - snappy (2): `snappy` (napi-rs, Rust `snap` crate) for raw snappy blocks, plus the framing done
 *   here, since no library does it: the Java client writes snappy-java's stream format (16-byte
 *   header 0x82 'SNAPPY' 0x00, int32 version 1, int32 compatible version 1, then chunks of a
 *   big-endian int32 length and a raw snappy block), while librdkafka and kafkajs-snappy write one
 *   raw snappy block. We read both, like every Kafka client does, and write the snappy-java format
 *   with 32 KiB chunks, byte for byte what the Java producer writes.
 * - lz4 (3): `lz4-napi` (napi-rs, Rust `lz4_flex`) compressFrameSync/decompressFrameSync, the
 *   standard LZ4 frame format that Kafka uses since magic 1 (magic 0's broken header checksum
 *   doesn't apply to v2 batches). We write independent blocks with no checksums, which the Java
 *   consumer requires (it rejects linked blocks); we read any frame: linked or independent blocks,
 *   block and content checksums, content size, 64 KiB to 4 MiB blocks. Bytes after the first frame
 *   are ignored, as Java's reader does.
 * - zstd (4): `@toondepauw/node-zstd` (napi-rs, Rust `zstd` crate over libzstd 1.5) encodeSync/
 *   decodeSync, a standard zstd frame at level 3, Kafka's default. It decodes with zstd's streaming
 *   decoder, so frames without a content size (the Java client's zstd-jni ZstdOutputStream writes
 *   those) and concatenated frames decode; the better-known bindings are either async only
 *   (@mongodb-js/zstd) or compile from source at install time (zstd-napi).
 *
 * All three libraries ship prebuilt binaries as platform packages of the npm registry, so a plain
 * `npm install` needs no compiler or install script. Damaged input raises a CompressionError
 * (the library's message kept as its cause); none of them crashes the process on it.
 */

export type CompressionCodec = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

/** Codecs by their attributes value 0..4. */
export const COMPRESSION_CODECS: readonly CompressionCodec[] = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

const CODEC_ATTRIBUTE_MASK = 0x07;

/** Bad codec bits in a batch's attributes, or a records section that doesn't decompress. */
export class CompressionError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CompressionError';
  }
}

export function codecOfAttributes(attributes: number): CompressionCodec {
  const bits = attributes & CODEC_ATTRIBUTE_MASK;
  const codec = COMPRESSION_CODECS[bits];
  if (codec === undefined) {
    throw new CompressionError(`unknown compression codec ${bits} in batch attributes 0x${attributes.toString(16)}`);
  }
  return codec;
}

export function codecAttributeBits(codec: CompressionCodec): number {
  const bits = COMPRESSION_CODECS.indexOf(codec);
  if (bits < 0) throw new CompressionError(`unknown compression codec '${String(codec)}'`);
  return bits;
}

const ZSTD_LEVEL = 3;
const zstdEncoder = new ZstdEncoder(ZSTD_LEVEL);
const zstdDecoder = new ZstdDecoder();

export function compressRecords(codec: CompressionCodec, records: Buffer): Buffer {
  switch (codec) {
    case 'none':
      return records;
    case 'gzip':
      return gzipSync(records);
    case 'snappy':
      return snappyJavaCompress(records);
    case 'lz4':
      return compressFrameSync(records);
    case 'zstd':
      return zstdEncoder.encodeSync(records);
  }
}

export function decompressRecords(codec: CompressionCodec, compressed: Buffer): Buffer {
  if (codec === 'none') return compressed;
  // No codec writes an empty stream; lz4-napi would read one as an empty frame.
  if (compressed.length === 0) throw new CompressionError(`cannot decompress ${codec} records: the compressed section is empty`);
  try {
    switch (codec) {
      case 'gzip':
        return gunzipSync(compressed);
      case 'snappy':
        return hasSnappyJavaHeader(compressed) ? snappyJavaDecompress(compressed) : snappyRawDecompress(compressed);
      case 'lz4':
        return decompressFrameSync(compressed);
      case 'zstd':
        return zstdDecoder.decodeSync(compressed);
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new CompressionError(`cannot decompress ${codec} records (${compressed.length} bytes): ${reason}`, { cause: error });
  }
}

const SNAPPY_JAVA_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const SNAPPY_JAVA_HEADER = Buffer.concat([SNAPPY_JAVA_MAGIC, Buffer.from([0, 0, 0, 1, 0, 0, 0, 1])]);
/** snappy-java's SnappyOutputStream default block size, which Kafka's producer uses. */
const SNAPPY_JAVA_CHUNK_BYTES = 32 * 1024;
const CHUNK_LENGTH_BYTES = 4;

function hasSnappyJavaHeader(compressed: Buffer): boolean {
  return compressed.length >= SNAPPY_JAVA_MAGIC.length && SNAPPY_JAVA_MAGIC.equals(compressed.subarray(0, SNAPPY_JAVA_MAGIC.length));
}

function snappyJavaCompress(records: Buffer): Buffer {
  const parts: Buffer[] = [SNAPPY_JAVA_HEADER];
  // Always at least one chunk: librdkafka reads a bare header as raw snappy and fails.
  let offset = 0;
  do {
    const block = snappyCompressSync(records.subarray(offset, offset + SNAPPY_JAVA_CHUNK_BYTES));
    const length = Buffer.allocUnsafe(CHUNK_LENGTH_BYTES);
    length.writeUInt32BE(block.length, 0);
    parts.push(length, block);
    offset += SNAPPY_JAVA_CHUNK_BYTES;
  } while (offset < records.length);
  return Buffer.concat(parts);
}

function snappyJavaDecompress(compressed: Buffer): Buffer {
  if (compressed.length < SNAPPY_JAVA_HEADER.length) throw new Error('snappy-java header is truncated');
  const parts: Buffer[] = [];
  let offset = SNAPPY_JAVA_HEADER.length;
  while (offset < compressed.length) {
    if (compressed.length - offset < CHUNK_LENGTH_BYTES) throw new Error(`snappy-java chunk length at byte ${offset} is truncated`);
    const length = compressed.readUInt32BE(offset);
    offset += CHUNK_LENGTH_BYTES;
    if (length > compressed.length - offset) {
      throw new Error(`snappy-java chunk at byte ${offset} claims ${length} bytes, ${compressed.length - offset} remain`);
    }
    parts.push(snappyRawDecompress(compressed.subarray(offset, offset + length)));
    offset += length;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function snappyRawDecompress(block: Buffer): Buffer {
  const out = snappyUncompressSync(block, { asBuffer: true });
  return typeof out === 'string' ? Buffer.from(out) : out;
}

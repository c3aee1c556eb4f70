import { readBatchInfo } from './batch-header.js';
import { codecAttributeBits, compressRecords, type CompressionCodec } from './compression.js';
import { BATCH_HEADER_BYTES, BATCH_LENGTH_PREFIX, COMPRESSION_MASK, OFFSET_OF_ATTRIBUTES, OFFSET_OF_LENGTH } from './layout.js';

/**
 * The batch with its records compressed by `codec` as one block (Kafka's layout: the header stays
 * as it is, the attributes name the codec). A batch that is compressed already, or would not shrink,
 * is returned as it is. The CRC is left for the log to stamp.
 */
export function compressBatch(batch: Buffer, codec: CompressionCodec): Buffer {
  if (codec === 'none') return batch;
  const info = readBatchInfo(batch);
  if ((info.attributes & COMPRESSION_MASK) !== 0) return batch;
  const compressed = compressRecords(codec, batch.subarray(BATCH_HEADER_BYTES, info.size));
  if (BATCH_HEADER_BYTES + compressed.length >= info.size) return batch;
  const result = Buffer.allocUnsafe(BATCH_HEADER_BYTES + compressed.length);
  batch.copy(result, 0, 0, BATCH_HEADER_BYTES);
  compressed.copy(result, BATCH_HEADER_BYTES);
  result.writeInt32BE(result.length - BATCH_LENGTH_PREFIX, OFFSET_OF_LENGTH);
  result.writeInt16BE(info.attributes | codecAttributeBits(codec), OFFSET_OF_ATTRIBUTES);
  return result;
}

export { BATCH_HEADER_BYTES, MESSAGE_ID_HEADER } from './layout.js';
export {
  claimedBatchSize,
  isBatchValid,
  isControlBatch,
  offsetAfter,
  readBatchInfo,
  readBatchProducer,
  setBaseOffset,
  setBatchProducer,
  setTransactional,
  stampBatch,
  type BatchInfo,
  type BatchProducer,
} from './batch-header.js';
export { RecordBatchBuilder, type RecordHeaders } from './record-batch-builder.js';
export { forEachMessageId, forEachRecord, type StoredRecord } from './records.js';
export { CorruptRecordsError } from './varint.js';
export { buildControlBatch, readControlMarker, type ControlMarker, type ControlType } from './control-batch.js';
export { compressRecords, decompressRecords, type CompressionCodec } from './compression.js';
export { compressBatch } from './compressed-batch.js';

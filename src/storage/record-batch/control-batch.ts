import { crc32c } from '@node-rs/crc32';
import { readInt64BE } from '../int64.js';
import { isControlBatch, readBatchInfo, writeBatchHeader } from './batch-header.js';
import {
  BATCH_HEADER_BYTES,
  CONTROL_FLAG,
  NO_SEQUENCE,
  OFFSET_OF_ATTRIBUTES,
  OFFSET_OF_CRC,
  OFFSET_OF_PRODUCER_EPOCH,
  OFFSET_OF_PRODUCER_ID,
  TRANSACTIONAL_FLAG,
} from './layout.js';
import { CorruptRecordsError, VarintReader, writeVarint } from './varint.js';

/** Kafka's control record types: the end of a transaction, aborted or committed. */
export type ControlType = 'abort' | 'commit';

export interface ControlMarker {
  type: ControlType;
  producerId: number;
  producerEpoch: number;
  /** The transaction coordinator's epoch when it wrote the marker. */
  coordinatorEpoch: number;
  timestamp: number;
}

const CONTROL_TYPES: readonly ControlType[] = ['abort', 'commit'];
/** Key: version int16 + type int16; value: version int16 + coordinatorEpoch int32 (Kafka's EndTransactionMarker). */
const CONTROL_KEY_BYTES = 4;
const CONTROL_VALUE_BYTES = 6;

/**
 * A control batch holding one transaction marker, laid out as Kafka's: transactional and control
 * attributes, the producer's id and epoch, sequence -1, one record whose key names the marker
 * and whose value carries the coordinator's epoch. Its base offset is 0 until the log stamps it.
 */
export function buildControlBatch(marker: ControlMarker): Buffer {
  const record = Buffer.alloc(32);
  let p = 1; // record length varint, written last (the record is always under 64 bytes: one byte)
  record[p++] = 0; // attributes
  p = writeVarint(record, 0, p); // timestamp delta
  p = writeVarint(record, 0, p); // offset delta
  p = writeVarint(record, CONTROL_KEY_BYTES, p);
  record.writeInt16BE(0, p);
  record.writeInt16BE(CONTROL_TYPES.indexOf(marker.type), p + 2);
  p += CONTROL_KEY_BYTES;
  p = writeVarint(record, CONTROL_VALUE_BYTES, p);
  record.writeInt16BE(0, p);
  record.writeInt32BE(marker.coordinatorEpoch, p + 2);
  p += CONTROL_VALUE_BYTES;
  p = writeVarint(record, 0, p); // no headers
  writeVarint(record, p - 1, 0);

  const batch = Buffer.alloc(BATCH_HEADER_BYTES + p);
  writeBatchHeader(batch, batch.length, {
    attributes: TRANSACTIONAL_FLAG | CONTROL_FLAG,
    recordCount: 1,
    lastOffsetDelta: 0,
    baseTimestamp: marker.timestamp,
    maxTimestamp: marker.timestamp,
    producerId: marker.producerId,
    producerEpoch: marker.producerEpoch,
    baseSequence: NO_SEQUENCE,
  });
  record.copy(batch, BATCH_HEADER_BYTES, 0, p);
  batch.writeUInt32BE(crc32c(batch.subarray(OFFSET_OF_ATTRIBUTES)), OFFSET_OF_CRC);
  return batch;
}

/** The marker a control batch at `position` carries, or null if it is not a control batch or not a marker Rill knows. */
export function readControlMarker(buffer: Buffer, position = 0): ControlMarker | null {
  try {
    return readMarker(buffer, position);
  } catch (error) {
    // Its record runs past the batch: not a marker Rill can read.
    if (error instanceof CorruptRecordsError) return null;
    throw error;
  }
}

function readMarker(buffer: Buffer, position: number): ControlMarker | null {
  const info = readBatchInfo(buffer, position);
  if (!isControlBatch(info.attributes) || info.recordCount < 1) return null;
  const reader = new VarintReader(buffer, position + BATCH_HEADER_BYTES, position + info.size);
  const length = reader.read();
  const recordEnd = reader.position + length;
  reader.position++; // attributes
  reader.read(); // timestamp delta
  reader.read(); // offset delta
  const keyLength = reader.read();
  if (keyLength < CONTROL_KEY_BYTES || reader.position + keyLength > recordEnd) return null;
  const type = CONTROL_TYPES[buffer.readInt16BE(reader.position + 2)];
  reader.position += keyLength;
  const valueLength = reader.read();
  if (type === undefined || valueLength < CONTROL_VALUE_BYTES || reader.position + valueLength > recordEnd) return null;
  return {
    type,
    producerId: readInt64BE(buffer, position + OFFSET_OF_PRODUCER_ID),
    producerEpoch: buffer.readInt16BE(position + OFFSET_OF_PRODUCER_EPOCH),
    coordinatorEpoch: buffer.readInt32BE(reader.position + 2),
    timestamp: info.maxTimestamp,
  };
}

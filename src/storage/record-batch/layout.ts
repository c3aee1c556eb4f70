/*
 * Kafka's RecordBatch v2 (magic 2), byte for byte, as Kafka's protocol guide defines it. Every
 * integer is big-endian.
 *
 *   0 baseOffset int64            set by the partition log when it appends
 *   8 batchLength int32           bytes after this field
 *  12 partitionLeaderEpoch int32  0: one broker leads every partition it has
 *  16 magic int8 = 2
 *  17 crc uint32                  CRC32C of bytes 21..end (attributes to the last record)
 *  21 attributes int16            bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
 *  23 lastOffsetDelta int32       offsets the batch spans, less one
 *  27 baseTimestamp int64         the first record's timestamp; records carry deltas from it
 *  35 maxTimestamp int64
 *  43 producerId int64            -1 without an idempotent producer
 *  51 producerEpoch int16         -1 likewise
 *  53 baseSequence int32          -1 likewise
 *  57 recordCount int32
 *  61 records (compressed as one block when bits 0-2 of attributes say so)
 *
 * A record: length varint (bytes after it), attributes int8 (0), timestampDelta varlong,
 * offsetDelta varint, keyLength varint (-1: null) + key, valueLength varint (-1: null) + value,
 * headerCount varint, then per header keyLength varint + key (UTF-8), valueLength varint + value.
 */
export const BATCH_HEADER_BYTES = 61;
export const BATCH_MAGIC = 2;

export const OFFSET_OF_LENGTH = 8;
export const OFFSET_OF_LEADER_EPOCH = 12;
export const OFFSET_OF_MAGIC = 16;
export const OFFSET_OF_CRC = 17;
export const OFFSET_OF_ATTRIBUTES = 21;
export const OFFSET_OF_LAST_OFFSET_DELTA = 23;
export const OFFSET_OF_BASE_TIMESTAMP = 27;
export const OFFSET_OF_MAX_TIMESTAMP = 35;
export const OFFSET_OF_PRODUCER_ID = 43;
export const OFFSET_OF_PRODUCER_EPOCH = 51;
export const OFFSET_OF_BASE_SEQUENCE = 53;
export const OFFSET_OF_RECORD_COUNT = 57;
/** Bytes before batchLength's count starts (baseOffset and batchLength itself). */
export const BATCH_LENGTH_PREFIX = 12;

export const COMPRESSION_MASK = 0x07;
export const TRANSACTIONAL_FLAG = 0x10;
export const CONTROL_FLAG = 0x20;

/** producerId, producerEpoch and baseSequence of a batch written without an idempotent producer. */
export const NO_PRODUCER_ID = -1;
export const NO_PRODUCER_EPOCH = -1;
export const NO_SEQUENCE = -1;

/**
 * The record header that carries a message's messageID. STOMP's own name for it: a SEND's
 * `message-id` header sets it, so no other header a producer sends can have this name.
 */
export const MESSAGE_ID_HEADER = 'message-id';

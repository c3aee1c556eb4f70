// The parts of kafkajs's protocol code (plain CommonJS, untyped) that the Kafka interop tests load
// with createRequire: its RecordBatch v2 encoder and decoder, and what they take and give.

declare module 'kafkajs/src/protocol/decoder.js' {
  /** A cursor over a buffer of big-endian Kafka fields. */
  class Decoder {
    constructor(buffer: Buffer);
    readonly buffer: Buffer;
    offset: number;
  }
  export = Decoder;
}

declare module 'kafkajs/src/protocol/encoder.js' {
  class Encoder {
    /** The bytes written so far. */
    readonly buffer: Buffer;
    size(): number;
  }
  export = Encoder;
}

declare module 'kafkajs/src/protocol/recordBatch/record/v0/index.js' {
  import type Encoder = require('kafkajs/src/protocol/encoder.js');

  /** A header repeated under one name is given as an array of its values. */
  type RecordHeaders = Record<string, string | Buffer | Array<string | Buffer>>;

  function Record(record: {
    offsetDelta?: number;
    timestampDelta?: number;
    key: string | Buffer | null;
    value: string | Buffer | null;
    headers?: RecordHeaders;
  }): Encoder;
  export = Record;
}

declare module 'kafkajs/src/protocol/recordBatch/v0/index.js' {
  import type Encoder = require('kafkajs/src/protocol/encoder.js');

  /** Encodes a whole batch: baseOffset, batchLength and the rest, CRC included (computed over attributes to the end). */
  export function RecordBatch(batch: {
    /** 0 none, 1 gzip (built in); 2-4 need codec plugins. */
    compression?: number;
    firstOffset?: number | string;
    firstTimestamp?: number;
    maxTimestamp?: number;
    partitionLeaderEpoch?: number;
    lastOffsetDelta?: number;
    transactional?: boolean;
    producerId?: number | string;
    producerEpoch?: number;
    firstSequence?: number;
    records: Encoder[];
  }): Promise<Encoder>;
  export const MAGIC_BYTE: number;
}

declare module 'kafkajs/src/protocol/recordBatch/v0/decoder.js' {
  import type Decoder = require('kafkajs/src/protocol/decoder.js');

  namespace decodeRecordBatch {
    /** 64-bit fields come back as decimal strings. */
    interface DecodedBatch {
      firstOffset: string;
      firstTimestamp: string;
      partitionLeaderEpoch: number;
      inTransaction: boolean;
      isControlBatch: boolean;
      lastOffsetDelta: number;
      producerId: string;
      producerEpoch: number;
      firstSequence: number;
      maxTimestamp: string;
      /** 0 CreateTime, 1 LogAppendTime. */
      timestampType: number;
      records: DecodedRecord[];
    }
    interface DecodedRecord {
      magicByte: number;
      attributes: number;
      timestamp: string;
      offset: string;
      key: Buffer | null;
      value: Buffer | null;
      /** A header repeated under one name comes back as an array of its values. */
      headers: Record<string, Buffer | Buffer[]>;
      isControlRecord: boolean;
    }
  }
  /** Decodes the batch at the decoder's position and moves the decoder past it. Does not check the CRC. */
  function decodeRecordBatch(decoder: Decoder): Promise<decodeRecordBatch.DecodedBatch>;
  export = decodeRecordBatch;
}

declare module 'kafkajs/src/protocol/recordBatch/crc32C/index.js' {
  /** kafkajs's own CRC32C (Castagnoli), in plain JavaScript. */
  function crc32C(buffer: Buffer): number;
  export = crc32C;
}

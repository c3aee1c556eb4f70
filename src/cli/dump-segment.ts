import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { crc32c } from '@node-rs/crc32';
import {
  BATCH_HEADER_BYTES,
  claimedBatchSize,
  forEachRecord,
  isBatchValid,
  isControlBatch,
  readBatchInfo,
  readBatchProducer,
  readControlMarker,
  type BatchInfo,
  type CompressionCodec,
} from '../storage/index.js';

const USAGE = 'usage: rill dump-segment FILE [--records] [--from-offset N]';
/** Read this much of the file at a time: a segment can be 1 GiB, and the dump must not hold it in memory. */
const CHUNK_BYTES = 1024 * 1024;
/** Lines are written in blocks this large, waiting for stdout to drain between them. */
const OUTPUT_BLOCK_BYTES = 64 * 1024;

/*
 * The header fields the storage API does not hand out (it needs only what it reads): their
 * places in Kafka's RecordBatch v2, as docs/storage.md lays them out.
 */
const OFFSET_OF_LEADER_EPOCH = 12;
const OFFSET_OF_MAGIC = 16;
const OFFSET_OF_CRC = 17;
/** The CRC32C covers the batch from its attributes to its end. */
const OFFSET_OF_ATTRIBUTES = 21;
const OFFSET_OF_BASE_TIMESTAMP = 27;
const MAGIC_V2 = 2;
/** Attributes bits 0-2: Kafka's codec ids. */
const CODECS: readonly CompressionCodec[] = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
const COMPRESSION_MASK = 0x07;
const LOG_APPEND_TIME_FLAG = 0x08;

/** A segment file name: the 20-digit offset of its first batch, as Kafka names them. */
const SEGMENT_NAME = /^(\d{20})\.log$/;

/** `rill dump-segment FILE`: prints a segment's batches and records as JSON lines, as Kafka's kafka-dump-log does. */
export async function runDumpSegment(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        records: { type: 'boolean', default: false },
        'from-offset': { type: 'string' },
      },
      strict: true,
    });
  } catch (error) {
    process.stderr.write(`rill dump-segment: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    process.stderr.write(`rill dump-segment: name one segment file, e.g. data/topics/orders/0/00000000000000000000.log\n${USAGE}\n`);
    return 2;
  }
  const fromOffsetFlag = values['from-offset'];
  if (fromOffsetFlag !== undefined && !/^\d+$/.test(fromOffsetFlag)) {
    process.stderr.write(`rill dump-segment: --from-offset takes an offset (a whole number), not "${fromOffsetFlag}"\n`);
    return 2;
  }
  const file = positionals[0]!;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (error) {
    process.stderr.write(`rill dump-segment: cannot open ${file}: ${describeError(error)}\n`);
    return 1;
  }
  const output = new LineWriter();
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) {
      process.stderr.write(`rill dump-segment: ${file} is not a file\n`);
      return 1;
    }
    const named = SEGMENT_NAME.exec(path.basename(file));
    const dump = new SegmentDump(new ChunkedFile(fd, stat.size), output, {
      records: values.records,
      fromOffset: fromOffsetFlag === undefined ? 0 : Number(fromOffsetFlag),
      expectedBaseOffset: named === null ? null : Number(named[1]),
    });
    const stop = await dump.run();
    if (stop !== null) process.stderr.write(`rill dump-segment: ${file}: ${stop}\n`);
    await output.end();
    return 0;
  } catch (error) {
    await output.end();
    if (output.closed) return 0; // stdout went away (piped into `head`): not an error of the dump
    process.stderr.write(`rill dump-segment: cannot read ${file}: ${describeError(error)}\n`);
    return 1;
  } finally {
    fs.closeSync(fd);
  }
}

interface DumpOptions {
  records: boolean;
  fromOffset: number;
  /** The base offset the file's name gives, or null when it is not named as a segment. */
  expectedBaseOffset: number | null;
}

/** Walks the batches of one segment as recovery does, printing each, and stops where recovery would cut the file. */
class SegmentDump {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly file: ChunkedFile,
    private readonly output: LineWriter,
    private readonly options: DumpOptions,
  ) {}

  /** Returns null when the whole file is intact, else why the dump stopped (also printed as the last line). */
  async run(): Promise<string | null> {
    const { file, output, options } = this;
    let position = 0;
    let batches = 0;
    let expected = options.expectedBaseOffset;
    while (position < file.size) {
      if (output.closed) return null;
      const left = file.size - position;
      if (left < BATCH_HEADER_BYTES) return this.stop(position, expected, `torn batch: ${left} bytes left, fewer than a batch header (${BATCH_HEADER_BYTES})`);
      const header = file.bytes(position, BATCH_HEADER_BYTES);
      const info = readBatchInfo(header);
      const magic = header[OFFSET_OF_MAGIC]!;
      if (magic !== MAGIC_V2) {
        return this.stop(
          position,
          expected,
          `magic ${magic}, not a RecordBatch v2 (2)${position === 0 ? ': a segment of Rill before 0.2? `rill migrate` converts a data directory' : ''}`,
        );
      }
      const size = claimedBatchSize(header, 0);
      if (size < 0) return this.stop(position, expected, 'corrupt batch: its length field claims fewer bytes than a batch header');
      if (size > left) return this.stop(position, expected, `torn batch: it claims ${size} bytes, the file has ${left} left`);
      if (expected !== null && info.baseOffset !== expected) {
        return this.stop(position, expected, `offsets out of sequence: the batch starts at offset ${info.baseOffset}, the previous one ended at ${expected}`);
      }
      const skipped = info.nextOffset <= options.fromOffset;
      // Batches before --from-offset are only stepped over: their header is enough (a 1 GiB segment stays quick).
      if (!skipped) {
        const batch = file.bytes(position, size);
        const line = batchLine(batch, info, position);
        await output.line(line);
        if (!line.valid) {
          const reason = line.crcValid
            ? 'corrupt batch: impossible attributes or counts'
            : `corrupt batch: CRC32C ${line.crc} stored, ${line.computedCrc} computed`;
          return this.stop(position, expected, reason);
        }
        if (options.records) {
          const damage = await this.records(batch, info);
          if (damage !== null) return this.stop(position, expected, damage);
        }
      }
      batches++;
      expected = info.nextOffset;
      position += size;
    }
    await output.line({ type: 'end', position, nextOffset: expected, batches });
    return null;
  }

  /** Prints the records of a batch known to be intact; returns why they could not be read, if they could not. */
  private async records(batch: Buffer, info: BatchInfo): Promise<string | null> {
    if (isControlBatch(info.attributes)) {
      const marker = readControlMarker(batch, 0);
      await this.output.line(
        marker === null
          ? { type: 'control', offset: info.baseOffset, marker: 'unknown' }
          : {
              type: 'control',
              offset: info.baseOffset,
              timestamp: marker.timestamp,
              marker: marker.type,
              coordinatorEpoch: marker.coordinatorEpoch,
              producerId: marker.producerId,
              producerEpoch: marker.producerEpoch,
            },
      );
      return null;
    }
    const lines: object[] = [];
    try {
      forEachRecord(batch, this.options.fromOffset, (record) => {
        lines.push({
          type: 'record',
          offset: record.offset,
          timestamp: record.timestamp,
          key: record.key,
          messageId: record.messageId,
          headers: record.headers,
          ...this.value(record.value),
        });
      });
    } catch (error) {
      // The batch is read alone, so whatever stops its reader is in its bytes (a CorruptRecordsError,
      // or anything else the reader failed to foresee): reported as damage, not as a failed dump.
      for (const line of lines) await this.output.line(line);
      return `corrupt records: ${error instanceof Error ? error.message : String(error)}`;
    }
    for (const line of lines) await this.output.line(line);
    return null;
  }

  /** The value as text when it is UTF-8 (STOMP bodies mostly are), else as base64, saying which. */
  private value(bytes: Buffer): { value: string; valueEncoding: 'utf8' | 'base64' } {
    try {
      return { value: this.decoder.decode(bytes), valueEncoding: 'utf8' };
    } catch {
      return { value: bytes.toString('base64'), valueEncoding: 'base64' };
    }
  }

  private async stop(position: number, nextOffset: number | null, reason: string): Promise<string> {
    await this.output.line({ type: 'stop', position, nextOffset, reason });
    return `${reason}, at byte ${position}`;
  }
}

interface BatchLine {
  type: 'batch';
  baseOffset: number;
  lastOffset: number;
  count: number;
  position: number;
  size: number;
  magic: number;
  crc: number;
  computedCrc: number;
  crcValid: boolean;
  /** What recovery checks: the CRC, a known codec, counts that fit the offsets. */
  valid: boolean;
  compression: CompressionCodec | `unknown (${number})`;
  timestampType: 'CreateTime' | 'LogAppendTime';
  transactional: boolean;
  control: boolean;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  partitionLeaderEpoch: number;
  baseTimestamp: number;
  maxTimestamp: number;
}

function batchLine(batch: Buffer, info: BatchInfo, position: number): BatchLine {
  const crc = batch.readUInt32BE(OFFSET_OF_CRC);
  const computedCrc = crc32c(batch.subarray(OFFSET_OF_ATTRIBUTES));
  const producer = readBatchProducer(batch, 0);
  const codecId = info.attributes & COMPRESSION_MASK;
  return {
    type: 'batch',
    baseOffset: info.baseOffset,
    lastOffset: info.nextOffset - 1,
    count: info.recordCount,
    position,
    size: batch.length,
    magic: batch[OFFSET_OF_MAGIC]!,
    crc,
    computedCrc,
    crcValid: crc === computedCrc,
    valid: isBatchValid(batch, 0, batch.length),
    compression: CODECS[codecId] ?? `unknown (${codecId})`,
    timestampType: (info.attributes & LOG_APPEND_TIME_FLAG) !== 0 ? 'LogAppendTime' : 'CreateTime',
    transactional: producer.transactional,
    control: isControlBatch(info.attributes),
    producerId: producer.producerId,
    producerEpoch: producer.producerEpoch,
    baseSequence: producer.baseSequence,
    partitionLeaderEpoch: batch.readInt32BE(OFFSET_OF_LEADER_EPOCH),
    baseTimestamp: Number(batch.readBigInt64BE(OFFSET_OF_BASE_TIMESTAMP)),
    maxTimestamp: info.maxTimestamp,
  };
}

/** Reads a file through one buffer of CHUNK_BYTES (larger only for a larger batch). */
class ChunkedFile {
  private chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  private chunkStart = 0;
  private chunkLength = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}

  /** `length` bytes from `position` (the caller checked they are in the file); valid until the next call. */
  bytes(position: number, length: number): Buffer {
    if (position < this.chunkStart || position + length > this.chunkStart + this.chunkLength) {
      if (length > this.chunk.length) this.chunk = Buffer.allocUnsafe(length);
      this.chunkStart = position;
      this.chunkLength = 0;
      const want = Math.min(this.chunk.length, this.size - position);
      while (this.chunkLength < want) {
        const read = fs.readSync(this.fd, this.chunk, this.chunkLength, want - this.chunkLength, position + this.chunkLength);
        if (read === 0) throw new Error(`the file ended at byte ${position + this.chunkLength} while it was being read (it shrank?)`);
        this.chunkLength += read;
      }
    }
    const at = position - this.chunkStart;
    return this.chunk.subarray(at, at + length);
  }
}

/** JSON lines to stdout in blocks, waiting for it to drain: a dump of a whole segment is large. */
class LineWriter {
  private pending: string[] = [];
  private pendingBytes = 0;
  closed = false;

  constructor() {
    // EPIPE when the reader went away (`| head`): stop writing, quietly.
    process.stdout.on('error', () => {
      this.closed = true;
    });
  }

  async line(value: object): Promise<void> {
    if (this.closed) return;
    const text = `${JSON.stringify(value)}\n`;
    this.pending.push(text);
    this.pendingBytes += text.length;
    if (this.pendingBytes >= OUTPUT_BLOCK_BYTES) await this.flush();
  }

  async end(): Promise<void> {
    await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0 || this.closed) return;
    const block = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    if (!process.stdout.write(block)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          process.stdout.off('drain', done);
          process.stdout.off('error', done);
          resolve();
        };
        process.stdout.once('drain', done);
        process.stdout.once('error', done);
      });
    }
  }
}

function describeError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  return error instanceof Error ? error.message : String(error);
}

import { crc32c } from '@node-rs/crc32';
import fs from 'node:fs';
import path from 'node:path';
import { forEachRecord, PartitionLog, type LogConfig } from '../../src/storage/index.js';
import { RecordBatchBuilder, stampBatch } from '../../src/storage/migration/legacy-batch.js';

/*
 * Data directories as Rill wrote them before 0.2 (its own little-endian record format), for the
 * migration's tests: topics, partitions and segments, journals holding what a crash took from the
 * segments, torn tails. Each partition knows which records a migration must give back.
 */

/** A record as the tests compare them: every field, the value as hex. */
export interface ExpectedRecord {
  offset: number;
  timestamp: number;
  key: string | null;
  messageId: string | null;
  headers: Array<[string, string]>;
  value: string;
}

type RecordFields = Omit<ExpectedRecord, 'offset'>;

/** Deterministic and varied: null and empty keys and IDs, 0 to 2 headers (some not ASCII), binary and empty values, timestamps that step back now and then. */
function recordFields(seed: string, index: number, valueBytes: number): RecordFields {
  const value = Buffer.alloc(index % 11 === 0 ? 0 : valueBytes);
  for (let i = 0; i < value.length; i++) value[i] = (index * 31 + i * 7 + seed.length) & 0xff;
  const headers: Array<[string, string]> = [];
  for (let h = 0; h < index % 3; h++) headers.push([`h${h}`, h === 1 ? `é-${seed}-${index}` : `${index}`]);
  return {
    timestamp: 1_700_000_000_000 + index * 5 - (index % 7 === 3 ? 20 : 0),
    key: index % 5 === 0 ? null : index % 5 === 1 ? '' : `key-${index % 13}`,
    messageId: index % 4 === 0 ? null : `${seed}-m${index}`,
    headers,
    value: value.toString('hex'),
  };
}

/** One legacy batch of `records`, stamped at `baseOffset`. */
function legacyBatch(records: RecordFields[], baseOffset: number): Buffer {
  const builder = new RecordBatchBuilder(256);
  for (const r of records) builder.append(r.timestamp, r.key, r.messageId, r.headers, Buffer.from(r.value, 'hex'));
  const batch = Buffer.from(builder.finish());
  stampBatch(batch, baseOffset);
  return batch;
}

/** A journal record of the old format (src/storage/journal/journal-record.ts before 0.2). */
function legacyJournalRecord(key: string, batch: Buffer, sequence: number): Buffer {
  const keyBytes = Buffer.from(key, 'utf8');
  const record = Buffer.alloc(14 + keyBytes.length + batch.length);
  record.writeUInt32LE(record.length, 0);
  record.writeUInt32LE(sequence >>> 0, 8);
  record.writeUInt16LE(keyBytes.length, 12);
  keyBytes.copy(record, 14);
  batch.copy(record, 14 + keyBytes.length);
  // The record's CRC covers its sequence to the batch's own CRC, included (batch bytes 0 to 16).
  record.writeUInt32LE(crc32c(record.subarray(8, 14 + keyBytes.length + 16)), 4);
  return record;
}

export interface JournaledBatch {
  key: string;
  batch: Buffer;
}

/**
 * One partition of a legacy data directory, written as a broker before 0.2 would have left it.
 * `expected` is what a correct migration gives back, in offset order.
 */
export class LegacyPartition {
  readonly key: string;
  readonly directory: string;
  readonly expected: ExpectedRecord[] = [];
  nextOffset: number;
  private readonly segments: Array<{ baseOffset: number; bytes: Buffer[] }> = [];
  private written = 0;
  /** The end of the batches appended to the segments: a checkpoint made them durable, so the recovery point is here. */
  private checkpointedEnd: number;
  private closedClean = false;
  /** Bytes of the batches the migration must cut off (`unacknowledged`). */
  cutBytes = 0;

  constructor(
    readonly dataDir: string,
    readonly topic: string,
    readonly partition: number,
    startOffset = 0,
  ) {
    this.key = path.join('topics', topic, String(partition));
    this.directory = path.join(dataDir, this.key);
    this.nextOffset = startOffset;
    this.checkpointedEnd = startOffset;
    this.segments.push({ baseOffset: startOffset, bytes: [] });
  }

  private makeBatch(records: number, valueBytes: number): { batch: Buffer; records: ExpectedRecord[] } {
    const fields = Array.from({ length: records }, () => recordFields(this.key, this.written++, valueBytes));
    const batch = legacyBatch(fields, this.nextOffset);
    const stored = fields.map((f, i) => ({ offset: this.nextOffset + i, ...f }));
    return { batch, records: stored };
  }

  /** A batch the segment holds (and returns it, for a journal that holds it too). */
  append(records: number, valueBytes = 40): Buffer {
    const { batch, records: stored } = this.makeBatch(records, valueBytes);
    this.segments.at(-1)!.bytes.push(batch);
    this.expected.push(...stored);
    this.nextOffset += records;
    this.checkpointedEnd = this.nextOffset;
    return batch;
  }

  /**
   * A batch the segment holds past the recovery point that no journal holds: written, never made
   * durable, so never acknowledged (its producer sent it again). The old start-up cut it off after
   * a crash, and so must the migration. The last thing written to the partition.
   */
  unacknowledged(records: number): void {
    const { batch } = this.makeBatch(records, 40);
    this.segments.at(-1)!.bytes.push(batch);
    this.cutBytes += batch.length;
  }

  /** The partition was closed cleanly (the marker, no crash): everything in its segments was acknowledged. */
  closeCleanly(): void {
    this.closedClean = true;
  }

  /** A new segment starts at the log's end. */
  roll(): void {
    this.segments.push({ baseOffset: this.nextOffset, bytes: [] });
  }

  /** A batch the segment lost in a crash but the journal holds: it must come back. */
  lost(records: number, valueBytes = 40): Buffer {
    const { batch, records: stored } = this.makeBatch(records, valueBytes);
    this.expected.push(...stored);
    this.nextOffset += records;
    return batch;
  }

  /** A batch that never made it anywhere intact: `keep` bytes of it end the segment (a torn write); its records must not come back. */
  tornTail(keep: number): void {
    const { batch } = this.makeBatch(3, 40);
    this.segments.at(-1)!.bytes.push(batch.subarray(0, keep));
  }

  /** A journal batch whose body is damaged (its record header intact): neither it nor what follows in its journal file may come back. */
  damaged(records: number): Buffer {
    const { batch } = this.makeBatch(records, 40);
    batch[batch.length - 1]! ^= 0xff;
    return batch;
  }

  /** A journal batch at the log's end that must not come back (after a damaged batch of its file, or past a gap in its journal). */
  notKept(records: number): Buffer {
    return this.makeBatch(records, 40).batch;
  }

  /** A journal batch that does not continue the log (offsets skipped): the rest of its journal for this partition is dropped. */
  beyondGap(skip: number): Buffer {
    const saved = this.nextOffset;
    this.nextOffset += skip;
    const { batch } = this.makeBatch(2, 40);
    this.nextOffset = saved;
    return batch;
  }

  /** Writes the segment files (with a legacy index beside each, which the migration must not keep), and a recovery point (or the clean-shutdown marker). */
  write(): void {
    fs.mkdirSync(this.directory, { recursive: true });
    for (const { baseOffset, bytes } of this.segments) {
      const base = path.join(this.directory, String(baseOffset).padStart(20, '0'));
      fs.writeFileSync(`${base}.log`, Buffer.concat(bytes));
      // Positions into the legacy file: wrong for the converted one.
      const index = Buffer.alloc(8);
      index.writeInt32LE(1, 0);
      index.writeInt32LE(Math.max(1, (bytes[0]?.length ?? 1) - 1), 4);
      if (bytes.length > 1) fs.writeFileSync(`${base}.index`, index);
    }
    if (this.closedClean) fs.writeFileSync(path.join(this.directory, '.clean-shutdown'), '');
    else fs.writeFileSync(path.join(this.directory, 'recovery-point.json'), JSON.stringify({ v: 1, offset: this.checkpointedEnd }));
  }
}

/** Writes `topics/<topic>/topic.json` as the old broker did. */
export function writeLegacyTopic(dataDir: string, name: string, partitions: number): void {
  const directory = path.join(dataDir, 'topics', name);
  fs.mkdirSync(directory, { recursive: true });
  fs.writeFileSync(path.join(directory, 'topic.json'), JSON.stringify({ v: 1, name, partitions, createdAt: 1_700_000_000_000 }, null, 2));
}

/**
 * Writes a live journal file of the old format, `journal/<worker>/<sequence>.journal`: the records
 * in order, then `tail` (zeros allocated ahead, or a torn record).
 */
export function writeLegacyJournal(dataDir: string, worker: number, sequence: number, entries: JournaledBatch[], tail: Buffer = Buffer.alloc(4096)): string {
  const directory = path.join(dataDir, 'journal', String(worker));
  fs.mkdirSync(directory, { recursive: true });
  const file = path.join(directory, `${String(sequence).padStart(20, '0')}.journal`);
  fs.writeFileSync(file, Buffer.concat([...entries.map(({ key, batch }) => legacyJournalRecord(key, batch, sequence)), tail]));
  return file;
}

/** A torn journal record: the start of a record for `key`, cut short. */
export function tornJournalRecord(key: string, batch: Buffer, sequence: number): Buffer {
  const record = legacyJournalRecord(key, batch, sequence);
  return record.subarray(0, record.length - 5);
}

export function writeWorkersFile(dataDir: string, workers: number): void {
  fs.writeFileSync(path.join(dataDir, 'journal', 'workers.json'), JSON.stringify({ v: 1, workers }));
}

const READ_CONFIG: LogConfig = { segmentBytes: 1 << 30, segmentMs: 1e12, indexIntervalBytes: 4096, retentionMs: -1, retentionBytes: -1 };

/** Every record of a converted partition, read with the new PartitionLog, and its start offset. */
export function readConverted(directory: string): { logStartOffset: number; records: ExpectedRecord[] } {
  const { log } = PartitionLog.open(directory, READ_CONFIG);
  try {
    const records: ExpectedRecord[] = [];
    let offset = log.logStartOffset;
    while (offset < log.logEndOffset) {
      const batches = log.read(offset, 256 * 1024);
      if (batches.length === 0) break;
      offset = forEachRecord(batches, offset, (r) => {
        records.push({ offset: r.offset, timestamp: r.timestamp, key: r.key, messageId: r.messageId, headers: r.headers, value: r.value.toString('hex') });
      });
    }
    return { logStartOffset: log.logStartOffset, records };
  } finally {
    log.close();
  }
}

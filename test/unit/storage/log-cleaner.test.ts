import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  compressBatch,
  forEachRecord,
  LogCleaner,
  PartitionLog,
  RecordBatchBuilder,
  readBatchProducer,
  setBatchProducer,
  setTransactional,
  type CleanerSettings,
  type CompressionCodec,
  type LogConfig,
} from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const config: LogConfig = {
  segmentBytes: 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 128,
  retentionMs: -1,
  retentionBytes: -1,
  cleanupPolicy: 'compact',
};
const DAY = 24 * 3600 * 1000;

function settings(compression: CompressionCodec = 'none', tombstoneRetentionMs = DAY, more: Partial<CleanerSettings> = {}): CleanerSettings {
  return { tombstoneRetentionMs, minCompactionLagMs: 0, maxKeys: 1_000_000, compression, pace: async () => undefined, ...more };
}

interface Written {
  offset: number;
  key: string | null;
  value: string | null;
}

/** One record per batch, as a producer publishing one message at a time makes them. */
function appendRecord(
  log: PartitionLog,
  key: string | null,
  value: string | null,
  options: { producerId?: number; transactional?: boolean; codec?: CompressionCodec } = {},
): Written {
  const builder = new RecordBatchBuilder(256);
  builder.append(1_000 + log.logEndOffset, key, `id-${log.logEndOffset}`, [['h', 'v']], value === null ? null : Buffer.from(value));
  let batch = builder.finish();
  if (options.producerId !== undefined) setBatchProducer(batch, options.producerId, 0, 0);
  if (options.transactional === true) setTransactional(batch);
  if (options.codec !== undefined) batch = compressBatch(batch, options.codec);
  const info = log.append(batch);
  return { offset: info.baseOffset, key, value };
}

/** Every record the log holds, from its start, with what a reader sees of it. */
function readAll(log: PartitionLog): Array<Written & { messageId: string | null; tombstone: boolean }> {
  const records: Array<Written & { messageId: string | null; tombstone: boolean }> = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const data = log.read(offset, 1 << 20);
    if (data.length === 0) break;
    offset = forEachRecord(data, offset, (record) => {
      records.push({
        offset: record.offset,
        key: record.key,
        value: record.tombstone ? null : record.value.toString(),
        messageId: record.messageId,
        tombstone: record.tombstone,
      });
    });
  }
  return records;
}

/** What compaction must leave: in the segments cleaned, each key's latest record; after them, everything. */
function expectedAfter(written: Written[], cleanedEnd: number, dropTombstones: boolean): Written[] {
  const latest = new Map<string, number>();
  for (const record of written) if (record.offset < cleanedEnd && record.key !== null) latest.set(record.key, record.offset);
  return written.filter((record) => {
    if (record.offset >= cleanedEnd || record.key === null) return true;
    if (latest.get(record.key) !== record.offset) return false;
    return !(record.value === null && dropTombstones);
  });
}

async function filledLog(directory: string, count: number, options: { codec?: CompressionCodec } = {}): Promise<{ log: PartitionLog; written: Written[] }> {
  const { log } = PartitionLog.open(directory, config);
  const written: Written[] = [];
  for (let i = 0; i < count; i++) {
    const key = i % 13 === 0 ? null : `key-${i % 5}`;
    // Every seventh update of a key deletes it.
    const value = i % 7 === 3 ? null : `value ${i} `.padEnd(40, '.');
    written.push(appendRecord(log, key, value, options));
  }
  // The cleaner works below the recovery point: make everything written durable and checkpointed.
  await log.checkpoint();
  return { log, written };
}

describe('the log cleaner (compaction)', () => {
  const tempDir = useTempDirs();

  it('keeps the latest record of each key in the closed segments, at its offset, and everything after them', async () => {
    const directory = path.join(tempDir(), 'p');
    const { log, written } = await filledLog(directory, 200);
    const before = log.sizeInBytes;
    const segmentsBefore = log.segmentCount;
    const cleanedEnd = log.cleanableSegments().at(-1)!.nextOffset;
    expect(segmentsBefore).toBeGreaterThan(5);
    const report = await new LogCleaner().clean(log, Date.now(), settings());
    expect(report!.recordsRemoved).toBeGreaterThan(100);
    expect(log.sizeInBytes).toBeLessThan(before / 2);
    const expected = expectedAfter(written, cleanedEnd, false);
    expect(readAll(log).map(({ offset, key, value }) => ({ offset, key, value }))).toEqual(expected);
    // Headers and messageIDs come through the rewrite; the offsets and the log's end do not move.
    expect(readAll(log).every((record) => record.messageId === `id-${record.offset}`)).toBe(true);
    expect(log.logEndOffset).toBe(200);
    // The cleaned segments, small now, were merged: fewer files for the same offsets.
    expect(report!.segmentsMerged).toBeGreaterThan(0);
    expect(log.segmentCount).toBe(segmentsBefore - report!.segmentsMerged);
    // Nothing new: a second run does nothing.
    expect(await new LogCleaner().clean(log, Date.now(), settings())).toMatchObject({ recordsRemoved: 0 });
    // A reader asking for an offset that was compacted away gets the next record kept.
    const removed = written.find((record) => !expected.some((kept) => kept.offset === record.offset))!;
    const next = expected.find((kept) => kept.offset > removed.offset)!;
    let first: number | null = null;
    for (let offset = removed.offset; first === null && offset < log.logEndOffset; ) {
      offset = forEachRecord(log.read(offset, 1 << 16), offset, (record) => {
        first ??= record.offset;
        return false;
      });
    }
    expect(first).toBe(next.offset);
    // The cleaned segments are a log like any other: a start after a crash (no clean shutdown) checks and keeps them.
    const appended = appendRecord(log, 'key-1', 'after');
    log.close();
    fs.rmSync(path.join(directory, '.clean-shutdown'), { force: true });
    fs.writeFileSync(path.join(directory, 'recovery-point.json'), JSON.stringify({ v: 1, offset: 0 }));
    const { log: reopened, recovery } = PartitionLog.open(directory, config);
    expect(recovery).toMatchObject({ truncatedBytes: 0, droppedSegments: 0 });
    expect(readAll(reopened).map(({ offset, key, value }) => ({ offset, key, value }))).toEqual([...expected, appended]);
    reopened.close();
  });

  it('gives the thread back at least every 64 KiB of small batches it reads or writes (a run never holds appends for long)', async () => {
    const directory = path.join(tempDir(), 'p');
    // Segments of 256 KiB of one-record batches, as an offsets topic's commits make them.
    const { log } = PartitionLog.open(directory, { ...config, segmentBytes: 256 * 1024 });
    for (let i = 0; i < 6000; i++) appendRecord(log, `key-${i % 50}`, `value ${i} `.padEnd(40, '.'));
    await log.checkpoint();
    expect(log.cleanableSegments().length).toBeGreaterThan(1);
    const paced: number[] = [];
    const report = await new LogCleaner().clean(log, Date.now(), settings('none', DAY, { pace: async (bytes) => void paced.push(bytes) }));
    expect(report!.recordsRemoved).toBeGreaterThan(5000);
    expect(paced.length).toBeGreaterThan(10);
    expect(Math.max(...paced)).toBeLessThanOrEqual(64 * 1024);
    log.close();
  });

  it('removes tombstones once their segment is older than the tombstone retention, never before', async () => {
    const { log, written } = await filledLog(path.join(tempDir(), 'p'), 120);
    const cleanedEnd = log.cleanableSegments().at(-1)!.nextOffset;
    await new LogCleaner().clean(log, Date.now(), settings());
    const kept = readAll(log);
    expect(kept.some((record) => record.tombstone && record.offset < cleanedEnd)).toBe(true);
    // A day and more later: the tombstones of the cleaned segments go.
    await new LogCleaner().clean(log, Date.now() + 2 * DAY, settings('none', DAY));
    expect(readAll(log).map(({ offset, key, value }) => ({ offset, key, value }))).toEqual(expectedAfter(written, cleanedEnd, true));
    log.close();
  });

  it('cleans a transaction’s batches on their own, keeping their producer, so that a key deleted after a transaction wrote it stays deleted', async () => {
    const { log } = PartitionLog.open(path.join(tempDir(), 'p'), config);
    const inTransaction = appendRecord(log, 'account', 'written by a transaction', { producerId: 7, transactional: true });
    const written: Written[] = [inTransaction];
    for (let i = 0; i < 80; i++) written.push(appendRecord(log, `key-${i % 3}`, `v${i}`.padEnd(60, '!'), { codec: 'lz4' }));
    written.push(appendRecord(log, 'account', null));
    for (let i = 0; i < 40; i++) written.push(appendRecord(log, 'filler', `f${i}`.padEnd(60, '?')));
    await log.checkpoint();
    await new LogCleaner().clean(log, Date.now(), settings('lz4'));
    const records = readAll(log);
    // The transaction's value is superseded by the tombstone; its batch stays (empty), its producer named.
    expect(records.some((record) => record.offset === inTransaction.offset)).toBe(false);
    const header = log.read(inTransaction.offset, 1 << 16);
    expect(readBatchProducer(header)).toMatchObject({ producerId: 7, transactional: true });
    expect(records.find((record) => record.key === 'account')).toMatchObject({ tombstone: true });
    const latest = new Map(written.slice(1, 81).map((record) => [record.key, record.value]));
    for (const [key, value] of latest) expect(records.filter((record) => record.key === key).at(-1)?.value).toBe(value);
    // Once the tombstone is past its retention, the key is gone for good: nothing older comes back.
    await new LogCleaner().clean(log, Date.now() + 2 * DAY, settings('lz4', DAY));
    expect(readAll(log).filter((record) => record.key === 'account')).toEqual([]);
    log.close();
  });

  it('leaves segments younger than the compaction lag alone, and maps at most maxKeys keys a run, cleaning the rest in the next', async () => {
    const { log, written } = await filledLog(path.join(tempDir(), 'p'), 200);
    const cleaner = new LogCleaner();
    expect(await cleaner.clean(log, Date.now(), settings('none', DAY, { minCompactionLagMs: 60_000 }))).toBeNull();
    expect(readAll(log)).toHaveLength(200);
    // Five keys fill a map of one key... at the first segment: the first run cleans that far only.
    const first = await cleaner.clean(log, Date.now(), settings('none', DAY, { maxKeys: 1 }));
    const afterFirst = readAll(log).length;
    expect(afterFirst).toBeLessThan(200);
    const second = await cleaner.clean(log, Date.now(), settings('none', DAY, { maxKeys: 1_000 }));
    expect(first!.recordsRemoved + second!.recordsRemoved).toBeGreaterThan(100);
    const cleanedEnd = log.cleanableSegments().at(-1)!.nextOffset;
    expect(readAll(log).map(({ offset, key, value }) => ({ offset, key, value }))).toEqual(expectedAfter(written, cleanedEnd, false));
    // Nothing new since: not due.
    expect(await cleaner.clean(log, Date.now(), settings())).toBeNull();
    log.close();
  });

  it('finishes at open a merge that a crash interrupted: the .swap file takes the place of the segments it covers', async () => {
    const directory = path.join(tempDir(), 'p');
    const { log } = await filledLog(directory, 150);
    log.close();
    const before = path.join(tempDir(), 'before');
    fs.cpSync(directory, before, { recursive: true });
    const { log: cleaned } = PartitionLog.open(directory, config);
    await cleaned.checkpoint();
    const report = await new LogCleaner().clean(cleaned, Date.now(), settings());
    expect(report!.segmentsMerged).toBeGreaterThan(0);
    const after = readAll(cleaned);
    cleaned.close();
    // The crash: the merged segment renamed to its .swap name, the segments it replaces still there.
    const logs = fs
      .readdirSync(directory)
      .filter((name) => /^\d{20}\.log$/.test(name))
      .sort();
    const merged = logs[0]!;
    const end = logs[1]!.slice(0, 20);
    fs.copyFileSync(path.join(directory, merged), path.join(before, `${merged.slice(0, 20)}.${end}.swap`));
    fs.rmSync(path.join(before, '.clean-shutdown'), { force: true });
    const { log: recovered, recovery } = PartitionLog.open(before, config);
    expect(recovery).toMatchObject({ truncatedBytes: 0, droppedSegments: 0 });
    expect(fs.readdirSync(before).some((name) => name.endsWith('.swap'))).toBe(false);
    const reread = readAll(recovered);
    const cut = Number(end);
    expect(reread.filter((record) => record.offset < cut)).toEqual(after.filter((record) => record.offset < cut));
    expect(recovered.logEndOffset).toBe(150);
    recovered.close();
  });

  it('cleans nothing but closed segments below the recovery point, and a leftover rewrite is removed at open', async () => {
    const directory = path.join(tempDir(), 'p');
    const { log } = PartitionLog.open(directory, config);
    for (let i = 0; i < 60; i++) appendRecord(log, 'same', `v${i}`.padEnd(40, '.'));
    // Nothing checkpointed: nothing may be cleaned.
    expect(log.cleanableSegments()).toEqual([]);
    expect(await new LogCleaner().clean(log, Date.now(), settings())).toBeNull();
    log.close();
    fs.mkdirSync(path.join(directory, '.cleaning'));
    fs.writeFileSync(path.join(directory, '.cleaning', '00000000000000000000.log'), 'half a rewrite');
    const { log: reopened } = PartitionLog.open(directory, config);
    expect(fs.existsSync(path.join(directory, '.cleaning'))).toBe(false);
    expect(readAll(reopened)).toHaveLength(60);
    reopened.close();
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildControlBatch,
  compressBatch,
  forEachRecord,
  CorruptBatchError,
  OffsetOutOfRangeError,
  PartitionLog,
  readControlMarker,
  RecordBatchBuilder,
  type LogConfig,
  type StoredRecord,
} from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const config: LogConfig = {
  segmentBytes: 1024 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 256,
  retentionMs: -1,
  retentionBytes: -1,
};

function batch(values: string[], timestamp = 1000, key: string | null = 'k'): Buffer {
  const builder = new RecordBatchBuilder(64);
  for (const [i, value] of values.entries()) builder.append(timestamp + i, key, `id-${value}`, [['h', value]], Buffer.from(value));
  return builder.finish();
}

function readAll(log: PartitionLog, from = log.logStartOffset): StoredRecord[] {
  const records: StoredRecord[] = [];
  let offset = from;
  while (offset < log.logEndOffset) {
    const data = log.read(offset, 1000);
    if (data.length === 0) break;
    offset = forEachRecord(data, offset, (r) => void records.push({ ...r, value: Buffer.from(r.value) }));
  }
  return records;
}

function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .sort();
}

describe('PartitionLog', () => {
  const tempDir = useTempDirs();

  it('never hands on a batch damaged after recovery checked it: a CRC, a base offset (outside the CRC), a length; reads stop before it, a read at it throws', async () => {
    const dir = tempDir();
    const ten = (k: number): string[] => Array.from({ length: 10 }, (_, i) => `v${k * 10 + i}`);
    const write = async (): Promise<void> => {
      for (const entry of fs.readdirSync(dir)) fs.rmSync(path.join(dir, entry), { recursive: true, force: true });
      const { log } = PartitionLog.open(dir, config);
      for (let k = 0; k < 8; k++) log.append(batch(ten(k), 1000 + k * 10));
      await log.flush();
      expect(log.close()).toBe(true);
    };
    /** Damages batch 2 (offsets 20-29) of the closed log; a clean shutdown: recovery reads only the tail past the last index entry. */
    const damage = async (at: (position: number, size: number) => [number, Buffer]): Promise<PartitionLog> => {
      await write();
      const file = path.join(dir, `${'0'.padStart(20, '0')}.log`);
      const bytes = fs.readFileSync(file);
      let position = 0;
      for (let k = 0; k < 2; k++) position += bytes.readInt32BE(position + 8) + 12;
      const [where, patch] = at(position, bytes.readInt32BE(position + 8) + 12);
      patch.copy(bytes, where);
      fs.writeFileSync(file, bytes);
      return PartitionLog.open(dir, config).log;
    };
    const offsetsFrom = (log: PartitionLog, offset: number): number[] => {
      const seen: number[] = [];
      forEachRecord(log.read(offset, 1 << 20), offset, (r) => void seen.push(r.offset));
      return seen;
    };
    const cases: Array<[string, (position: number, size: number) => [number, Buffer]]> = [
      ['a byte of a record', (position, size) => [position + size - 2, Buffer.from('!')]],
      ['its base offset (20 made 4)', (position) => [position, Buffer.from([0, 0, 0, 0, 0, 0, 0, 4])]],
      ['its length (the top bit set)', (position) => [position + 8, Buffer.from([0x80])]],
    ];
    for (const [what, at] of cases) {
      const log = await damage(at);
      expect(log.logEndOffset, what).toBe(80);
      expect(offsetsFrom(log, 0), what).toEqual(Array.from({ length: 20 }, (_, i) => i));
      expect(() => log.read(20, 1 << 20), what).toThrow(CorruptBatchError);
      expect(() => log.read(25, 1 << 20), what).toThrow(CorruptBatchError);
      // A search by timestamp that must cross it fails too, rather than skipping or looping.
      expect(() => log.offsetForTimestamp(1025), what).toThrow(CorruptBatchError);
      expect(log.offsetForTimestamp(1005), what).toBe(5);
      log.close();
    }
  });

  it('keeps transaction markers and compressed batches through recovery: markers take their offsets, readers get only messages', () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    log.append(batch(['a', 'b']));
    log.append(buildControlBatch({ type: 'commit', producerId: 9, producerEpoch: 1, coordinatorEpoch: 2, timestamp: 5 }));
    log.append(compressBatch(batch(['c', 'd', 'e', 'f', 'g'].map((v) => v.repeat(200))), 'zstd'));
    log.append(buildControlBatch({ type: 'abort', producerId: 9, producerEpoch: 1, coordinatorEpoch: 2, timestamp: 6 }));
    expect(log.logEndOffset).toBe(9);
    // A crash: no clean close. Recovery checks every batch (CRCs of the marker and of the compressed one included).
    const { log: recovered, recovery } = PartitionLog.open(dir, config);
    expect(recovery.truncatedBytes).toBe(0);
    expect(recovered.logEndOffset).toBe(9);
    const records = readAll(recovered);
    expect(records.map((r) => [r.offset, r.messageId, r.headers])).toEqual([
      [0, 'id-a', [['h', 'a']]],
      [1, 'id-b', [['h', 'b']]],
      ...['c', 'd', 'e', 'f', 'g'].map((v, i) => [3 + i, `id-${v.repeat(200)}`, [['h', v.repeat(200)]]]),
    ]);
    // Reading from a marker's offset starts at the marker, which the reader steps over.
    const fromMarker = recovered.read(8, 1000);
    expect(readControlMarker(fromMarker)).toMatchObject({ type: 'abort', producerId: 9, coordinatorEpoch: 2 });
    expect(forEachRecord(fromMarker, 8, () => {})).toBe(9);
    expect(recovered.offsetForTimestamp(1002)).toBe(3 + 2);
  });

  it('gives dense offsets and reads back every field', () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    expect(log.append(batch(['a', 'b'])).baseOffset).toBe(0);
    expect(log.append(batch(['c'])).baseOffset).toBe(2);
    const records = readAll(log);
    expect(records.map((r) => [r.offset, r.value.toString(), r.messageId, r.key, r.headers])).toEqual([
      [0, 'a', 'id-a', 'k', [['h', 'a']]],
      [1, 'b', 'id-b', 'k', [['h', 'b']]],
      [2, 'c', 'id-c', 'k', [['h', 'c']]],
    ]);
    expect(records[1]!.timestamp).toBe(1001);
    log.close();
  });

  it('keeps null keys and binary values', () => {
    const builder = new RecordBatchBuilder();
    builder.append(5, null, null, null, Buffer.from([0, 255, 0]));
    const { log } = PartitionLog.open(tempDir(), config);
    log.append(builder.finish());
    const records = readAll(log);
    expect(records).toHaveLength(1);
    const [record] = records as [StoredRecord];
    expect(record.key).toBeNull();
    expect(record.messageId).toBeNull();
    expect([...record.value]).toEqual([0, 255, 0]);
  });

  it('reads from any offset, through the sparse index, and at least one batch', () => {
    const { log } = PartitionLog.open(tempDir(), config);
    for (let i = 0; i < 100; i++) log.append(batch([`v${i}a`, `v${i}b`]));
    expect(readAll(log, 137).map((r) => r.offset)).toEqual(Array.from({ length: 63 }, (_, i) => 137 + i));
    const one = log.read(50, 1);
    let count = 0;
    forEachRecord(one, 0, () => void count++);
    expect(count).toBe(2);
    expect(log.read(log.logEndOffset, 100).length).toBe(0);
    expect(() => log.read(201, 100)).toThrow(OffsetOutOfRangeError);
  });

  it('stops decoding when the visitor says so', () => {
    const { log } = PartitionLog.open(tempDir(), config);
    log.append(batch(['a', 'b', 'c', 'd']));
    const seen: string[] = [];
    forEachRecord(log.read(0, 10_000), 1, (r) => {
      seen.push(r.value.toString());
      return seen.length < 2;
    });
    expect(seen).toEqual(['b', 'c']);
  });

  it('stops reads at an end offset', () => {
    const { log } = PartitionLog.open(tempDir(), config);
    for (let i = 0; i < 10; i++) log.append(batch([`${i}`]));
    const records: number[] = [];
    forEachRecord(log.read(0, 10_000, 4), 0, (r) => void records.push(r.offset));
    expect(records).toEqual([0, 1, 2, 3]);
  });

  it('rolls segments by size and reads across them', () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, { ...config, segmentBytes: 500 });
    for (let i = 0; i < 50; i++) log.append(batch([`value-${i}`]));
    expect(log.segmentCount).toBeGreaterThan(3);
    expect(segmentFiles(dir)[1]).toMatch(/^0{18}\d\d\.log$/);
    expect(readAll(log).map((r) => r.value.toString())).toEqual(Array.from({ length: 50 }, (_, i) => `value-${i}`));
  });

  it('rolls segments by age', () => {
    const { log } = PartitionLog.open(tempDir(), { ...config, segmentMs: 1000 });
    const now = Date.now();
    log.append(batch(['a']), now);
    log.append(batch(['b']), now + 10);
    expect(log.segmentCount).toBe(1);
    log.append(batch(['c']), now + 5000);
    expect(log.segmentCount).toBe(2);
  });

  it('finds offsets by timestamp', () => {
    const { log } = PartitionLog.open(tempDir(), { ...config, segmentBytes: 400 });
    for (let i = 0; i < 30; i++) log.append(batch([`x${i}`], 10_000 + i * 100));
    expect(log.offsetForTimestamp(0)).toBe(0);
    expect(log.offsetForTimestamp(10_000 + 1250)).toBe(13);
    expect(log.offsetForTimestamp(10_000 + 1300)).toBe(13);
    expect(log.offsetForTimestamp(99_999)).toBe(30);
  });

  describe('recovery', () => {
    function fillAndCrash(dir: string, batches = 20): void {
      const { log } = PartitionLog.open(dir, config);
      for (let i = 0; i < batches; i++) log.append(batch([`r${i}`, `s${i}`]));
      // no close(): as after kill -9, no clean-shutdown marker is written
    }

    it('reopens cleanly after a clean shutdown, and not after a close that left writes unflushed', async () => {
      const unflushed = tempDir();
      const { log: careless } = PartitionLog.open(unflushed, config);
      careless.append(batch(['a']));
      careless.close();
      expect(PartitionLog.open(unflushed, config).recovery.cleanShutdown).toBe(false);

      const dir = tempDir();
      const { log } = PartitionLog.open(dir, config);
      log.append(batch(['a', 'b', 'c']));
      await log.flush();
      log.close();
      const { log: reopened, recovery } = PartitionLog.open(dir, config);
      expect(recovery).toEqual({ truncatedBytes: 0, droppedSegments: 0, cleanShutdown: true });
      expect(reopened.logEndOffset).toBe(3);
      expect(reopened.append(batch(['d'])).baseOffset).toBe(3);
    });

    it('truncates a torn tail and goes on from the last whole batch', () => {
      const dir = tempDir();
      fillAndCrash(dir);
      const file = path.join(dir, segmentFiles(dir)[0]!);
      const size = fs.statSync(file).size;
      fs.truncateSync(file, size - 7);
      const { log, recovery } = PartitionLog.open(dir, config);
      expect(recovery.cleanShutdown).toBe(false);
      expect(recovery.truncatedBytes).toBeGreaterThan(0);
      expect(log.logEndOffset).toBe(38);
      expect(log.append(batch(['new'])).baseOffset).toBe(38);
      expect(
        readAll(log)
          .map((r) => r.value.toString())
          .slice(-3),
      ).toEqual(['r18', 's18', 'new']);
    });

    it('truncates at a corrupt batch (bad CRC)', () => {
      const dir = tempDir();
      fillAndCrash(dir);
      const file = path.join(dir, segmentFiles(dir)[0]!);
      const bytes = fs.readFileSync(file);
      const { log: before } = PartitionLog.open(dir, config);
      const position = bytes.length - before.read(30, 1).length * 5; // inside an earlier batch
      bytes[position + 50]! ^= 0xff;
      fs.writeFileSync(file, bytes);
      fs.rmSync(path.join(dir, '.clean-shutdown'), { force: true });
      const { log, recovery } = PartitionLog.open(dir, config);
      expect(recovery.truncatedBytes).toBeGreaterThan(0);
      const records = readAll(log);
      expect(records.length).toBe(log.logEndOffset);
      expect(records.every((r, i) => r.offset === i)).toBe(true);
      expect(log.logEndOffset).toBeLessThan(40);
    });

    it('rebuilds a damaged index', () => {
      const dir = tempDir();
      // Index entries reach their files at persist points (a close, here); then a crash.
      const { log: written } = PartitionLog.open(dir, config);
      for (let i = 0; i < 60; i++) written.append(batch([`r${i}`, `s${i}`]));
      written.close();
      fs.rmSync(path.join(dir, '.clean-shutdown'), { force: true });
      const indexFile = path.join(dir, segmentFiles(dir)[0]!.replace('.log', '.index'));
      expect(fs.statSync(indexFile).size).toBeGreaterThan(0);
      fs.writeFileSync(indexFile, Buffer.alloc(37, 0x7f));
      const { log } = PartitionLog.open(dir, config);
      expect(readAll(log, 77).map((r) => r.offset)).toEqual(Array.from({ length: 43 }, (_, i) => 77 + i));
    });

    it('drops segments that follow a corrupt one', () => {
      const dir = tempDir();
      const { log } = PartitionLog.open(dir, { ...config, segmentBytes: 300 });
      for (let i = 0; i < 30; i++) log.append(batch([`v${i}`]));
      log.close();
      const files = segmentFiles(dir);
      expect(files.length).toBeGreaterThan(3);
      const second = path.join(dir, files[1]!);
      fs.truncateSync(second, fs.statSync(second).size - 3);
      const { log: reopened, recovery } = PartitionLog.open(dir, { ...config, segmentBytes: 300 });
      expect(recovery.droppedSegments).toBe(files.length - 2);
      expect(segmentFiles(dir)).toEqual(files.slice(0, 2));
      expect(readAll(reopened).length).toBe(reopened.logEndOffset);
    });
  });

  describe('retention', () => {
    it('deletes the oldest closed segments past the size limit, never the active one', () => {
      const dir = tempDir();
      const { log } = PartitionLog.open(dir, { ...config, segmentBytes: 300, retentionBytes: 600 });
      for (let i = 0; i < 40; i++) log.append(batch([`v${i}`]));
      const before = log.segmentCount;
      const deleted = log.deleteExpiredSegments();
      expect(deleted).toBeGreaterThan(0);
      expect(log.segmentCount).toBe(before - deleted);
      expect(log.sizeInBytes).toBeLessThanOrEqual(600);
      expect(log.logStartOffset).toBeGreaterThan(0);
      expect(() => log.read(0, 100)).toThrow(OffsetOutOfRangeError);
      expect(readAll(log).at(-1)?.value.toString()).toBe('v39');
    });

    it('deletes segments whose last append is older than the time limit', () => {
      const { log } = PartitionLog.open(tempDir(), { ...config, segmentBytes: 300, segmentMs: 60_000, retentionMs: 60_000 });
      const old = Date.now() - 120_000;
      for (let i = 0; i < 10; i++) log.append(batch([`old${i}`]), old);
      const fresh = Date.now();
      for (let i = 0; i < 10; i++) log.append(batch([`new${i}`]), fresh);
      log.deleteExpiredSegments(fresh);
      const values = readAll(log).map((r) => r.value.toString());
      expect(values.some((v) => v.startsWith('old'))).toBe(false);
      expect(values.filter((v) => v.startsWith('new')).length).toBe(10);
    });

    it('keeps offsets after every closed segment is gone', () => {
      const { log } = PartitionLog.open(tempDir(), { ...config, segmentBytes: 100, retentionBytes: 0 });
      for (let i = 0; i < 5; i++) log.append(batch([`v${i}`]));
      log.deleteExpiredSegments();
      expect(log.segmentCount).toBe(1);
      expect(log.append(batch(['next'])).baseOffset).toBe(5);
    });
  });

  it('tracks the durable end on flush', async () => {
    const { log } = PartitionLog.open(tempDir(), config);
    log.append(batch(['a', 'b']));
    expect(log.durableEndOffset).toBe(0);
    expect(await log.flush()).toBe(2);
  });
});

import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LogSegment } from '../../../src/storage/log-segment.js';
import { OffsetIndex } from '../../../src/storage/offset-index.js';
import { stampBatch } from '../../../src/storage/record-batch/index.js';
import { TimeIndex } from '../../../src/storage/time-index.js';
import { forEachRecord, PartitionLog, readBatchInfo, RecordBatchBuilder, type LogConfig } from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const config: LogConfig = {
  segmentBytes: 1024 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 128,
  retentionMs: -1,
  retentionBytes: -1,
};

const SEGMENT = '00000000000000000000';

function batch(value: string, timestamp: number): Buffer {
  const builder = new RecordBatchBuilder(64);
  builder.append(timestamp, 'k', `id-${value}`, null, Buffer.from(value));
  return builder.finish();
}

function values(log: PartitionLog, from = log.logStartOffset): string[] {
  const seen: string[] = [];
  let offset = from;
  while (offset < log.logEndOffset) {
    const data = log.read(offset, 500);
    if (data.length === 0) break;
    forEachRecord(data, offset, (record) => void seen.push(record.value.toString()));
    offset = from + seen.length;
  }
  return seen;
}

/** Descriptors of this process open on files whose path ends with `suffix` (Linux; 0 elsewhere). */
function openOn(suffix: string): number {
  if (!fs.existsSync('/proc/self/fd')) return 0;
  let count = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).endsWith(suffix)) count++;
    } catch {
      // the listing's own descriptor
    }
  }
  return count;
}

function sizeOf(file: string): number {
  return fs.existsSync(file) ? fs.statSync(file).size : 0;
}

describe('index files', () => {
  const tempDir = useTempDirs();

  it('keep no descriptor open: entries serve lookups from memory and reach the file at persist points only', () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    for (let i = 0; i < 200; i++) log.append(batch(`v${i}`, 1000 + i));
    expect(openOn('.index') + openOn('.timeindex')).toBe(0);
    // Nothing persisted yet: lookups use the entries in memory.
    expect(sizeOf(path.join(dir, `${SEGMENT}.index`))).toBe(0);
    expect(values(log, 150)[0]).toBe('v150');
    expect(log.offsetForTimestamp(1000 + 123)).toBe(123);
    log.close();
    const offsetEntries = sizeOf(path.join(dir, `${SEGMENT}.index`));
    expect(offsetEntries).toBeGreaterThan(8 * 10);
    expect(offsetEntries % 8).toBe(0);
    expect(sizeOf(path.join(dir, `${SEGMENT}.timeindex`))).toBe(200 * 12);
    expect(openOn('.index') + openOn('.timeindex')).toBe(0);
  });

  it('are written when their segment is sealed by a roll', () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, { ...config, segmentBytes: 2000 });
    for (let i = 0; i < 60; i++) log.append(batch(`v${i}`, 1000 + i));
    const logs = fs
      .readdirSync(dir)
      .filter((name) => name.endsWith('.log'))
      .sort();
    expect(logs.length).toBeGreaterThan(2);
    for (const name of logs.slice(0, -1)) {
      expect(sizeOf(path.join(dir, name.replace('.log', '.index')))).toBeGreaterThan(0);
      expect(sizeOf(path.join(dir, name.replace('.log', '.timeindex')))).toBeGreaterThan(0);
    }
    expect(sizeOf(path.join(dir, logs.at(-1)!.replace('.log', '.timeindex')))).toBe(0);
    expect(values(log)).toHaveLength(60);
    log.close();
  });

  it('are written by LogSegment.persistIndexes: only the entries not yet there, and nothing when there are none', () => {
    const dir = tempDir();
    const segment = LogSegment.create(dir, 0, 128);
    const append = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        const bytes = batch(`v${i}`, 1000 + i);
        stampBatch(bytes, segment.nextOffset);
        segment.append(bytes, readBatchInfo(bytes), Date.now());
      }
    };
    append(0, 30);
    const timeIndex = path.join(dir, `${SEGMENT}.timeindex`);
    expect(sizeOf(timeIndex)).toBe(0);
    segment.persistIndexes();
    expect(sizeOf(timeIndex)).toBe(30 * 12);
    const opened = vi.spyOn(fs, 'openSync');
    try {
      segment.persistIndexes();
      expect(opened).not.toHaveBeenCalled();
    } finally {
      opened.mockRestore();
    }
    append(30, 40);
    segment.persistIndexes();
    expect(sizeOf(timeIndex)).toBe(40 * 12);
    expect(TimeIndex.open(timeIndex, 0).scanStart(1035)).toBe(35);
    expect(openOn('.index') + openOn('.timeindex')).toBe(0);
    segment.close();
  });

  it('after a crash, a stale (shorter) index file is rebuilt and written at open', () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    for (let i = 0; i < 100; i++) log.append(batch(`v${i}`, 1000 + i));
    expect(log.close()).toBe(false); // never flushed: not clean, the next open checks everything
    const persisted = sizeOf(path.join(dir, `${SEGMENT}.index`));
    const { log: again } = PartitionLog.open(dir, config);
    for (let i = 100; i < 200; i++) again.append(batch(`v${i}`, 1000 + i));
    // A crash: the second hundred's entries never reached the file.
    expect(sizeOf(path.join(dir, `${SEGMENT}.index`))).toBe(persisted);
    const { log: recovered, recovery } = PartitionLog.open(dir, config);
    expect(recovery.truncatedBytes).toBe(0);
    expect(values(recovered)).toEqual(Array.from({ length: 200 }, (_, i) => `v${i}`));
    expect(values(recovered, 177)[0]).toBe('v177');
    expect(sizeOf(path.join(dir, `${SEGMENT}.index`))).toBeGreaterThan(persisted);
    expect(sizeOf(path.join(dir, `${SEGMENT}.timeindex`))).toBe(200 * 12);
  });

  it('cut at once on truncation, so the file never names a position past the cut', () => {
    const file = path.join(tempDir(), 'x.index');
    const index = OffsetIndex.open(file, 100);
    for (let i = 0; i < 10; i++) index.append(100 + i * 5, i * 1000);
    index.persist();
    expect(sizeOf(file)).toBe(80);
    index.truncateToPosition(4500);
    expect(index.entryCount).toBe(5);
    expect(sizeOf(file)).toBe(40);
    // Entries cut before they were ever written leave the file alone.
    index.append(125, 5000);
    index.append(130, 6000);
    index.truncateToPosition(5500);
    expect(sizeOf(file)).toBe(40);
    index.persist();
    expect(sizeOf(file)).toBe(48);
    const reread = OffsetIndex.open(file, 100);
    expect(reread.entryCount).toBe(6);
    expect(reread.lookup(127)).toEqual({ offset: 125, position: 5000 });
    expect(reread.isSane(6000)).toBe(true);
    index.reset();
    expect(sizeOf(file)).toBe(0);
  });

  it('a failed write stops writing the file, not the appends, and leaves no partial entry', () => {
    const file = path.join(tempDir(), 'x.timeindex');
    const index = TimeIndex.open(file, 0);
    for (let i = 0; i < 3; i++) index.maybeAppend(1000 + i, i);
    index.persist();
    expect(sizeOf(file)).toBe(36);
    for (let i = 3; i < 8; i++) index.maybeAppend(1000 + i, i);
    // A full disk: the write takes an entry and a half, then fails.
    const writeSync = fs.writeSync;
    let calls = 0;
    const spy = vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, buffer: Buffer, offset: number, _length: number, position: number) => {
      if (calls++ === 0) return writeSync(fd, buffer, offset, 18, position);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    }) as typeof fs.writeSync);
    try {
      index.persist();
    } finally {
      spy.mockRestore();
    }
    expect(sizeOf(file)).toBe(48); // the three entries before, and the one written whole
    // The file is no longer written; the entries in memory still serve lookups.
    index.maybeAppend(2000, 8);
    index.persist();
    expect(sizeOf(file)).toBe(48);
    expect(index.scanStart(1006)).toBe(6);
    expect(index.scanStart(2000)).toBe(8);
    expect(TimeIndex.open(file, 0).isSane()).toBe(true);
    // A truncation writes the file anew, and writing resumes.
    index.reset();
    index.maybeAppend(3000, 9);
    index.persist();
    expect(sizeOf(file)).toBe(12);
  });

  it('writes a file removed behind its back whole again', () => {
    const file = path.join(tempDir(), 'x.index');
    const index = OffsetIndex.open(file, 0);
    index.append(1, 100);
    index.persist();
    fs.rmSync(file);
    index.append(2, 200);
    index.persist();
    const reread = OffsetIndex.open(file, 0);
    expect(reread.entryCount).toBe(2);
    expect(reread.lookup(1)).toEqual({ offset: 1, position: 100 });
  });
});

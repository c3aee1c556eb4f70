import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openFiles, OpenFiles, type CachedFile } from '../../../src/storage/open-files.js';
import { configureOpenFiles, forEachRecord, PartitionLog, RecordBatchBuilder, type LogConfig } from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const config: LogConfig = {
  segmentBytes: 1024 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 256,
  retentionMs: -1,
  retentionBytes: -1,
};

const hasProcFd = fs.existsSync('/proc/self/fd');

/** What this process has open, by the path each descriptor names (Linux). */
function openPaths(): string[] {
  const paths: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      paths.push(fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed meanwhile (the directory listing's own descriptor)
    }
  }
  return paths;
}

function openUnder(dir: string, suffix: string): number {
  return openPaths().filter((file) => file.startsWith(dir) && file.endsWith(suffix)).length;
}

function contents(file: CachedFile): string {
  const size = fs.fstatSync(file.fd).size;
  const buffer = Buffer.alloc(size);
  fs.readSync(file.fd, buffer, 0, size, 0);
  return buffer.toString();
}

function append(file: CachedFile, text: string): void {
  fs.writeSync(file.fd, text, fs.fstatSync(file.fd).size);
}

function batch(values: string[]): Buffer {
  const builder = new RecordBatchBuilder(64);
  for (const [i, value] of values.entries()) builder.append(1000 + i, 'k', `id-${value}`, [['h', value]], Buffer.from(value));
  return builder.finish();
}

function values(log: PartitionLog, from = log.logStartOffset): string[] {
  const seen: string[] = [];
  let offset = from;
  while (offset < log.logEndOffset) {
    const data = log.read(offset, 700);
    if (data.length === 0) break;
    let last = offset;
    forEachRecord(data, offset, (record) => {
      seen.push(record.value.toString());
      last = record.offset;
    });
    offset = last + 1;
  }
  return seen;
}

describe('OpenFiles', () => {
  const tempDir = useTempDirs();

  it('never keeps more unpinned files open than its capacity, and closes the least recently used', () => {
    const dir = tempDir();
    const cache = new OpenFiles(4);
    const files = Array.from({ length: 20 }, (_, i) => cache.create(path.join(dir, `f${i}`)));
    expect(cache.size).toBe(4);
    expect(openUnder(dir, '')).toBe(4);
    // A pseudo-random walk over the files: each access opens what it needs, never more than 4 stay open.
    let seed = 7;
    for (let step = 0; step < 500; step++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const file = files[seed % files.length]!;
      append(file, `${step},`);
      expect(cache.size).toBeLessThanOrEqual(4);
    }
    if (hasProcFd) expect(openUnder(dir, '')).toBe(4);
    // Least recently used goes first: touch 0..3, then open 4: 0 is closed, 1..4 stay.
    for (const file of files.slice(0, 4)) void file.fd;
    void files[4]!.fd;
    expect(files.slice(0, 5).map((file) => file.descriptor !== null)).toEqual([false, true, true, true, true]);
    // Shrinking the capacity closes the least recently used at once.
    cache.capacity = 2;
    expect(files.slice(0, 5).map((file) => file.descriptor !== null)).toEqual([false, false, false, true, true]);
  });

  it('reopens an evicted file without truncating it: write, evict, read back, append, read all', () => {
    const dir = tempDir();
    const cache = new OpenFiles(2);
    const a = cache.create(path.join(dir, 'a'));
    append(a, 'hello');
    const others = [cache.create(path.join(dir, 'b')), cache.create(path.join(dir, 'c'))];
    expect(a.descriptor).toBeNull();
    expect(contents(a)).toBe('hello');
    for (const other of others) append(other, 'x');
    expect(a.descriptor).toBeNull();
    append(a, ' world');
    for (const other of others) void other.fd;
    expect(contents(a)).toBe('hello world');
    expect(fs.readFileSync(path.join(dir, 'a'), 'utf8')).toBe('hello world');
    // A file that exists is opened when first used, never emptied.
    const existing = cache.file(path.join(dir, 'a'));
    expect(existing.descriptor).toBeNull();
    expect(contents(existing)).toBe('hello world');
  });

  it('never closes a file while an fdatasync runs on it, even when it is the least recently used or closed meanwhile', async () => {
    const dir = tempDir();
    const cache = new OpenFiles(2);
    const a = cache.create(path.join(dir, 'a'));
    append(a, 'synced');
    const fd = a.fd;
    const synced = a.sync();
    // The sync runs on the thread pool: until it ends, a is pinned, though others push it out of the LRU.
    const others = Array.from({ length: 5 }, (_, i) => cache.create(path.join(dir, `o${i}`)));
    for (const other of others) append(other, 'o');
    expect(a.descriptor).toBe(fd);
    expect(cache.pinned).toBe(1);
    expect(cache.size).toBe(2);
    expect(fs.fstatSync(fd).size).toBe(6);
    // Closed while the sync runs: the descriptor goes only when the sync has ended.
    a.close();
    expect(a.descriptor).toBe(fd);
    await synced;
    expect(a.descriptor).toBeNull();
    expect(cache.pinned).toBe(0);
    expect(cache.size).toBe(1);
    expect(() => a.fd).toThrow(/closed/);
  });

  it('holds one file over its capacity while every open file is pinned, and trims back when the syncs end', async () => {
    const dir = tempDir();
    const cache = new OpenFiles(2);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => cache.create(path.join(dir, name))) as [CachedFile, CachedFile, CachedFile, CachedFile];
    void a.fd;
    void b.fd;
    const syncs = [a.sync(), b.sync()];
    append(c, 'c'); // every open file is pinned: c opens beyond the capacity
    expect(cache.size).toBe(3);
    append(d, 'd'); // c is not pinned: it makes room for d
    expect(c.descriptor).toBeNull();
    expect(cache.size).toBe(3);
    await Promise.all(syncs);
    expect(cache.size).toBe(2);
    expect(d.descriptor).not.toBeNull();
    expect(fs.readFileSync(path.join(dir, 'c'), 'utf8')).toBe('c');
  });

  it('flushes far more files than its capacity with at most capacity descriptors: a sync waits for a pinned one to end', async () => {
    const dir = tempDir();
    const cache = new OpenFiles(4);
    const files = Array.from({ length: 50 }, (_, i) => cache.create(path.join(dir, `f${i}`)));
    for (const [i, file] of files.entries()) append(file, `data ${i}`);
    let most = 0;
    let syncs = 0;
    const fdatasync = fs.fdatasync;
    const spy = vi.spyOn(fs, 'fdatasync').mockImplementation((fd, callback) => {
      syncs++;
      most = Math.max(most, cache.size);
      if (hasProcFd) most = Math.max(most, openUnder(dir, ''));
      fdatasync(fd, callback);
    });
    try {
      const flushes = files.map((file) => file.sync());
      // Those whose descriptor is open start at once; the others wait for a descriptor.
      expect(cache.pinned).toBe(4);
      expect(syncs).toBe(4);
      await Promise.all(flushes);
    } finally {
      spy.mockRestore();
    }
    expect(syncs).toBe(50);
    expect(most).toBeLessThanOrEqual(4);
    expect(cache.pinned).toBe(0);
  });

  it('lets a waiting sync of a file deleted meanwhile end without reopening it, and syncs a file closed meanwhile', async () => {
    const dir = tempDir();
    const cache = new OpenFiles(1);
    const busy = cache.create(path.join(dir, 'busy'));
    const deleted = cache.create(path.join(dir, 'deleted'));
    const closed = cache.create(path.join(dir, 'closed'));
    append(closed, 'kept');
    void busy.fd;
    const first = busy.sync();
    // busy is pinned and the only one open: both wait for it.
    const waitingDeleted = deleted.sync();
    const waitingClosed = closed.sync();
    expect([deleted.descriptor, closed.descriptor]).toEqual([null, null]);
    deleted.delete();
    closed.close();
    const opened: string[] = [];
    const openSync = fs.openSync;
    const spy = vi.spyOn(fs, 'openSync').mockImplementation((...args: Parameters<typeof fs.openSync>) => {
      opened.push(path.basename(String(args[0])));
      return openSync(...args);
    });
    try {
      await Promise.all([first, waitingDeleted, waitingClosed]);
    } finally {
      spy.mockRestore();
    }
    // The deleted one was never reopened; the closed one was, for its sync, and closed again.
    expect(opened).toEqual(['closed']);
    expect(fs.existsSync(path.join(dir, 'deleted'))).toBe(false);
    expect(closed.descriptor).toBeNull();
    // busy made room for it.
    expect(busy.descriptor).toBeNull();
    expect(cache.size).toBe(0);
    expect(cache.pinned).toBe(0);
  });

  it('gives back one of its own descriptors and retries when the process is out of them (EMFILE)', () => {
    const dir = tempDir();
    const cache = new OpenFiles(8);
    const files = Array.from({ length: 3 }, (_, i) => cache.create(path.join(dir, `f${i}`)));
    const extra = cache.file(files[0]!.path);
    const openSync = fs.openSync;
    let refused = 0;
    const spy = vi.spyOn(fs, 'openSync').mockImplementation((...args: Parameters<typeof fs.openSync>) => {
      if (refused++ === 0) throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
      return openSync(...args);
    });
    try {
      void extra.fd;
    } finally {
      spy.mockRestore();
    }
    expect(refused).toBe(2);
    expect(files[0]!.descriptor).toBeNull();
    expect(cache.size).toBe(3);
  });
});

describe('segments through the thread cache', () => {
  const tempDir = useTempDirs();
  const saved = openFiles().capacity;
  afterEach(() => configureOpenFiles(saved));

  it('reads every record of a log with far more segments than the cache holds, appends on, and reopens it', () => {
    configureOpenFiles(4);
    const dir = tempDir();
    const small = { ...config, segmentBytes: 400 };
    const { log } = PartitionLog.open(dir, small);
    const expected: string[] = [];
    for (let i = 0; i < 400; i++) {
      const value = `value-${i}`;
      log.append(batch([value]));
      expected.push(value);
      // Reads of old, evicted segments between appends.
      if (i % 50 === 49) expect(values(log, 0).slice(0, 10)).toEqual(expected.slice(0, 10));
    }
    expect(log.segmentCount).toBeGreaterThan(100);
    expect(values(log)).toEqual(expected);
    expect(openFiles().size).toBeLessThanOrEqual(4);
    if (hasProcFd) {
      expect(openUnder(dir, '.log')).toBeLessThanOrEqual(4);
      expect(openUnder(dir, 'index')).toBe(0);
    }
    // Every offset, read from the middle of any segment.
    for (let offset = 0; offset < 400; offset += 37) expect(values(log, offset)[0]).toBe(`value-${offset}`);
    log.close();
    expect(openFiles().size).toBe(0);

    const { log: reopened, recovery } = PartitionLog.open(dir, small);
    expect(recovery.truncatedBytes).toBe(0);
    expect(values(reopened)).toEqual(expected);
    reopened.append(batch(['after']));
    expect(values(reopened, 398)).toEqual(['value-398', 'value-399', 'after']);
    reopened.close();
  });

  it('fails an append whose evicted file cannot be reopened (EMFILE) with the log untouched, not offline', () => {
    configureOpenFiles(1);
    const dir = tempDir();
    const { log: first } = PartitionLog.open(path.join(dir, 'a'), config);
    const { log: second } = PartitionLog.open(path.join(dir, 'b'), config);
    first.append(batch(['a0']));
    second.append(batch(['b0'])); // the cache holds one file: a's is closed
    const openSync = fs.openSync;
    const spy = vi.spyOn(fs, 'openSync').mockImplementation((...args: Parameters<typeof fs.openSync>) => {
      if (String(args[0]).endsWith('.log')) throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE' });
      return openSync(...args);
    });
    try {
      expect(() => first.append(batch(['lost']))).toThrow(/EMFILE/);
    } finally {
      spy.mockRestore();
    }
    expect(first.isOffline).toBe(false);
    expect(first.logEndOffset).toBe(1);
    first.append(batch(['a1']));
    expect(values(first)).toEqual(['a0', 'a1']);
    expect(values(second)).toEqual(['b0']);
    first.close();
    second.close();
  });

  it('keeps the process descriptors bounded with 300 partitions and a cache of 64: appends, reads, flushes and checkpoints', async () => {
    if (!hasProcFd) return;
    configureOpenFiles(64);
    const dir = tempDir();
    const before = fs.readdirSync('/proc/self/fd').length;
    const logs = Array.from({ length: 300 }, (_, i) => PartitionLog.open(path.join(dir, `p${i}`), { ...config, segmentBytes: 250 }).log);
    let most = 0;
    const sample = (): void => void (most = Math.max(most, fs.readdirSync('/proc/self/fd').length - before));
    sample();
    // Round-robin, as keyless publishing does: every log gets several segments.
    for (let round = 0; round < 12; round++) {
      for (const [i, log] of logs.entries()) log.append(batch([`p${i}-r${round}`]));
      sample();
    }
    expect(logs.every((log) => log.segmentCount >= 3)).toBe(true);
    for (const [i, log] of logs.entries()) expect(values(log)).toEqual(Array.from({ length: 12 }, (_, round) => `p${i}-r${round}`));
    sample();
    const fdatasync = fs.fdatasync;
    const spy = vi.spyOn(fs, 'fdatasync').mockImplementation((fd, callback) => {
      sample();
      fdatasync(fd, callback);
    });
    try {
      // All at once, as a worker does on close: the syncs beyond the capacity wait for a descriptor.
      await Promise.all(logs.map((log) => log.flush()));
      for (const log of logs) log.append(batch(['more']));
      // One after the other, as the journal checkpoints them.
      for (const log of logs) await log.checkpoint();
    } finally {
      spy.mockRestore();
    }
    sample();
    expect(openUnder(dir, 'index')).toBe(0);
    // 64 cached segment files, one over while every one is pinned, and what a checkpoint opens for a moment (its recovery point, a directory).
    expect(most).toBeLessThanOrEqual(64 + 1 + 4);
    for (const log of logs) expect(log.close()).toBe(true);
    expect(openUnder(dir, '')).toBe(0);
  });
});

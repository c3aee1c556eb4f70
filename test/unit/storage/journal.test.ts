import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/logging/index.js';
import {
  encodeKey,
  forEachRecord,
  Journal,
  JournalRecordWriter,
  PartitionLog,
  RecordBatchBuilder,
  recoverJournal,
  replayJournal,
  type LogConfig,
} from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const config: LogConfig = {
  segmentBytes: 64 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 256,
  retentionMs: -1,
  retentionBytes: -1,
};
const logger = createLogger('silent');
const PARTITIONS = ['topics/a/0', 'topics/a/1', 'topics/b/0'];

function batch(id: string, size = 40): Buffer {
  const builder = new RecordBatchBuilder(64);
  builder.append(1000, 'k', id, null, Buffer.from(id.padEnd(size, '.')));
  return builder.finish();
}

/** messageIDs by offset, as the log holds them. */
function idsOf(log: PartitionLog): string[] {
  const ids: string[] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const data = log.read(offset, 1 << 20);
    if (data.length === 0) break;
    forEachRecord(data, offset, (r) => void ids.push(`${r.offset}:${r.messageId}`));
    offset = Number(ids.at(-1)!.split(':')[0]) + 1;
  }
  return ids;
}

/** What a broker worker does: partitions and a journal in one data directory. */
class Worker {
  readonly logs = new Map<string, PartitionLog>();
  readonly journal: Journal;
  private readonly records = new JournalRecordWriter();

  constructor(
    readonly dataDir: string,
    fileBytes = 1024 * 1024,
  ) {
    for (const key of PARTITIONS) this.logs.set(key, PartitionLog.open(path.join(dataDir, key), config).log);
    this.journal = Journal.open(this.journalDir, { fileBytes }, logger);
  }

  get journalDir(): string {
    return path.join(this.dataDir, 'journal', '0');
  }

  /** One append request: a batch to each of `keys`, written to the segments and in one journal write; returns the bytes journaled. */
  append(keys: string[], id: (key: string) => string): number {
    this.records.reset();
    const logs: PartitionLog[] = [];
    for (const key of keys) {
      const log = this.logs.get(key)!;
      const bytes = batch(id(key));
      log.append(bytes);
      this.records.add(encodeKey(key), bytes);
      logs.push(log);
    }
    this.journal.append(this.records, logs);
    return this.records.byteLength;
  }
}

/** As a power cut leaves segments that were never fsynced: cut back to `recovery-point.json` (or empty). */
function loseUnsyncedSegmentWrites(dataDir: string): void {
  for (const key of PARTITIONS) {
    const dir = path.join(dataDir, key);
    let point = 0;
    try {
      point = (JSON.parse(fs.readFileSync(path.join(dir, 'recovery-point.json'), 'utf8')) as { offset: number }).offset;
    } catch {
      // none: nothing was checkpointed
    }
    fs.rmSync(path.join(dir, '.clean-shutdown'), { force: true });
    const { log } = PartitionLog.open(dir, config);
    const kept = idsOf(log).filter((entry) => Number(entry.split(':')[0]) < point).length;
    log.close();
    // Rewrite the directory with only the kept records (PartitionLog would refuse to cut durable data).
    const fresh = `${dir}.fresh`;
    const { log: copy } = PartitionLog.open(fresh, config);
    const { log: source } = PartitionLog.open(dir, config);
    let offset = 0;
    while (offset < kept) {
      const data = source.read(offset, 1);
      copy.append(Buffer.from(data));
      offset = copy.logEndOffset;
    }
    source.close();
    copy.close();
    fs.rmSync(dir, { recursive: true });
    fs.renameSync(fresh, dir);
    fs.rmSync(path.join(dir, '.clean-shutdown'), { force: true });
  }
}

function reopen(dataDir: string): Map<string, string[]> {
  const contents = new Map<string, string[]>();
  for (const key of PARTITIONS) {
    const { log } = PartitionLog.open(path.join(dataDir, key), config);
    contents.set(key, idsOf(log));
    log.close();
  }
  return contents;
}

function expected(count: number): Map<string, string[]> {
  return new Map(PARTITIONS.map((key) => [key, Array.from({ length: count }, (_, i) => `${i}:${key}#${i}`)]));
}

describe('the write-ahead journal', () => {
  const tempDir = useTempDirs();

  it('gives back, after a crash, every batch it made durable that the segments lost, exactly once and in order', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir);
    for (let i = 0; i < 50; i++) worker.append(PARTITIONS, (key) => `${key}#${i}`);
    worker.journal.syncBlocking();
    // A crash: nothing closed; the segments lose every write (none was fsynced).
    loseUnsyncedSegmentWrites(dataDir);
    expect(reopen(dataDir).get(PARTITIONS[0]!)).toEqual([]);
    const report = await replayJournal(worker.journalDir, dataDir, config, logger);
    expect(report).toMatchObject({ records: 150, restored: 150, partitions: 3, gaps: [] });
    expect(reopen(dataDir)).toEqual(expected(50));
    // The replayed logs were closed clean, and the journal's files are spares: a second replay finds nothing.
    expect(fs.readdirSync(worker.journalDir).filter((f) => f.endsWith('.journal'))).toEqual([]);
    expect((await replayJournal(worker.journalDir, dataDir, config, logger)).records).toBe(0);
    expect(reopen(dataDir)).toEqual(expected(50));
  });

  it('skips what the segments still have (a process crash keeps the page cache), so replaying is harmless', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir);
    for (let i = 0; i < 20; i++) worker.append(PARTITIONS, (key) => `${key}#${i}`);
    worker.journal.syncBlocking();
    const report = await replayJournal(worker.journalDir, dataDir, config, logger);
    expect(report).toMatchObject({ records: 60, restored: 0 });
    expect(reopen(dataDir)).toEqual(expected(20));
  });

  it('restores exactly the whole records before a cut at any byte of the journal, and never an altered one', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir);
    const ends: number[] = [];
    for (let i = 0; i < 6; i++) ends.push((ends.at(-1) ?? 0) + worker.append([PARTITIONS[i % 3]!], (key) => `${key}#${Math.floor(i / 3)}`));
    worker.journal.syncBlocking();
    loseUnsyncedSegmentWrites(dataDir);
    const journalFile = path.join(worker.journalDir, '00000000000000000000.journal');
    const written = fs.readFileSync(journalFile).subarray(0, ends.at(-1));
    // The segments lost everything: each try starts from empty partitions.
    const restoredAfter = async (journalBytes: Buffer): Promise<string[]> => {
      for (const key of PARTITIONS) {
        fs.rmSync(path.join(dataDir, key), { recursive: true });
        fs.mkdirSync(path.join(dataDir, key));
      }
      for (const spare of fs.readdirSync(worker.journalDir)) fs.rmSync(path.join(worker.journalDir, spare));
      fs.writeFileSync(journalFile, journalBytes);
      // What a worker does as it starts (no fsync: the journal keeps its files); the logs it opened hold the result.
      const { logs } = await recoverJournal(worker.journalDir, dataDir, config, logger);
      const ids = [...logs.values()].flatMap((log) => idsOf(log));
      for (const log of logs.values()) log.close();
      return ids;
    };
    const all = [...expected(2).values()].flat();
    const inJournalOrder = [0, 1, 2, 3, 4, 5].map((i) => `${Math.floor(i / 3)}:${PARTITIONS[i % 3]}#${Math.floor(i / 3)}`);
    for (let cut = 0; cut <= written.length; cut++) {
      const whole = ends.filter((end) => end <= cut).length;
      const restored = await restoredAfter(written.subarray(0, cut));
      expect(restored.sort(), `cut at ${cut}`).toEqual(inJournalOrder.slice(0, whole).sort());
    }
    for (let at = 0; at < written.length; at++) {
      const damaged = Buffer.from(written);
      damaged[at] = damaged[at]! ^ 0x5a;
      const before = ends.filter((end) => end <= at).length;
      const restored = await restoredAfter(damaged);
      // The records before the damaged one, none from it on, and none altered.
      expect(restored.sort(), `damage at ${at}`).toEqual(inJournalOrder.slice(0, before).sort());
      for (const id of restored) expect(all).toContain(id);
    }
  });

  it('rolls full files, checkpoints the segments behind them (recovery points), and reuses them without reading their old records', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir, 1024 * 1024);
    let i = 0;
    // About 3.5 MiB of records: three rolls.
    for (; i < 12_000; i++) {
      worker.append(PARTITIONS, (key) => `${key}#${i}`);
      if (i % 1000 === 999) worker.journal.syncBlocking();
    }
    worker.journal.syncBlocking();
    // The checkpoints run in the background, one file after the other: wait for them to end.
    await worker.journal.settled();
    expect(worker.journal.hasFullFiles).toBe(false);
    const files = fs.readdirSync(worker.journalDir).sort();
    expect(files.filter((f) => f.endsWith('.spare')).length).toBeGreaterThan(0);
    expect(files.filter((f) => f.endsWith('.journal')).length).toBe(1);
    const point = JSON.parse(fs.readFileSync(path.join(dataDir, PARTITIONS[0]!, 'recovery-point.json'), 'utf8')) as { offset: number };
    expect(point.offset).toBeGreaterThan(0);
    // More records: the next roll reuses a spare (its stale records carry an older file sequence).
    const spares = files.filter((f) => f.endsWith('.spare'));
    for (let j = 0; j < 4000; j++, i++) worker.append(PARTITIONS, (key) => `${key}#${i}`);
    worker.journal.syncBlocking();
    const after = fs.readdirSync(worker.journalDir);
    expect(after.filter((f) => f.endsWith('.journal')).length).toBeGreaterThan(1);
    expect(spares.filter((f) => after.includes(f)).length, 'spares reused').toBeLessThan(spares.length);
    // The power cut comes between checkpoints (a checkpoint running in this process would go on writing after it).
    await worker.journal.settled();
    // A power cut: the segments lose what was not checkpointed; the journal gives all of it back.
    loseUnsyncedSegmentWrites(dataDir);
    const report = await replayJournal(worker.journalDir, dataDir, config, logger);
    expect(report.gaps).toEqual([]);
    expect(reopen(dataDir)).toEqual(expected(i));
  });

  it('erases, durably, what it wrote since the last good sync when a sync failed: none of it comes back', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir);
    for (let i = 0; i < 10; i++) worker.append(PARTITIONS, (key) => `${key}#${i}`);
    worker.journal.syncBlocking();
    for (let i = 10; i < 20; i++) worker.append(PARTITIONS, (key) => `${key}#${i}`);
    // As Durability does after a failed fdatasync: the journal erases, the logs cut back to their durable end.
    worker.journal.discardUnsynced(new Error('EIO'));
    for (const log of worker.logs.values()) {
      log.markDurable(10);
      log.rollBackToDurableEnd(new Error('EIO'));
    }
    loseUnsyncedSegmentWrites(dataDir);
    await replayJournal(worker.journalDir, dataDir, config, logger);
    expect(reopen(dataDir)).toEqual(expected(10));
  });
});

describe('allocation ahead of the journal writes', () => {
  const tempDir = useTempDirs();
  const records = new JournalRecordWriter();

  /** The file's size now, `directory` holding one journal file. */
  const sizeOf = (directory: string) => fs.statSync(path.join(directory, fs.readdirSync(directory)[0]!)).size;

  /** One append of about 5 KB and its group commit's sync (Durability allocates after it); returns the bytes journaled. */
  function commit(journal: Journal, n: number): number {
    records.reset();
    records.add(encodeKey(PARTITIONS[0]!), batch(`c${n}`, 5000));
    journal.append(records, []);
    journal.syncBlocking();
    return records.byteLength;
  }

  it('refills its zeros in steps once half is used, so that most group commits sync records into a file that did not grow', async () => {
    const directory = tempDir();
    const ahead = 1024 * 1024;
    const journal = Journal.open(directory, { fileBytes: 16 * 1024 * 1024, allocateAheadBytes: ahead }, logger);
    let written = 0;
    const growths: number[] = [];
    // 400 group commits of about 5 KB each (2 MB in all), as Durability runs them: sync, then allocate.
    for (let n = 0; n < 400; n++) {
      written += commit(journal, n);
      const before = sizeOf(directory);
      journal.allocateAhead();
      if (sizeOf(directory) !== before) growths.push(sizeOf(directory) - before);
      // The records always land in zeros written before them: a write never grows the file.
      expect(before).toBeGreaterThan(written);
    }
    // Three more whole steps of 256 KiB after the one at open, then two each time half of the MiB
    // is used: about 10 in all, not one a commit, and never a step of a few KB to top it up.
    expect(growths.length).toBeGreaterThan(4);
    expect(growths.length).toBeLessThanOrEqual(12);
    expect(growths.every((bytes) => bytes === 256 * 1024)).toBe(true);
    await journal.close(false);
  });

  it('writes no zeros that mayAllocate refuses (a free-space reserve), and the records still go in', async () => {
    const directory = tempDir();
    let allow = true;
    const asked: number[] = [];
    const journal = Journal.open(
      directory,
      {
        fileBytes: 16 * 1024 * 1024,
        allocateAheadBytes: 1024 * 1024,
        mayAllocate: (bytes) => {
          asked.push(bytes);
          return allow;
        },
      },
      logger,
    );
    expect(sizeOf(directory)).toBe(256 * 1024);
    allow = false;
    let written = 0;
    for (let n = 0; n < 100; n++) {
      written += commit(journal, n);
      journal.allocateAhead();
    }
    // Asked every time, refused every time: the file is what the records made it, no zeros past them.
    expect(asked.length).toBeGreaterThan(50);
    expect(sizeOf(directory)).toBe(written);
    allow = true;
    journal.allocateAhead();
    expect(sizeOf(directory)).toBe(written + 256 * 1024);
    await journal.close(false);
  });
});

describe('partitions dropped from the journal (topics deleted)', () => {
  const tempDir = useTempDirs();

  /** Deletes a partition as the broker does: closed, dropped from the journal, its directory removed, then made again empty. */
  function dropAndRecreate(worker: Worker, key: string): void {
    const log = worker.logs.get(key)!;
    log.close();
    worker.journal.drop([{ key, log }]);
    fs.rmSync(path.join(worker.dataDir, key), { recursive: true });
    worker.logs.set(key, PartitionLog.open(path.join(worker.dataDir, key), config).log);
  }

  it('never replays a dropped partition’s records into a partition made again under its key, and replays what came after', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir);
    for (let i = 0; i < 5; i++) worker.append(PARTITIONS, (key) => `${key}#${i}`);
    worker.journal.syncBlocking();
    dropAndRecreate(worker, 'topics/a/0');
    for (let i = 0; i < 2; i++) worker.append(['topics/a/0'], () => `new#${i}`);
    worker.journal.syncBlocking();
    // A power cut: the segments lose every write; only the journal has them.
    loseUnsyncedSegmentWrites(dataDir);
    await replayJournal(worker.journalDir, dataDir, config, logger);
    const contents = reopen(dataDir);
    expect(contents.get('topics/a/0')).toEqual(['0:new#0', '1:new#1']);
    expect(contents.get('topics/a/1')).toEqual(expected(5).get('topics/a/1'));
  });

  it('marks at recovery the partitions whose directory is gone, so that a partition made later under the key never gets their records', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir);
    for (let i = 0; i < 3; i++) worker.append(PARTITIONS, (key) => `${key}#${i}`);
    worker.journal.syncBlocking();
    // Deleted while its worker was down: the directory is gone before the journal is recovered.
    fs.rmSync(path.join(dataDir, 'topics/b/0'), { recursive: true });
    const first = await recoverJournal(worker.journalDir, dataDir, config, logger);
    for (const log of first.logs.values()) log.close();
    // Made again, empty; then the broker dies again before the journal's files were let go.
    PartitionLog.open(path.join(dataDir, 'topics/b/0'), config).log.close();
    fs.rmSync(path.join(dataDir, 'topics/b/0', '.clean-shutdown'), { force: true });
    const second = await recoverJournal(worker.journalDir, dataDir, config, logger);
    for (const log of second.logs.values()) log.close();
    expect(second.report.restored).toBe(0);
    expect(reopen(dataDir).get('topics/b/0')).toEqual([]);
  });

  it('forgets its marks once no kept file could hold the records they skip', async () => {
    const dataDir = tempDir();
    const worker = new Worker(dataDir);
    worker.append(PARTITIONS, (key) => `${key}#0`);
    worker.journal.syncBlocking();
    dropAndRecreate(worker, 'topics/a/0');
    const marks = () => JSON.parse(fs.readFileSync(path.join(worker.journalDir, 'dropped.json'), 'utf8')) as Record<string, unknown>;
    expect(Object.keys(marks())).toEqual(['topics/a/0']);
    for (const log of worker.logs.values()) {
      await log.flush();
      log.close();
    }
    await worker.journal.close(true);
    // No file kept: nothing left to skip, and a new file may take any sequence.
    const reopened = Journal.open(worker.journalDir, { fileBytes: 1024 * 1024 }, logger);
    expect(marks()).toEqual({});
    await reopened.close(true);
  });
});

describe('a failed journal write', () => {
  const tempDir = useTempDirs();
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('leaves nothing readable of the request, even the whole records a short write got onto the disk', async () => {
    const dataDir = tempDir();
    const directory = path.join(dataDir, 'journal', '0');
    // A short write (half of the request, then ENOSPC), as a full disk does it.
    vi.resetModules();
    vi.stubEnv('RILL_FAILPOINTS', 'write=short');
    const faulty = await import('../../../src/storage/index.js');
    const journal = faulty.Journal.open(directory, { fileBytes: 1024 * 1024 }, logger);
    const records = new faulty.JournalRecordWriter();
    for (let i = 0; i < 8; i++) {
      const bytes = batch(`lost-${i}`);
      records.add(faulty.encodeKey(PARTITIONS[0]!), bytes);
    }
    expect(() => journal.append(records, [])).toThrow(/ENOSPC/);
    journal.syncBlocking();
    await journal.close(false);
    fs.mkdirSync(path.join(dataDir, PARTITIONS[0]!), { recursive: true });
    const { report, logs } = await recoverJournal(directory, dataDir, config, logger);
    for (const log of logs.values()) log.close();
    // Half of the request held four whole records: erased with the rest.
    expect(report.records).toBe(0);
  });
});

describe('a failed group commit', () => {
  const tempDir = useTempDirs();
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('erases the records of every journal file it covered when only one of them failed to sync', async () => {
    const dataDir = tempDir();
    const directory = path.join(dataDir, 'journal', '0');
    fs.mkdirSync(path.join(dataDir, PARTITIONS[0]!), { recursive: true });
    // Every second fdatasync fails: after a roll, the first file syncs and the second does not.
    vi.resetModules();
    vi.stubEnv('RILL_FAILPOINTS', 'fsync=every-2');
    const faulty = await import('../../../src/storage/index.js');
    const journal = faulty.Journal.open(directory, { fileBytes: 1024 * 1024 }, logger);
    const records = new faulty.JournalRecordWriter();
    let written = 0;
    // Records of about 100 KiB: the eleventh rolls to a second file.
    for (let i = 0; i < 12; i++) {
      records.reset();
      records.add(faulty.encodeKey(PARTITIONS[0]!), batch(`failed-${i}`, 100 * 1024));
      journal.append(records, []);
      written++;
    }
    expect(fs.readdirSync(directory).filter((f) => f.endsWith('.journal')).length).toBe(2);
    expect(() => journal.syncBlocking()).toThrow(/EIO/);
    journal.discardUnsynced(new Error('EIO'));
    await journal.close(false);
    const { report, logs } = await recoverJournal(directory, dataDir, config, logger);
    for (const log of logs.values()) log.close();
    expect(written).toBe(12);
    // Nothing of the failed group commit survives, in either file.
    expect(report.records).toBe(0);
  });
});

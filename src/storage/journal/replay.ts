import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../logging/index.js';
import { PartitionLog, type LogConfig } from '../partition-log.js';
import { isBatchValid, readBatchInfo } from '../record-batch/index.js';
import { DroppedPartitions } from './dropped-partitions.js';
import { JournalFile, journalFileName, listJournalFiles } from './journal-file.js';
import { readJournalRecord, type JournalEntry } from './journal-record.js';

const READ_CHUNK_BYTES = 4 * 1024 * 1024;
/** Partitions checkpointed at once after a replay. */
const CHECKPOINTS_AT_ONCE = 16;
/** Spare files a replayed journal keeps for reuse. */
const SPARES_KEPT = 2;

export interface ReplayReport {
  /** Journal files read. */
  files: number;
  /** Records found in them. */
  records: number;
  /** Batches the segments had lost and got back from the journal. */
  restored: number;
  /** Partitions the journal had records for. */
  partitions: number;
  /** Partitions whose log ends before the journal's first record for it: what lies between is lost. */
  gaps: string[];
}

/** One partition met in the journal: its log, or why its records are skipped. */
type Replayed = { log: PartitionLog } | { skipped: 'missing' | 'gap' };

/** A journal's files after `recoverJournal`: still live, each with the partitions it has records for. */
export interface RecoveredFile {
  sequence: number;
  /** Partition keys (directories relative to the data directory). */
  keys: Set<string>;
}

export interface JournalRecovery {
  files: RecoveredFile[];
  /** Per partition key, the end of its last record in the journal (whether its log had it already or not). */
  journaledEnds: Map<string, number>;
  /** The logs opened (and recovered) on the way, by key, still open: whoever owns them takes them over. */
  logs: Map<string, PartitionLog>;
  report: ReplayReport;
}

/**
 * After a crash, puts back into the partitions' segments every batch the journal in `directory`
 * holds that they lost (a batch the group commit made durable in the journal but whose segment
 * write never reached the disk). Batches the segments already have are skipped, so doing it twice
 * is harmless. Reading a file stops at its first invalid record (zeros, a torn write, a stale
 * record of an earlier use of the file): nothing past it was acknowledged.
 *
 * Nothing is fsynced here: the journal's files stay live, so the records stay durable, and the
 * worker that owns the journal checkpoints them in the background (Journal.open takes them over)
 * instead of holding up its start to write a journal's worth of segments to disk.
 */
export async function recoverJournal(directory: string, dataDir: string, config: LogConfig, logger: Logger): Promise<JournalRecovery> {
  const report: ReplayReport = { files: 0, records: 0, restored: 0, partitions: 0, gaps: [] };
  const files: RecoveredFile[] = [];
  const journaledEnds = new Map<string, number>();
  const partitions = new Map<string, Replayed>();
  const dropped = DroppedPartitions.read(directory);
  for (const sequence of listJournalFiles(directory).live) {
    report.files++;
    const keys = new Set<string>();
    files.push({ sequence, keys });
    readRecords(path.join(directory, journalFileName(sequence)), sequence, (entry, position) => {
      report.records++;
      // A record of a partition deleted since: the directory may be a new topic's of the same name.
      if (dropped.droppedAfter(entry.key, sequence, position)) return;
      keys.add(entry.key);
      let replayed = partitions.get(entry.key);
      if (replayed === undefined) {
        replayed = openPartition(dataDir, entry.key, config, logger);
        partitions.set(entry.key, replayed);
      }
      if ('skipped' in replayed) return;
      const { log } = replayed;
      const info = readBatchInfo(entry.batch);
      journaledEnds.set(entry.key, Math.max(journaledEnds.get(entry.key) ?? 0, info.nextOffset));
      if (info.nextOffset <= log.logEndOffset) return;
      // A damaged batch ends the file, as a damaged record does: nothing after it was acknowledged.
      if (!isBatchValid(entry.batch, 0, entry.batch.length)) return false;
      if (info.baseOffset !== log.logEndOffset) {
        // The segments lost more than the journal holds: never when checkpoints kept their promise.
        logger.error(
          { partition: entry.key, logEndOffset: log.logEndOffset, journalOffset: info.baseOffset },
          'journal replay found a gap: the batches between are lost',
        );
        report.gaps.push(entry.key);
        log.close();
        partitions.set(entry.key, { skipped: 'gap' });
        return;
      }
      log.append(entry.batch);
      report.restored++;
    });
  }
  // The journal's own tail may be only in the page cache (the process died before a group commit
  // ended): made durable now, before anything it holds becomes readable.
  for (const { sequence } of files) syncFileNow(path.join(directory, journalFileName(sequence)));
  // Partitions whose directory is gone (a topic deleted while its worker was down, say): their
  // records in these files are never to be replayed, even once a topic of the same name exists.
  const gone = [...partitions].filter(([, replayed]) => 'skipped' in replayed && replayed.skipped === 'missing').map(([key]) => key);
  if (gone.length > 0 && files.length > 0) {
    const last = files[files.length - 1]!.sequence;
    dropped.add(gone, { sequence: last, position: Number.MAX_SAFE_INTEGER }, files[0]!.sequence);
  }
  const logs = new Map<string, PartitionLog>();
  for (const [key, replayed] of partitions) {
    if (!('log' in replayed)) continue;
    // What came back from the journal is as durable as the journal: readers may see it.
    replayed.log.markDurable(replayed.log.logEndOffset);
    logs.set(key, replayed.log);
  }
  report.partitions = logs.size;
  if (report.files > 0) {
    if (report.restored > 0 || report.gaps.length > 0) logger.warn({ journal: directory, ...report }, 'journal replayed after a crash');
    else
      logger.info(
        { journal: directory, files: report.files, records: report.records, partitions: report.partitions },
        'journal checked after a crash: the segments had every batch',
      );
  }
  return { files, journaledEnds, logs, report };
}

/**
 * `recoverJournal`, then the segments (and their directories) are made durable, the logs closed
 * clean, and the journal's files kept as spares: for a journal no worker will take over (the
 * number of workers changed since it was written).
 */
export async function replayJournal(directory: string, dataDir: string, config: LogConfig, logger: Logger): Promise<ReplayReport> {
  const { files, logs: opened, report } = await recoverJournal(directory, dataDir, config, logger);
  if (files.length === 0) return report;
  // Several partitions at a time, their fsyncs overlapping on the thread pool.
  const logs = [...opened.values()];
  let next = 0;
  const checkpointNext = async (): Promise<void> => {
    while (next < logs.length) {
      const log = logs[next++]!;
      await log.checkpoint();
      log.markDurable(log.logEndOffset);
      log.close();
    }
  };
  await Promise.all(Array.from({ length: CHECKPOINTS_AT_ONCE }, checkpointNext));
  retire(
    directory,
    files.map((file) => file.sequence),
  );
  return report;
}

/** The live journal files become spares (the newest few) or are deleted. */
function retire(directory: string, live: number[]): void {
  const { spares } = listJournalFiles(directory);
  const keep = Math.max(0, SPARES_KEPT - spares.length);
  live.forEach((sequence, i) => {
    const file = path.join(directory, journalFileName(sequence));
    if (i >= live.length - keep) JournalFile.retireClosed(directory, sequence);
    else fs.rmSync(file, { force: true });
  });
}

function openPartition(dataDir: string, key: string, config: LogConfig, logger: Logger): Replayed {
  const directory = path.resolve(dataDir, key);
  const relative = path.relative(path.resolve(dataDir), directory);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative) || !fs.existsSync(directory)) {
    // A topic deleted since (or a key that is not a partition of this data directory).
    logger.error({ partition: key }, 'the journal has records for a partition whose directory is gone: they are skipped');
    return { skipped: 'missing' };
  }
  return { log: PartitionLog.open(directory, config).log };
}

function syncFileNow(file: string): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Calls `visit` for each valid record of the file, in order, until the first invalid one or until `visit` returns false. */
function readRecords(file: string, sequence: number, visit: (entry: JournalEntry, position: number) => boolean | undefined): void {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    let chunkStart = 0;
    let chunkLength = fs.readSync(fd, chunk, 0, chunk.length, 0);
    let at = 0;
    while (at < size) {
      const result = readJournalRecord(chunk.subarray(0, chunkLength), at - chunkStart, sequence);
      if (result === 'end') return;
      if (result === 'incomplete') {
        if (chunkStart === at && chunkLength === chunk.length) {
          // A record larger than the chunk (or claiming to be): read it whole, if the file holds it.
          const claimed = chunk.readUInt32LE(0);
          if (at + claimed > size) return;
          chunk = Buffer.allocUnsafe(claimed);
        } else if (chunkStart + chunkLength >= size) return;
        chunkStart = at;
        chunkLength = fs.readSync(fd, chunk, 0, chunk.length, at);
        if (chunkLength === 0) return;
        continue;
      }
      if (visit(result.entry, at) === false) return;
      at += result.size;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** `workers.json` beside the journals: how many broker workers wrote them, so which worker owns which partition. */
const WORKERS_FILE = 'workers.json';

/**
 * Before the broker workers start: replays here the journals that their worker cannot replay
 * itself. When the number of workers is the one that wrote the journals, each worker owns the
 * same partitions as before and replays its own journal as it starts, all of them at once; only
 * journals of workers that no longer exist are replayed here. When the number changed, a
 * journal's partitions may belong to another worker now, so every journal is replayed here, one
 * after the other. Then the number of workers is written down for the next start.
 */
export async function replayJournals(journalsDirectory: string, dataDir: string, config: LogConfig, logger: Logger, workers: number): Promise<void> {
  let names: string[];
  try {
    names = fs.readdirSync(journalsDirectory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    names = [];
  }
  const sameWorkers = readWorkers(journalsDirectory) === workers;
  const indexes = names
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((index) => !sameWorkers || index >= workers)
    .sort((a, b) => a - b);
  for (const index of indexes) await replayJournal(path.join(journalsDirectory, String(index)), dataDir, config, logger);
  if (!sameWorkers) writeWorkers(journalsDirectory, workers);
}

function readWorkers(journalsDirectory: string): number | null {
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(journalsDirectory, WORKERS_FILE), 'utf8')) as { v?: unknown; workers?: unknown };
    return parsed.v === 1 && typeof parsed.workers === 'number' ? parsed.workers : null;
  } catch {
    return null;
  }
}

/** Written atomically and durably: a wrong number would let a worker skip a journal it does not own. */
function writeWorkers(journalsDirectory: string, workers: number): void {
  fs.mkdirSync(journalsDirectory, { recursive: true });
  const file = path.join(journalsDirectory, WORKERS_FILE);
  const fd = fs.openSync(`${file}.tmp`, 'w');
  try {
    fs.writeSync(fd, JSON.stringify({ v: 1, workers }));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(`${file}.tmp`, file);
}

import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../logging/index.js';
import { PartitionLog, type LogConfig } from '../partition-log.js';
import { readBatchInfo } from '../record-batch.js';
import { JournalFile, journalFileName, listJournalFiles } from './journal-file.js';
import { readJournalRecord, type JournalEntry } from './journal-record.js';

const READ_CHUNK_BYTES = 4 * 1024 * 1024;
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

/**
 * After a crash, puts back into the partitions' segments every batch the journal in `directory`
 * holds that they lost (a batch the group commit made durable in the journal but whose segment
 * write never reached the disk), makes the segments durable, marks those logs clean, and then
 * keeps the journal's files as spares. Batches the segments already have are skipped, so
 * replaying twice is harmless. Reading a file stops at its first invalid record (zeros, a torn
 * write, a stale record of an earlier use of the file): nothing past it was acknowledged.
 *
 * Runs before any broker worker opens the partitions (Broker.start, for every worker's journal,
 * whatever the number of workers now), and in a worker that restarts after it died (its own).
 */
export async function replayJournal(directory: string, dataDir: string, config: LogConfig, logger: Logger): Promise<ReplayReport> {
  const report: ReplayReport = { files: 0, records: 0, restored: 0, partitions: 0, gaps: [] };
  const { live } = listJournalFiles(directory);
  if (live.length === 0) return report;
  const partitions = new Map<string, Replayed>();
  for (const sequence of live) {
    report.files++;
    readRecords(path.join(directory, journalFileName(sequence)), sequence, (entry) => {
      report.records++;
      let replayed = partitions.get(entry.key);
      if (replayed === undefined) {
        replayed = openPartition(dataDir, entry.key, config, logger);
        partitions.set(entry.key, replayed);
      }
      if ('skipped' in replayed) return;
      const { log } = replayed;
      const info = readBatchInfo(entry.batch);
      if (info.baseOffset + info.recordCount <= log.logEndOffset) return;
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
  for (const replayed of partitions.values()) {
    if ('skipped' in replayed) continue;
    report.partitions++;
    await replayed.log.checkpoint();
    replayed.log.markDurable(replayed.log.logEndOffset);
    replayed.log.close();
  }
  retire(directory, live);
  if (report.restored > 0 || report.gaps.length > 0) logger.warn({ journal: directory, ...report }, 'journal replayed after a crash');
  else
    logger.info(
      { journal: directory, files: report.files, records: report.records, partitions: report.partitions },
      'journal checked after a crash: the segments had every batch',
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
    logger.warn({ partition: key }, 'journal records for a partition that no longer exists are skipped');
    return { skipped: 'missing' };
  }
  return { log: PartitionLog.open(directory, config).log };
}

/** Calls `visit` for each valid record of the file, in order, until the first invalid one. */
function readRecords(file: string, sequence: number, visit: (entry: JournalEntry) => void): void {
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
      visit(result.entry);
      at += result.size;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Replays the journal of every broker worker found under `journalsDirectory` (`<dataDir>/journal`),
 * one after the other, before any worker starts: the number of workers may have changed since
 * they were written, so a journal's partitions may now belong to another worker.
 */
export async function replayJournals(journalsDirectory: string, dataDir: string, config: LogConfig, logger: Logger): Promise<void> {
  let names: string[];
  try {
    names = fs.readdirSync(journalsDirectory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  for (const name of names.filter((entry) => /^\d+$/.test(entry)).sort((a, b) => Number(a) - Number(b))) {
    await replayJournal(path.join(journalsDirectory, name), dataDir, config, logger);
  }
}

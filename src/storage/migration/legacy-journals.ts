import fs from 'node:fs';
import path from 'node:path';
import { syncDirectoryNow } from '../sync-directory.js';
import { JOURNALS_DIRECTORY, listJournalDirectories, WORKERS_FILE } from './data-layout.js';
import { readBatchInfo } from './legacy-batch.js';
import { forEachLegacyRecord, type JournalFileRef, journalFileFormat, listJournalFiles } from './legacy-journal-file.js';

/** Where a batch of a partition lies in the legacy journals; its bytes are read only if it is needed. */
export interface JournaledBatch {
  /** Which journal directory (the order the old start-up replayed them in). */
  journal: number;
  file: JournalFileRef;
  /** Where the batch starts in the file, and its size. */
  position: number;
  size: number;
  baseOffset: number;
  nextOffset: number;
}

/**
 * Every batch the legacy journals' live files hold, by partition key, in the order the old
 * start-up replayed them (journal directory, file, position), and how many live files there were.
 * Only positions are kept: a journal holds up to a few files of records per worker, and after a
 * clean shutdown none at all.
 */
export function indexLegacyJournals(dataDir: string): { byKey: Map<string, JournaledBatch[]>; liveFiles: number } {
  const byKey = new Map<string, JournaledBatch[]>();
  let liveFiles = 0;
  listJournalDirectories(dataDir).forEach((directory, journal) => {
    for (const file of listJournalFiles(directory)) {
      if (!file.live || journalFileFormat(file) !== 'legacy') continue;
      liveFiles++;
      forEachLegacyRecord(file, ({ key, batch, position }) => {
        const info = readBatchInfo(batch);
        const entry = { journal, file, position, size: batch.length, baseOffset: info.baseOffset, nextOffset: info.baseOffset + info.recordCount };
        const list = byKey.get(key);
        if (list === undefined) byKey.set(key, [entry]);
        else list.push(entry);
      });
    }
  });
  return { byKey, liveFiles };
}

/** A journaled batch's bytes, read from its file. */
export function readJournaledBatch(entry: JournaledBatch): Buffer {
  const fd = fs.openSync(entry.file.file, 'r');
  try {
    const batch = Buffer.alloc(entry.size);
    const read = fs.readSync(fd, batch, 0, entry.size, entry.position);
    if (read !== entry.size) throw new Error(`${entry.file.file} ends inside a batch it held a moment ago`);
    return batch;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Once every partition holds what the journals had for it, durably: removes the journal files in
 * the old format (and those holding no record) and `workers.json`, so that the next start
 * replays nothing. The journal directories stay. A file whose records are already in the new
 * format (never there, unless `format.json` was removed by hand) is left for the broker.
 */
export function removeLegacyJournals(dataDir: string): number {
  let removed = 0;
  for (const directory of listJournalDirectories(dataDir)) {
    const legacy = listJournalFiles(directory).filter((file) => journalFileFormat(file) !== 'current');
    for (const { file } of legacy) fs.rmSync(file, { force: true });
    if (legacy.length > 0) syncDirectoryNow(directory);
    removed += legacy.length;
  }
  const root = path.join(dataDir, JOURNALS_DIRECTORY);
  if (fs.existsSync(root)) {
    // Without it the next start replays every journal itself, whatever its number of workers.
    for (const name of [WORKERS_FILE, `${WORKERS_FILE}.tmp`]) fs.rmSync(path.join(root, name), { force: true });
    syncDirectoryNow(root);
  }
  return removed;
}

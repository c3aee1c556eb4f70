import fs from 'node:fs';
import path from 'node:path';
import { BATCH_MAGIC, OFFSET_OF_MAGIC } from '../record-batch/layout.js';
import { listJournalDirectories, listPartitions, listSegments, readHead, writeFileAtomically } from './data-layout.js';
import { LEGACY_BATCH_MAGIC } from './legacy-batch.js';
import { journalFileFormat, listJournalFiles } from './legacy-journal-file.js';

/**
 * `<dataDir>/format.json`: the data directory holds Kafka's RecordBatch v2 only. Written once
 * nothing in the old format is left (by the first start on a new directory, or by the migration,
 * last), so that later starts need not look at any segment.
 */
const FORMAT_FILE = 'format.json';
const CURRENT_FORMAT = { v: 2, records: 'kafka-record-batch-v2' } as const;

export type DataFormat = 'current' | 'legacy';

/** What a partition's segments hold, by the first batch of each: 'empty' when none has one. */
export type PartitionFormat = 'current' | 'legacy' | 'empty';

/** The data directory holds records in the old format: the broker must not open it before `rill migrate`. */
export class LegacyDataFormatError extends Error {
  /** What is wrong, without the fix: "data directory ./data holds records in Rill's old format (...)". */
  readonly problem: string;

  constructor(
    /** The data directory as the operator named it. */
    readonly dataDir: string,
    /** The command that converts it. */
    readonly command: string,
    /** The first file found in the old format, or what a migration stopped half-way left. */
    readonly evidence: string,
  ) {
    const problem = `data directory ${dataDir} holds records in Rill's old format (before Kafka's RecordBatch v2)`;
    super(`${problem}; stop the broker and run: ${command}`);
    this.name = 'LegacyDataFormatError';
    this.problem = problem;
  }
}

/**
 * Throws LegacyDataFormatError when the data directory holds records in the old format. Runs
 * before anything opens a log or replays a journal: the new code would take every old batch for
 * a corrupt one and cut it off. `shownAs` is how the operator named the directory, for the message.
 */
export function assertCurrentDataFormat(dataDir: string, shownAs = dataDir): void {
  const evidence = findLegacyData(dataDir);
  if (evidence !== null) throw new LegacyDataFormatError(shownAs, `rill migrate --data-dir ${shellWord(shownAs)}`, evidence);
}

/**
 * Whether the data directory is in the current format or still holds the old one. Without
 * `format.json`, it looks at the first batch of every segment and the first record of every
 * journal file (a few bytes each); when nothing is in the old format, it writes `format.json`.
 */
export function checkDataFormat(dataDir: string): DataFormat {
  return findLegacyData(dataDir) === null ? 'current' : 'legacy';
}

/** The first thing found in the old format (a file, a directory the migration left), or null; null writes `format.json`. */
function findLegacyData(dataDir: string): string | null {
  if (formatFileSaysCurrent(dataDir)) return null;
  const evidence = findLegacyPartition(dataDir) ?? findLegacyJournal(dataDir);
  if (evidence === null) writeFormatFile(dataDir);
  return evidence;
}

/** Whether `format.json` says the directory is current. One naming another format stops the start. */
export function formatFileSaysCurrent(dataDir: string): boolean {
  const file = path.join(dataDir, FORMAT_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  let parsed: { v?: unknown; records?: unknown } | null = null;
  try {
    parsed = JSON.parse(text) as { v?: unknown; records?: unknown };
  } catch {
    // Reported below with its content.
  }
  if (parsed?.v === CURRENT_FORMAT.v && parsed.records === CURRENT_FORMAT.records) return true;
  throw new Error(`${file} names a data format this version of Rill does not know (${text.trim().slice(0, 200)}): it was written by another version`);
}

/** Written atomically and durably, once nothing in the old format is left. */
export function writeFormatFile(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true });
  writeFileAtomically(path.join(dataDir, FORMAT_FILE), JSON.stringify(CURRENT_FORMAT) + '\n');
}

function findLegacyPartition(dataDir: string): string | null {
  for (const place of listPartitions(dataDir)) {
    // A migration stopped half-way: only `rill migrate` knows how to finish it.
    for (const leftover of [place.migrating, place.legacy]) if (fs.existsSync(leftover)) return leftover;
    const segment = firstLegacySegment(place.directory);
    if (segment !== null) return segment;
  }
  return null;
}

function findLegacyJournal(dataDir: string): string | null {
  for (const directory of listJournalDirectories(dataDir)) {
    const legacy = listJournalFiles(directory).find((file) => file.live && journalFileFormat(file) === 'legacy');
    if (legacy !== undefined) return legacy.file;
  }
  return null;
}

/** What a partition's segments hold, by the magic byte of each one's first batch. */
export function partitionFormat(directory: string): PartitionFormat {
  let format: PartitionFormat = 'empty';
  for (const { file } of listSegments(directory)) {
    const magic = firstBatchMagic(file);
    if (magic === LEGACY_BATCH_MAGIC) return 'legacy';
    if (magic === BATCH_MAGIC) format = 'current';
  }
  return format;
}

function firstLegacySegment(directory: string): string | null {
  return listSegments(directory).find(({ file }) => firstBatchMagic(file) === LEGACY_BATCH_MAGIC)?.file ?? null;
}

/** The magic byte of a segment's first batch (at byte 16 in both formats); undefined when the file is shorter. */
function firstBatchMagic(file: string): number | undefined {
  return readHead(file, OFFSET_OF_MAGIC + 1)[OFFSET_OF_MAGIC];
}

/** A path as one shell word: as it is when it needs no quoting, else in single quotes. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

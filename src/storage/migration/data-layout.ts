import fs from 'node:fs';
import path from 'node:path';
import { syncDirectoryNow } from '../sync-directory.js';

/*
 * Where a data directory keeps what the migration reads and writes. The names are those of
 * TopicCatalog (`topics/<topic>/<partition>/`) and of the broker's journals (`journal/<worker>/`,
 * broker/log-config.ts): storage cannot import the broker, and the tests check that they agree.
 */
export const TOPICS_DIRECTORY = 'topics';
export const JOURNALS_DIRECTORY = 'journal';
/** `journal/workers.json`: how many broker workers wrote the journals. */
export const WORKERS_FILE = 'workers.json';
/** Beside a partition's directory while its conversion is written; complete once renamed to the partition's name. */
const MIGRATING_SUFFIX = '.migrating';
/** The partition's old directory, between the two renames of the swap and until it is removed. */
const LEGACY_SUFFIX = '.legacy';

/** A partition of the data directory and the directories its migration uses beside it. */
export interface PartitionPlace {
  /** The partition's directory relative to the data directory: its key in journal records. */
  key: string;
  topicDirectory: string;
  directory: string;
  migrating: string;
  legacy: string;
}

const PARTITION_NAME = /^(\d+)(\.migrating|\.legacy)?$/;
const SEGMENT_NAME = /^\d{20}\.log$/;

/**
 * Every partition of the data directory, by topic then partition number, including those that
 * only exist as a `.migrating` or `.legacy` directory (a migration stopped half-way).
 */
export function listPartitions(dataDir: string): PartitionPlace[] {
  const root = path.join(dataDir, TOPICS_DIRECTORY);
  const places: PartitionPlace[] = [];
  for (const topic of listDirectories(root).sort()) {
    const topicDirectory = path.join(root, topic);
    const numbers = new Set<number>();
    for (const name of listDirectories(topicDirectory)) {
      const match = PARTITION_NAME.exec(name);
      if (match !== null) numbers.add(Number(match[1]));
    }
    for (const partition of [...numbers].sort((a, b) => a - b)) places.push(placeOf(dataDir, topicDirectory, String(partition)));
  }
  return places;
}

function placeOf(dataDir: string, topicDirectory: string, name: string): PartitionPlace {
  const directory = path.join(topicDirectory, name);
  return {
    key: path.relative(dataDir, directory),
    topicDirectory,
    directory,
    migrating: directory + MIGRATING_SUFFIX,
    legacy: directory + LEGACY_SUFFIX,
  };
}

/** A partition's segment files (`<20-digit base offset>.log`), by base offset. */
export function listSegments(directory: string): Array<{ baseOffset: number; file: string }> {
  return listEntries(directory)
    .filter((name) => SEGMENT_NAME.test(name))
    .map((name) => ({ baseOffset: Number(name.slice(0, 20)), file: path.join(directory, name) }))
    .sort((a, b) => a.baseOffset - b.baseOffset);
}

export function segmentFileName(baseOffset: number): string {
  return `${String(baseOffset).padStart(20, '0')}.log`;
}

/** The broker workers' journal directories (`journal/<worker index>/`), by index. */
export function listJournalDirectories(dataDir: string): string[] {
  const root = path.join(dataDir, JOURNALS_DIRECTORY);
  return listDirectories(root)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(a) - Number(b))
    .map((name) => path.join(root, name));
}

/** Names in a directory; none when it does not exist. */
export function listEntries(directory: string): string[] {
  try {
    return fs.readdirSync(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

function listDirectories(directory: string): string[] {
  try {
    return fs
      .readdirSync(directory, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** Reads up to `length` bytes from the start of `file`; fewer when it is shorter. */
export function readHead(file: string, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(length);
    const read = fs.readSync(fd, head, 0, length, 0);
    return head.subarray(0, read);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes `contents` to `file` atomically and durably: a temporary file, fsynced, renamed over
 * it, then the directory fsynced. A crash leaves the old file or the new one, whole.
 */
export function writeFileAtomically(file: string, contents: string): void {
  const temporary = `${file}.tmp`;
  const fd = fs.openSync(temporary, 'w');
  try {
    fs.writeSync(fd, contents);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  syncDirectoryNow(path.dirname(file));
}

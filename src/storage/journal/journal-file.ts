import fs from 'node:fs';
import path from 'node:path';
import { failpointError, failpointsActive, noSpaceError, writeFailpoint } from '../failpoints.js';

const JOURNAL_SUFFIX = '.journal';
const SPARE_SUFFIX = '.spare';
const ZEROS = Buffer.alloc(1024 * 1024);
/**
 * Zeros written per allocation step. A step runs after a group commit's answers, on the worker's
 * thread, while the allocation refills: short (about a tenth of a millisecond here) rather than
 * one stall of a whole MiB, and far more than a commit writes unless its batches pass 256 KiB.
 */
const ALLOCATION_STEP_BYTES = 256 * 1024;

export function journalFileName(sequence: number): string {
  return String(sequence).padStart(20, '0') + JOURNAL_SUFFIX;
}

function spareFileName(sequence: number): string {
  return String(sequence).padStart(20, '0') + SPARE_SUFFIX;
}

/** A journal file that could not be put back after a failed write: the journal refuses writes until a restart. */
export class JournalBrokenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JournalBrokenError';
  }
}

/** The files of a journal directory: live ones (to replay) and spares (to reuse), each by sequence, oldest first. */
export function listJournalFiles(directory: string): { live: number[]; spares: number[] } {
  const live: number[] = [];
  const spares: number[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { live, spares };
    throw error;
  }
  for (const name of names) {
    const match = /^(\d{20})\.(journal|spare)$/.exec(name);
    if (match === null) continue;
    (match[2] === 'journal' ? live : spares).push(Number(match[1]));
  }
  return { live: live.sort((a, b) => a - b), spares: spares.sort((a, b) => a - b) };
}

/**
 * One file of a broker worker's journal, written from its start. Its bytes are allocated ahead
 * of the writes (zeros written after a group commit's answers, or a whole file reused): an
 * fdatasync then has only data to write, not the file's size, which is what keeps the group
 * commit near the disk's own latency.
 */
export class JournalFile {
  /** Where the next record goes. */
  position = 0;
  /** Bytes from the start known to be on disk. */
  syncedTo = 0;
  /** Bytes the file has (zeros or stale records): writes below this do not grow the file. */
  private allocated: number;
  /** Between the allocation falling to half of what it keeps ahead and its being full again. */
  private refilling = false;

  private constructor(
    readonly path: string,
    readonly sequence: number,
    private readonly fd: number,
    allocated: number,
  ) {
    this.allocated = allocated;
  }

  /** A new, empty file. */
  static create(directory: string, sequence: number): JournalFile {
    const file = path.join(directory, journalFileName(sequence));
    return new JournalFile(file, sequence, fs.openSync(file, 'w+'), 0);
  }

  /** Reuses a spare file under a new sequence: its old records carry the old one, so reading stops at them. */
  static reuse(directory: string, spareSequence: number, sequence: number): JournalFile {
    const file = path.join(directory, journalFileName(sequence));
    fs.renameSync(path.join(directory, spareFileName(spareSequence)), file);
    const fd = fs.openSync(file, 'r+');
    return new JournalFile(file, sequence, fd, fs.fstatSync(fd).size);
  }

  get unsynced(): boolean {
    return this.position > this.syncedTo;
  }

  /**
   * Writes `bytes` at the end: all of them, or throws with the file's position unchanged. What a
   * failed write did write (whole records among them, with this file's sequence and good CRCs) is
   * overwritten with zeros first, so that it can never be read back; if even that fails,
   * JournalBrokenError is thrown: the file can no longer be trusted.
   */
  append(bytes: Buffer): void {
    let written = 0;
    try {
      if (failpointsActive) {
        const fault = writeFailpoint();
        if (fault === 'short') written = fs.writeSync(this.fd, bytes, 0, bytes.length >>> 1, this.position);
        if (fault !== null) throw noSpaceError('write');
      }
      while (written < bytes.length) {
        const count = fs.writeSync(this.fd, bytes, written, bytes.length - written, this.position + written);
        if (count <= 0) throw Object.assign(new Error(`journal write made no progress in ${this.path}`), { code: 'EIO' });
        written += count;
      }
    } catch (error) {
      if (written > 0) this.erase(this.position, this.position + written, error);
      throw error;
    }
    this.position += bytes.length;
  }

  /** Overwrites [from, to) with zeros (no fsync: nothing there was ever synced). */
  private erase(from: number, to: number, cause: unknown): void {
    try {
      for (let at = from; at < to; at += ZEROS.length) fs.writeSync(this.fd, ZEROS, 0, Math.min(ZEROS.length, to - at), at);
    } catch (error) {
      throw new JournalBrokenError(`${this.path}: a failed write could not be erased (${(error as Error).message})`, { cause });
    }
  }

  /**
   * Keeps up to `aheadBytes` allocated past the write position (without passing `capacity`): once
   * half of it or less is left, one step of zeros a call until it is within a step of full again;
   * `mayWrite` is asked first (a free-space reserve may refuse). Returns whether zeros were
   * written. Refilled in whole steps, never topped up by what the last commit wrote: a file that
   * grows at every group commit makes every commit's fdatasync also commit the file system's own
   * journal (the new size and blocks), twice the device flushes. The zeros are not synced here:
   * the next group commit's fdatasync makes them durable with its records (an fdatasync of its
   * own, beside the group commit's on the same file, could take a write error that belongs to
   * the group commit's records, and the group commit would then report success).
   */
  allocateAhead(aheadBytes: number, capacity: number, mayWrite: (bytes: number) => boolean): boolean {
    if (this.allocated >= capacity) return false;
    const step = Math.min(ALLOCATION_STEP_BYTES, aheadBytes);
    if (!this.refilling && this.allocated - this.position > aheadBytes / 2) return false;
    const from = Math.max(this.allocated, this.position);
    const length = Math.min(step, capacity - from);
    if (length <= 0 || !mayWrite(length)) return false;
    this.refilling = true;
    const count = fs.writeSync(this.fd, ZEROS, 0, length, from);
    this.allocated = from + count;
    if (count === 0 || this.allocated >= capacity || this.allocated - this.position > aheadBytes - step) this.refilling = false;
    return count > 0;
  }

  /**
   * fdatasync of the file; does not count the records as durable: the journal does that
   * (`markSynced`) once every file and the directory of a group commit have synced, so that a
   * failure in any of them erases the records of all (`discardUnsynced`).
   */
  syncDataBlocking(): void {
    if (failpointsActive) {
      const injected = failpointError('fsync', 'fdatasync');
      if (injected !== null) throw injected;
    }
    fs.fdatasyncSync(this.fd);
  }

  /** The bytes below `target` are durable. */
  markSynced(target: number): void {
    if (target > this.syncedTo) this.syncedTo = target;
  }

  /**
   * After a failed sync, what was written since the last good one may or may not be on disk: it
   * is overwritten with zeros and that made durable (without the failpoint: this is the repair),
   * so that no record reported as failed is ever read back. Throws if that cannot be done.
   */
  discardUnsynced(): void {
    let at = this.syncedTo;
    while (at < this.position) {
      const length = Math.min(ZEROS.length, this.position - at);
      fs.writeSync(this.fd, ZEROS, 0, length, at);
      at += length;
    }
    fs.fdatasyncSync(this.fd);
    this.position = this.syncedTo;
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Renames the live file `sequence` of `directory` to a spare. */
  static retireClosed(directory: string, sequence: number): void {
    fs.renameSync(path.join(directory, journalFileName(sequence)), path.join(directory, spareFileName(sequence)));
  }
}

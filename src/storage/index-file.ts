import fs from 'node:fs';

/**
 * A file of fixed-size entries mirrored in memory, appended as the log grows. Indexes are never
 * fsynced: recovery rebuilds them from the log, which is the only source of truth. Lookups use the
 * entries in memory; the file keeps no descriptor open: new entries are written to it only when
 * asked (`persist`: when the segment is sealed, at checkpoints, on close), in one open, write and
 * close. A crash may therefore leave the file shorter than the entries were (recovery checks the
 * index against the log and rebuilds what is missing); a cut, though, is made in the file at once,
 * so that it never names batches the log has removed.
 */
export class IndexFile {
  private entries: Buffer;
  private entryCount = 0;
  /** Entries the file holds: the first `persistedCount` of `entries`. */
  private persistedCount = 0;
  /** A write to the file failed: the file holds a valid prefix and is no longer written. */
  private writeFailed = false;

  private constructor(
    readonly path: string,
    readonly entryBytes: number,
    contents: Buffer,
  ) {
    this.entryCount = Math.floor(contents.length / entryBytes);
    this.persistedCount = this.entryCount;
    this.entries = Buffer.alloc(Math.max(contents.length, entryBytes * 64));
    contents.copy(this.entries, 0, 0, this.entryCount * entryBytes);
  }

  /** Reads the file, if any (it is created at the first `persist`); a trailing partial entry is cut off. */
  static open(path: string, entryBytes: number): IndexFile {
    let contents: Buffer;
    try {
      contents = fs.readFileSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      contents = Buffer.alloc(0);
    }
    const index = new IndexFile(path, entryBytes, contents);
    if (contents.length !== index.entryCount * entryBytes) index.rewrite();
    return index;
  }

  get count(): number {
    return this.entryCount;
  }

  /** The in-memory entries; valid until the next append. */
  get view(): Buffer {
    return this.entries;
  }

  /** Reserves the next entry and returns its position in `view`; call `commit()` after writing it. */
  reserve(): number {
    const needed = (this.entryCount + 1) * this.entryBytes;
    if (needed > this.entries.length) {
      const grown = Buffer.alloc(this.entries.length * 2);
      this.entries.copy(grown);
      this.entries = grown;
    }
    return this.entryCount * this.entryBytes;
  }

  /** Counts the reserved entry in. It reaches the file at the next `persist`. */
  commit(): void {
    this.entryCount++;
  }

  /**
   * Appends to the file the entries it does not have yet: open, write, close. The entries in
   * memory are what serves lookups; the file only spares recovery a rebuild, so a failed write (a
   * full disk) stops writing the file rather than failing anything: it keeps a valid prefix (a
   * partly written entry is cut off again), and recovery rebuilds the rest from the log.
   */
  persist(): void {
    if (this.writeFailed || this.persistedCount >= this.entryCount) return;
    let fd: number | null = null;
    let start = this.persistedCount * this.entryBytes;
    let written = 0;
    try {
      fd = fs.openSync(this.path, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
      if (fs.fstatSync(fd).size !== start) {
        // Not the file this index wrote (removed, or changed behind its back): write it whole.
        fs.ftruncateSync(fd, 0);
        start = 0;
        this.persistedCount = 0;
      }
      const end = this.entryCount * this.entryBytes;
      while (start + written < end) {
        const count = fs.writeSync(fd, this.entries, start + written, end - start - written, start + written);
        if (count <= 0) throw new Error('an index write made no progress');
        written += count;
      }
      this.persistedCount = this.entryCount;
    } catch {
      this.writeFailed = true;
      const whole = start + written - ((start + written) % this.entryBytes);
      this.persistedCount = whole / this.entryBytes;
      try {
        // A partly written entry would be read as a real one: keep only whole, written entries.
        if (fd !== null) fs.ftruncateSync(fd, whole);
      } catch {
        // Recovery checks the index against the log and rebuilds it when it does not match.
      }
    } finally {
      if (fd !== null) closeQuietly(fd);
    }
  }

  /**
   * Keeps the first `count` entries. The file is cut at once, so that it never names a position
   * past the cut; when a write had failed, it is written again whole (and written from then on).
   */
  truncate(count: number): void {
    this.entryCount = Math.min(count, this.entryCount);
    if (this.writeFailed) {
      this.rewrite();
      return;
    }
    if (this.persistedCount <= this.entryCount) return;
    try {
      fs.truncateSync(this.path, this.entryCount * this.entryBytes);
      this.persistedCount = this.entryCount;
    } catch {
      // As in persist(): the entries in memory are right; recovery rebuilds a stale file.
      this.writeFailed = true;
    }
  }

  /** Writes the file anew with the entries in memory; a failure leaves it empty if it can (an empty index is valid). */
  private rewrite(): void {
    let fd: number | null = null;
    try {
      fd = fs.openSync(this.path, 'w');
      const end = this.entryCount * this.entryBytes;
      let written = 0;
      while (written < end) {
        const count = fs.writeSync(fd, this.entries, written, end - written, written);
        if (count <= 0) throw new Error('an index write made no progress');
        written += count;
      }
      this.persistedCount = this.entryCount;
      this.writeFailed = false;
    } catch {
      this.writeFailed = true;
      this.persistedCount = 0;
      try {
        if (fd !== null) fs.ftruncateSync(fd, 0);
      } catch {
        // Recovery checks the index against the log and rebuilds it when it does not match.
      }
    } finally {
      if (fd !== null) closeQuietly(fd);
    }
  }

  /** Finds the last entry whose key (read by `keyAt`) is at most `target`, or -1. */
  floorEntry(target: number, keyAt: (position: number) => number): number {
    let low = 0;
    let high = this.entryCount - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      if (keyAt(middle * this.entryBytes) <= target) {
        found = middle;
        low = middle + 1;
      } else high = middle - 1;
    }
    return found;
  }

  delete(): void {
    fs.rmSync(this.path, { force: true });
  }
}

/** A close that fails still frees the descriptor (Linux); the file is only a cache. */
function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // nothing to do
  }
}

/** What the offset and time indexes share: one IndexFile of a segment, relative to its base offset. */
export abstract class SegmentIndex {
  protected constructor(
    protected readonly file: IndexFile,
    readonly baseOffset: number,
  ) {}

  reset(): void {
    this.file.truncate(0);
  }

  /** Writes the entries the file does not have yet (see IndexFile.persist). */
  persist(): void {
    this.file.persist();
  }

  delete(): void {
    this.file.delete();
  }
}

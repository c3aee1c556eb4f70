import fs from 'node:fs';

/**
 * A file of fixed-size entries mirrored in memory, appended as the log grows. Indexes are never
 * fsynced: recovery rebuilds them from the log, which is the only source of truth.
 */
export class IndexFile {
  private entries: Buffer;
  private entryCount = 0;
  private fd: number | null = null;
  /** A write to the file failed: the file holds a valid prefix and is no longer written. */
  private writeFailed = false;

  private constructor(
    readonly path: string,
    readonly entryBytes: number,
    contents: Buffer,
  ) {
    this.entryCount = Math.floor(contents.length / entryBytes);
    this.entries = Buffer.alloc(Math.max(contents.length, entryBytes * 64));
    contents.copy(this.entries, 0, 0, this.entryCount * entryBytes);
  }

  /** Opens the file, creating it if absent; a trailing partial entry is dropped. */
  static open(path: string, entryBytes: number): IndexFile {
    let contents: Buffer;
    try {
      contents = fs.readFileSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      contents = Buffer.alloc(0);
    }
    const index = new IndexFile(path, entryBytes, contents);
    if (contents.length !== index.entryCount * entryBytes) index.truncate(index.entryCount);
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

  /**
   * Counts the reserved entry in and writes it to the file. The entry in memory is what serves
   * lookups; the file only spares recovery a rebuild, so a failed write (a full disk) stops
   * writing the file rather than failing the append: it keeps a valid prefix, and recovery
   * rebuilds the rest from the log.
   */
  commit(): void {
    const position = this.entryCount * this.entryBytes;
    this.entryCount++;
    if (this.writeFailed) return;
    try {
      this.fd ??= fs.openSync(this.path, 'a+');
      fs.writeSync(this.fd, this.entries, position, this.entryBytes, position);
    } catch {
      this.writeFailed = true;
      try {
        // A partly written entry would be read as a real one: keep only whole, written entries.
        if (this.fd !== null) fs.ftruncateSync(this.fd, position);
      } catch {
        // Recovery checks the index against the log and rebuilds it when it does not match.
      }
    }
  }

  /** Keeps the first `count` entries. */
  truncate(count: number): void {
    this.entryCount = Math.min(count, this.entryCount);
    this.closeFile();
    try {
      fs.writeFileSync(this.path, this.entries.subarray(0, this.entryCount * this.entryBytes));
      this.writeFailed = false;
    } catch {
      // As in commit(): the entries in memory are right; recovery rebuilds a stale file.
      this.writeFailed = true;
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

  close(): void {
    this.closeFile();
  }

  delete(): void {
    this.closeFile();
    fs.rmSync(this.path, { force: true });
  }

  private closeFile(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
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

  close(): void {
    this.file.close();
  }

  delete(): void {
    this.file.delete();
  }
}

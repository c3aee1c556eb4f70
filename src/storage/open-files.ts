import fs from 'node:fs';

/**
 * The default capacity of a thread's cache of open segment files. A cache thrashes when its
 * thread keeps writing round-robin to more files than it holds (keyless publishing to every
 * partition: a least-recently-used cache then misses on every append, an open and a close per
 * batch), so the default covers the active segments of the 1,024 partitions the storage is built
 * for even if one worker owns them all; a descriptor costs the kernel a few hundred bytes. The
 * broker shrinks it at start-up when the process's open-file limit cannot hold it for every thread.
 */
const DEFAULT_OPEN_FILES = 1024;

/** Below this a cache would reopen files for nearly every call; the least a thread's cache is given. */
export const MIN_OPEN_FILES = 8;

/**
 * A file opened through an OpenFiles cache: its descriptor (`fd`) is opened when a call needs it
 * and may be closed between calls, when the cache needs room. A descriptor is only good until the
 * next call to the cache (any file's `fd`): take it for each system call, never keep it.
 */
export class CachedFile {
  /** The open descriptor, or null while evicted (or closed). */
  descriptor: number | null = null;
  /** fdatasyncs running on the descriptor: it is not closed until they end. */
  pins = 0;
  closed = false;
  deleted = false;
  /** 'w+' until the file was first opened (a new file, created empty), then 'r+': a reopened file is never truncated. */
  flags: 'w+' | 'r+';

  constructor(
    private readonly cache: OpenFiles,
    readonly path: string,
    create: boolean,
  ) {
    this.flags = create ? 'w+' : 'r+';
  }

  /** The descriptor, opened if it was evicted (the file then counts as the most recently used). */
  get fd(): number {
    return this.cache.descriptorOf(this);
  }

  /** fdatasync; the descriptor stays open until it ends. */
  sync(): Promise<void> {
    return this.cache.sync(this);
  }

  /** Closes the descriptor, once no fdatasync runs on it. No call may use the file afterwards. */
  close(): void {
    this.cache.close(this);
  }

  /** Closes the file and removes it from the disk. */
  delete(): void {
    this.cache.close(this);
    this.deleted = true;
    fs.rmSync(this.path, { force: true });
  }
}

/**
 * A cache of open files for one thread (Kafka and RocksDB bound their open files the same way):
 * files ask it for their descriptor at each call, it opens them on demand and, when more than
 * `capacity` are open, closes the least recently used. A descriptor with an fdatasync running on
 * it (pinned) is never closed; while every open file is pinned the cache may hold one file more
 * than its capacity for a synchronous call, and an fdatasync that needs a descriptor waits for a
 * pin to end, so that a flush of thousands of files holds at most `capacity` descriptors.
 *
 * Storage calls are synchronous on a broker worker: a descriptor taken for a system call cannot be
 * closed before that call returns, since only another call to the cache closes one.
 */
export class OpenFiles {
  private max: number;
  /** Files with an open descriptor, least recently used first (a Set keeps insertion order). */
  private readonly open = new Set<CachedFile>();
  /** Open files with an fdatasync running on them. */
  private pinnedOpen = 0;
  /** fdatasyncs waiting for a descriptor: every open file is pinned. */
  private readonly waiting: Array<() => void> = [];

  constructor(capacity = DEFAULT_OPEN_FILES) {
    this.max = checkedCapacity(capacity);
  }

  get capacity(): number {
    return this.max;
  }

  /** Changes the capacity; closes the least recently used unpinned files past it. */
  set capacity(capacity: number) {
    this.max = checkedCapacity(capacity);
    this.evictOverCapacity(0);
    this.wake();
  }

  /** Descriptors open now. */
  get size(): number {
    return this.open.size;
  }

  /** Open descriptors with an fdatasync running on them. */
  get pinned(): number {
    return this.pinnedOpen;
  }

  /** Creates (or empties) a file and opens it: the only open that may truncate it. */
  create(path: string): CachedFile {
    const file = new CachedFile(this, path, true);
    this.descriptorOf(file);
    return file;
  }

  /** An existing file, opened when first used ('r+'). */
  file(path: string): CachedFile {
    return new CachedFile(this, path, false);
  }

  /** @see CachedFile.fd */
  descriptorOf(file: CachedFile): number {
    const fd = file.descriptor;
    if (fd !== null) {
      this.touch(file);
      return fd;
    }
    if (file.closed) throw Object.assign(new Error(`${file.path} is closed`), { code: 'EBADF' });
    return this.openDescriptor(file);
  }

  /** @see CachedFile.sync */
  sync(file: CachedFile): Promise<void> {
    if (file.closed && file.pins === 0) return Promise.reject(Object.assign(new Error(`${file.path} is closed`), { code: 'EBADF' }));
    return new Promise((resolve, reject) => {
      const start = (): void => this.startSync(file, resolve, reject);
      // A file whose descriptor is open needs no other; otherwise a descriptor may be opened
      // only while some open file is not pinned (or there is room).
      if (file.descriptor !== null || this.pinnedOpen < this.max) start();
      else this.waiting.push(start);
    });
  }

  /** @see CachedFile.close */
  close(file: CachedFile): void {
    file.closed = true;
    if (file.pins === 0) this.release(file, true);
  }

  private startSync(file: CachedFile, resolve: () => void, reject: (error: unknown) => void): void {
    // Removed while the sync waited: nothing of it is left to make durable.
    if (file.deleted && file.descriptor === null) {
      resolve();
      return;
    }
    let fd: number;
    try {
      fd = file.descriptor === null ? this.openDescriptor(file) : file.descriptor;
    } catch (error) {
      reject(error);
      return;
    }
    if (file.pins++ === 0) this.pinnedOpen++;
    fs.fdatasync(fd, (error) => {
      if (--file.pins === 0) {
        this.pinnedOpen--;
        if (file.closed) this.release(file, false);
        else this.evictOverCapacity(0);
        this.wake();
      }
      if (error) reject(error);
      else resolve();
    });
  }

  /** Starts the waiting fdatasyncs that may now have a descriptor. */
  private wake(): void {
    while (this.waiting.length > 0 && this.pinnedOpen < this.max) this.waiting.shift()!();
  }

  private openDescriptor(file: CachedFile): number {
    this.evictOverCapacity(1);
    let fd: number;
    for (;;) {
      try {
        fd = fs.openSync(file.path, file.flags);
        break;
      } catch (error) {
        // Out of descriptors (other threads hold them): give back one of ours and try again.
        const code = (error as NodeJS.ErrnoException).code;
        if ((code !== 'EMFILE' && code !== 'ENFILE') || !this.evictOne()) throw error;
      }
    }
    file.flags = 'r+';
    file.descriptor = fd;
    this.open.add(file);
    return fd;
  }

  private touch(file: CachedFile): void {
    this.open.delete(file);
    this.open.add(file);
  }

  /** Closes least recently used unpinned files until `room` more fit under the capacity (or none is left to close). */
  private evictOverCapacity(room: number): void {
    while (this.open.size + room > this.max && this.evictOne()) {
      // evictOne closed one
    }
  }

  /** Closes the least recently used unpinned file; false when every open file is pinned. */
  private evictOne(): boolean {
    for (const candidate of this.open) {
      if (candidate.pins > 0) continue;
      this.release(candidate, false);
      return true;
    }
    return false;
  }

  /** Closes a file's descriptor (if open). A failed close still frees the descriptor (Linux): reported only when `report`. */
  private release(file: CachedFile, report: boolean): void {
    const fd = file.descriptor;
    if (fd === null) return;
    file.descriptor = null;
    this.open.delete(file);
    try {
      fs.closeSync(fd);
    } catch (error) {
      if (report) throw error;
    }
  }
}

function checkedCapacity(capacity: number): number {
  if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`an open-file cache holds at least 1 file, not ${capacity}`);
  return capacity;
}

/** This thread's cache (each worker thread loads its own copy of this module). */
const threadOpenFiles = new OpenFiles();

/** This thread's cache of open segment files. */
export function openFiles(): OpenFiles {
  return threadOpenFiles;
}

/**
 * Sets how many segment files this thread keeps open (`storage.openFilesPerWorker`, as fitted to
 * the open-file limit at start-up); call it before opening partitions.
 */
export function configureOpenFiles(capacity: number): void {
  threadOpenFiles.capacity = capacity;
}

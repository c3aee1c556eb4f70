import fs from 'node:fs';
import type { Logger } from '../../logging/index.js';
import { syncDirectory } from '../sync-directory.js';
import { JournalFile, listJournalFiles } from './journal-file.js';
import type { JournalRecordWriter } from './journal-record.js';

/** What the journal asks of a partition log before it lets go of the records it holds for it. */
export interface JournaledLog {
  /** Makes the log's segments durable up to its end, and records that as its recovery point. */
  checkpoint(): Promise<void>;
  readonly directory: string;
}

export interface JournalOptions {
  /** A file rolls when the next write would take it past this size. */
  fileBytes: number;
  /** Spare files kept for reuse. */
  spareFiles?: number;
  /** Bytes kept allocated past the write position. */
  allocateAheadBytes?: number;
}

interface LiveFile {
  file: JournalFile;
  /** The logs that have records in this file: checkpointed before the file is let go. */
  logs: Set<JournaledLog>;
}

/**
 * A broker worker's write-ahead journal (Apache BookKeeper's journal is the model): every batch a
 * worker appends to any of its partitions is also written here, one write per append request,
 * and the group commit makes the journal durable with one fdatasync, however many partitions
 * were written. The partitions' segments are written at the same time but made durable only in
 * the background, at checkpoints: when a file fills, the journal rolls to the next one, and once
 * every log with records in the full file has made its segments durable, the file is kept as a
 * spare and reused. After a crash, `replayJournal` writes into the segments whatever the journal
 * holds that they lost.
 *
 * Files are allocated ahead of the writes (zeros, or a reused file), so the group commit's
 * fdatasync writes data only.
 */
export class Journal {
  private readonly live: LiveFile[] = [];
  private readonly spares: number[];
  private nextSequence: number;
  /** A file was created or renamed: the directory wants an fsync before its records count as durable. */
  private directoryChanged = false;
  private checkpointing = false;
  private checkpointFailed = false;
  private broken: Error | null = null;
  private readonly fileBytes: number;
  private readonly spareFiles: number;
  private readonly allocateAheadBytes: number;

  private constructor(
    readonly directory: string,
    options: JournalOptions,
    private readonly logger: Logger,
  ) {
    this.fileBytes = options.fileBytes;
    this.spareFiles = options.spareFiles ?? 2;
    this.allocateAheadBytes = Math.min(options.allocateAheadBytes ?? 4 * 1024 * 1024, options.fileBytes);
    const { live, spares } = listJournalFiles(directory);
    if (live.length > 0) throw new Error(`${directory} holds journal files that were not replayed`);
    this.spares = spares;
    this.nextSequence = (spares.at(-1) ?? -1) + 1;
    this.live.push({ file: this.newFile(), logs: new Set() });
    this.allocate();
  }

  /** Opens the journal in `directory` (created if absent); its files must have been replayed. */
  static open(directory: string, options: JournalOptions, logger: Logger): Journal {
    fs.mkdirSync(directory, { recursive: true });
    return new Journal(directory, options, logger);
  }

  /** Whether a full file waits to be checkpointed (after the next sync). */
  get hasFullFiles(): boolean {
    return this.live.length > 1;
  }

  private get active(): LiveFile {
    return this.live[this.live.length - 1]!;
  }

  /**
   * Writes the records of one append request (`logs`: the logs they went to). Throws when the
   * write fails: then none of them is in the journal, and the caller must undo their appends.
   */
  append(records: JournalRecordWriter, logs: Iterable<JournaledLog>): void {
    if (this.broken !== null) throw this.broken;
    let active = this.active;
    if (active.file.position > 0 && active.file.position + records.byteLength > this.fileBytes) active = this.roll();
    active.file.append(records.seal(active.file.sequence));
    for (const log of logs) active.logs.add(log);
  }

  /**
   * Makes every record written so far durable: one fdatasync of each file with unsynced records
   * (the active one, and the previous one just after a roll), and of the directory after a file
   * was created or renamed.
   */
  async sync(): Promise<void> {
    if (this.broken !== null) throw this.broken;
    const syncs: Array<Promise<void>> = [];
    for (const { file } of this.live) if (file.unsynced) syncs.push(file.sync());
    if (this.directoryChanged) {
      this.directoryChanged = false;
      syncs.push(syncDirectory(this.directory));
    }
    const results = await Promise.allSettled(syncs);
    const failed = results.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    this.allocate();
    this.maybeCheckpoint();
  }

  /**
   * After a failed sync: the records written since the last good one are erased from the files,
   * durably (see JournalFile.discardUnsynced). If that fails too, the journal refuses every write
   * until the broker restarts, and this throws.
   */
  discardUnsynced(cause: unknown): void {
    try {
      for (const { file } of this.live) if (file.unsynced) file.discardUnsynced();
    } catch (error) {
      this.broken = new Error(
        `the journal in ${this.directory} could not erase records after a failed fsync (${(error as Error).message}); restart the broker`,
        {
          cause,
        },
      );
      throw this.broken;
    }
  }

  /**
   * Closes the files. With `retire`, every log has made its segments durable and the records are
   * no longer needed: the files become spares. Otherwise they stay, for the next start to replay.
   */
  close(retire: boolean): void {
    for (const { file } of this.live) file.close();
    if (!retire) return;
    for (const { file } of this.live) this.keepAsSpare(file);
    this.live.length = 0;
  }

  private roll(): LiveFile {
    const next: LiveFile = { file: this.newFile(), logs: new Set() };
    this.live.push(next);
    return next;
  }

  private newFile(): JournalFile {
    const sequence = this.nextSequence++;
    const spare = this.spares.shift();
    this.directoryChanged = true;
    return spare === undefined ? JournalFile.create(this.directory, sequence) : JournalFile.reuse(this.directory, spare, sequence);
  }

  /** Keeps the active file allocated ahead of its writes; the new size is synced in the background. */
  private allocate(): void {
    const { file } = this.active;
    try {
      if (file.allocateAhead(this.allocateAheadBytes, this.fileBytes)) {
        file.syncAllocation().catch((error: unknown) => this.logger.warn({ err: error, file: file.path }, 'journal allocation fsync failed'));
      }
    } catch (error) {
      // Only a cost: the writes then grow the file themselves.
      this.logger.debug({ err: error, file: file.path }, 'journal allocation failed');
    }
  }

  /**
   * Lets go of the oldest full file once it is durable: each log with records in it makes its
   * segments durable (one at a time, so that the group commit's fdatasync is not queued behind a
   * thousand of them), then the file becomes a spare.
   */
  private maybeCheckpoint(): void {
    if (this.checkpointing || this.checkpointFailed || this.live.length < 2) return;
    const oldest = this.live[0]!;
    if (oldest.file.unsynced) return;
    this.checkpointing = true;
    void (async () => {
      try {
        for (const log of oldest.logs) await log.checkpoint();
        this.live.shift();
        oldest.file.close();
        this.keepAsSpare(oldest.file);
      } catch (error) {
        // The file is kept (its records are replayed at the next start); later ones pile up
        // behind it, so the journal grows until the broker restarts.
        this.checkpointFailed = true;
        this.logger.error({ err: error, file: oldest.file.path }, 'journal checkpoint failed: the journal keeps its files until the broker restarts');
      } finally {
        this.checkpointing = false;
      }
      this.maybeCheckpoint();
    })();
  }

  private keepAsSpare(file: JournalFile): void {
    try {
      if (this.spares.length < this.spareFiles) {
        file.retire(this.directory);
        this.spares.push(file.sequence);
      } else fs.rmSync(file.path, { force: true });
    } catch (error) {
      this.logger.warn({ err: error, file: file.path }, 'could not retire a journal file');
    }
  }
}

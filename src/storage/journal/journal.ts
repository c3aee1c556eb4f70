import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../logging/index.js';
import { syncDirectoryNow } from '../sync-directory.js';
import { DroppedPartitions } from './dropped-partitions.js';
import { JournalBrokenError, JournalFile, journalFileName, listJournalFiles } from './journal-file.js';
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
  /** Bytes kept allocated past the write position at most (refilled once half of them is used). */
  allocateAheadBytes?: number;
  /** Asked before zeros are written ahead: a free-space reserve may refuse them (the writes then grow the file themselves). */
  mayAllocate?: (bytes: number) => boolean;
}

/**
 * Logs checkpointed at once. Overlapping fsyncs let the file system commit them together (one
 * at a time, a thousand partitions took seconds and the journal fell behind under load); two per
 * worker leave libuv's pool (4 threads, shared by the workers) a thread for each group commit.
 */
const CHECKPOINTS_AT_ONCE = 2;

interface LiveFile {
  sequence: number;
  /** The file being written, or null for one taken over from before a crash (complete, on disk). */
  file: JournalFile | null;
  /** The logs that have records in this file: checkpointed before the file is let go. */
  logs: Set<JournaledLog>;
  /** Partitions of a taken-over file not yet matched to their logs (by `LogResolver`). */
  keys: Set<string>;
}

/** A file of the journal found after a crash (replay.ts, recoverJournal), with the partitions it has records for. */
export interface TakenOverFile {
  sequence: number;
  keys: Set<string>;
}

/** The log of a partition key, 'gone' when the partition no longer exists, null when it is not open yet. */
export type LogResolver = (key: string) => JournaledLog | 'gone' | null;

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
 * Files are allocated ahead of the writes (zeros, refilled in steps, or a reused file), so that
 * the group commit's fdatasync writes data only, but for the commit after each step of zeros.
 */
export class Journal {
  private readonly live: LiveFile[] = [];
  private readonly spares: number[];
  private nextSequence: number;
  /** A file was created or renamed: the directory wants an fsync before its records count as durable. */
  private directoryChanged = false;
  /** The checkpoint running, if any. */
  private checkpointing: Promise<void> | null = null;
  private closed = false;
  private checkpointFailed = false;
  private broken: Error | null = null;
  private readonly fileBytes: number;
  private readonly spareFiles: number;
  private readonly allocateAheadBytes: number;
  private readonly mayAllocate: (bytes: number) => boolean;
  /** Partitions deleted while these files may hold their records (replay skips those records). */
  private readonly dropped: DroppedPartitions;

  private constructor(
    readonly directory: string,
    options: JournalOptions,
    private readonly logger: Logger,
    takenOver: TakenOverFile[],
    private readonly resolve: LogResolver,
  ) {
    this.fileBytes = options.fileBytes;
    this.spareFiles = options.spareFiles ?? 2;
    this.allocateAheadBytes = Math.min(options.allocateAheadBytes ?? 4 * 1024 * 1024, options.fileBytes);
    this.mayAllocate = options.mayAllocate ?? (() => true);
    const { live, spares } = listJournalFiles(directory);
    const expected = takenOver.map((file) => file.sequence).join();
    if (live.join() !== expected) throw new Error(`${directory} holds journal files that were not replayed (${live.join()}; taken over: ${expected})`);
    this.spares = spares;
    this.dropped = DroppedPartitions.read(directory);
    // Marks of files no longer kept are done with; a new file never takes a sequence a mark names.
    this.dropped.prune(live[0] ?? null);
    this.nextSequence = Math.max(spares.at(-1) ?? -1, live.at(-1) ?? -1, this.dropped.lastSequence) + 1;
    for (const { sequence, keys } of takenOver) this.live.push({ sequence, file: null, logs: new Set(), keys: new Set(keys) });
    const file = this.newFile();
    this.live.push({ sequence: file.sequence, file, logs: new Set(), keys: new Set() });
    this.allocateAhead();
  }

  /**
   * Opens the journal in `directory` (created if absent). Files left by a crash must have been
   * recovered (recoverJournal) and are passed in `takenOver`: they are checkpointed in the
   * background like full files, once `resolve` finds the logs of their partitions.
   */
  static open(directory: string, options: JournalOptions, logger: Logger, takenOver: TakenOverFile[] = [], resolve: LogResolver = () => 'gone'): Journal {
    fs.mkdirSync(directory, { recursive: true });
    return new Journal(directory, options, logger, takenOver, resolve);
  }

  /** Checkpoints full files now if it can (after partitions were opened, for files taken over). */
  checkpointSoon(): void {
    this.maybeCheckpoint();
  }

  /** Resolves once no checkpoint runs (one may start at the next sync). */
  async settled(): Promise<void> {
    while (this.checkpointing !== null) await this.checkpointing;
  }

  /** Starts no more checkpoints and waits for the one running (before the logs are closed). */
  async stopCheckpoints(): Promise<void> {
    this.closed = true;
    await this.settled();
  }

  /**
   * Partitions are deleted (their logs closed, their directories about to go): their records in
   * the files kept are never checkpointed, and never replayed after a crash, even into partitions
   * of the same names created later. Durable (one write) when this returns.
   */
  drop(partitions: ReadonlyArray<{ key: string; log: JournaledLog }>): void {
    for (const live of this.live) {
      for (const { key, log } of partitions) {
        live.logs.delete(log);
        live.keys.delete(key);
      }
    }
    const { sequence, file } = this.active;
    this.dropped.add(
      partitions.map((partition) => partition.key),
      { sequence, position: file.position },
      this.live[0]!.sequence,
    );
  }

  /** Whether a full file waits to be checkpointed (after the next sync). */
  get hasFullFiles(): boolean {
    return this.live.length > 1;
  }

  private get active(): LiveFile & { file: JournalFile } {
    return this.live[this.live.length - 1]! as LiveFile & { file: JournalFile };
  }

  /**
   * Writes the records of one append request (`logs`: the logs they went to). Throws when the
   * write fails: then none of them is in the journal, and the caller must undo their appends.
   */
  append(records: JournalRecordWriter, logs: Iterable<JournaledLog>): void {
    if (this.broken !== null) throw this.broken;
    let active = this.active;
    if (active.file.position > 0 && active.file.position + records.byteLength > this.fileBytes) active = this.roll();
    try {
      active.file.append(records.seal(active.file.sequence));
    } catch (error) {
      if (error instanceof JournalBrokenError) this.broken = error;
      throw error;
    }
    for (const log of logs) active.logs.add(log);
  }

  /**
   * Makes every record written so far durable: one fdatasync of each file with unsynced records
   * (the active one, and the previous one just after a roll), and of the directory after a file
   * was created or renamed. On the calling thread: a broker worker has nothing else to do
   * meanwhile (appends that arrive queue up for the next sync), and a wait on libuv's pool would
   * add two thread hand-offs to every acknowledgment's latency.
   */
  syncBlocking(): void {
    if (this.broken !== null) throw this.broken;
    const pending = this.unsyncedFiles();
    for (const { file } of pending) file.syncDataBlocking();
    if (this.directoryChanged) {
      syncDirectoryNow(this.directory);
      this.directoryChanged = false;
    }
    // Only now, every file and the directory being durable, do the records count as such.
    for (const { file, target } of pending) file.markSynced(target);
    this.maybeCheckpoint();
  }

  /**
   * Keeps the active file allocated ahead of its writes (zeros, a step at a time, made durable by
   * the next group commit), so that most group commits' fdatasyncs write data only. Not part of
   * syncBlocking: the caller runs it once the answers that sync allowed are sent, so that writing
   * zeros never delays an acknowledgment.
   */
  allocateAhead(): void {
    if (this.closed || this.broken !== null) return;
    const { file } = this.active;
    try {
      file.allocateAhead(this.allocateAheadBytes, this.fileBytes, this.mayAllocate);
    } catch (error) {
      // Only a cost: the writes then grow the file themselves.
      this.logger.debug({ err: error, file: file.path }, 'journal allocation failed');
    }
  }

  /** The files with records not yet durable, and how far each is written now. */
  private unsyncedFiles(): Array<{ file: JournalFile; target: number }> {
    const pending: Array<{ file: JournalFile; target: number }> = [];
    for (const { file } of this.live) if (file?.unsynced) pending.push({ file, target: file.position });
    return pending;
  }

  /**
   * After a failed sync: the records written since the last good one are erased from the files,
   * durably (see JournalFile.discardUnsynced). If that fails too, the journal refuses every write
   * until the broker restarts, and this throws.
   */
  discardUnsynced(cause: unknown): void {
    try {
      for (const { file } of this.live) if (file?.unsynced) file.discardUnsynced();
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
  async close(retire: boolean): Promise<void> {
    this.closed = true;
    await this.checkpointing;
    for (const { file } of this.live) file?.close();
    if (!retire) return;
    for (const live of this.live) this.keepAsSpare(live);
    this.live.length = 0;
  }

  private roll(): LiveFile & { file: JournalFile } {
    const file = this.newFile();
    const next = { sequence: file.sequence, file, logs: new Set<JournaledLog>(), keys: new Set<string>() };
    this.live.push(next);
    return next;
  }

  private newFile(): JournalFile {
    const sequence = this.nextSequence++;
    const spare = this.spares.shift();
    this.directoryChanged = true;
    return spare === undefined ? JournalFile.create(this.directory, sequence) : JournalFile.reuse(this.directory, spare, sequence);
  }

  /**
   * Lets go of the oldest full file once it is durable: each log with records in it makes its
   * segments durable, then the file becomes a spare.
   */
  private maybeCheckpoint(): void {
    if (this.checkpointing !== null || this.checkpointFailed || this.closed || this.live.length < 2) return;
    const oldest = this.live[0]!;
    if (oldest.file?.unsynced) return;
    for (const key of oldest.keys) {
      const log = this.resolve(key);
      if (log === null) return; // not open yet: at a later sync
      if (log !== 'gone') oldest.logs.add(log);
      oldest.keys.delete(key);
    }
    this.checkpointing = (async () => {
      try {
        const started = performance.now();
        const logs = [...oldest.logs];
        let next = 0;
        const checkpointNext = async (): Promise<void> => {
          while (next < logs.length) await logs[next++]!.checkpoint();
        };
        await Promise.all(Array.from({ length: CHECKPOINTS_AT_ONCE }, checkpointNext));
        this.logger.debug(
          { sequence: oldest.sequence, logs: logs.length, ms: Math.round(performance.now() - started), waiting: this.live.length - 2 },
          'journal checkpoint',
        );
        this.live.shift();
        oldest.file?.close();
        this.keepAsSpare(oldest);
      } catch (error) {
        // The file is kept (its records are replayed at the next start); later ones pile up
        // behind it, so the journal grows until the broker restarts.
        this.checkpointFailed = true;
        this.logger.error({ err: error, sequence: oldest.sequence }, 'journal checkpoint failed: the journal keeps its files until the broker restarts');
      }
      this.checkpointing = null;
      this.maybeCheckpoint();
    })();
  }

  private keepAsSpare({ sequence }: LiveFile): void {
    try {
      if (this.spares.length < this.spareFiles) {
        JournalFile.retireClosed(this.directory, sequence);
        this.spares.push(sequence);
      } else fs.rmSync(path.join(this.directory, journalFileName(sequence)), { force: true });
    } catch (error) {
      this.logger.warn({ err: error, sequence }, 'could not retire a journal file');
    }
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { syncDirectoryNow, syncPathNow } from '../sync-directory.js';

const DROPPED_FILE = 'dropped.json';

/** Where in a journal a partition was dropped: the file's sequence and the byte in it. */
interface JournalPosition {
  sequence: number;
  position: number;
}

const droppedFile = z.record(z.string(), z.object({ sequence: z.number().int().min(0), position: z.number().int().min(0) }));

/**
 * Partitions deleted (with their topic) while the journal may still hold records of theirs:
 * `dropped.json` beside the journal's files says, per partition key, where the journal was when
 * it went. Replay skips a key's records written before that point, so that a topic deleted and
 * created again under the same name (the same directory, the same key) never gets the old
 * topic's batches back after a crash. An entry is forgotten once the journal has let go of every
 * file that could hold such records.
 */
export class DroppedPartitions {
  private constructor(
    private readonly file: string,
    private readonly dropped: Map<string, JournalPosition>,
  ) {}

  /** The journal's dropped partitions (none when the file is absent). A damaged file stops the start, naming it. */
  static read(directory: string): DroppedPartitions {
    const file = path.join(directory, DROPPED_FILE);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new DroppedPartitions(file, new Map());
      throw error;
    }
    let parsed;
    try {
      parsed = droppedFile.safeParse(JSON.parse(text));
    } catch (error) {
      throw new Error(`${file} is not valid JSON (${(error as Error).message})`);
    }
    if (!parsed.success) throw new Error(`${file} does not list dropped partitions: ${z.prettifyError(parsed.error).replace(/\n/g, ' ')}`);
    return new DroppedPartitions(file, new Map(Object.entries(parsed.data)));
  }

  /** Whether a record of `key` at this place in the journal was written before its partition was dropped. */
  droppedAfter(key: string, sequence: number, position: number): boolean {
    if (this.dropped.size === 0) return false;
    const mark = this.dropped.get(key);
    return mark !== undefined && (sequence < mark.sequence || (sequence === mark.sequence && position < mark.position));
  }

  /** The highest journal file sequence a mark names (-1 for none): new files must come after it. */
  get lastSequence(): number {
    let last = -1;
    for (const mark of this.dropped.values()) last = Math.max(last, mark.sequence);
    return last;
  }

  /**
   * Writes down, durably and in one write, that `keys` were dropped with the journal at `at`;
   * marks older than `oldestLiveSequence` (the first journal file still kept; null: none is, so no
   * record is left to skip) are forgotten on the way.
   */
  add(keys: readonly string[], at: JournalPosition, oldestLiveSequence: number | null): void {
    this.prune(oldestLiveSequence, false);
    for (const key of keys) this.dropped.set(key, at);
    this.write();
  }

  /** Forgets the marks no kept journal file needs (all of them when none is kept). */
  prune(oldestLiveSequence: number | null, write = true): void {
    const before = this.dropped.size;
    for (const [key, mark] of this.dropped) if (oldestLiveSequence === null || mark.sequence < oldestLiveSequence) this.dropped.delete(key);
    if (write && this.dropped.size !== before) this.write();
  }

  private write(): void {
    const temporary = `${this.file}.tmp`;
    fs.writeFileSync(temporary, JSON.stringify(Object.fromEntries(this.dropped)));
    syncPathNow(temporary);
    fs.renameSync(temporary, this.file);
    syncDirectoryNow(path.dirname(this.file));
  }
}

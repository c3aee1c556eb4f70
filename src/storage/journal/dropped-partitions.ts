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

  /**
   * Writes down, durably, that `key` was dropped with the journal at `at`; entries older than
   * `oldestLiveSequence` (the first journal file still kept) are forgotten on the way.
   */
  add(key: string, at: JournalPosition, oldestLiveSequence: number): void {
    for (const [dropped, mark] of this.dropped) if (mark.sequence < oldestLiveSequence) this.dropped.delete(dropped);
    this.dropped.set(key, at);
    const temporary = `${this.file}.tmp`;
    fs.writeFileSync(temporary, JSON.stringify(Object.fromEntries(this.dropped)));
    syncPathNow(temporary);
    fs.renameSync(temporary, this.file);
    syncDirectoryNow(path.dirname(this.file));
  }
}

import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { topicSettings, type TopicSettings } from '../config/index.js';
import { syncDirectoryNow } from './sync-directory.js';

/** `topic.json`, versioned as Kafka versions its records; files written before versions existed have none. */
const topicFileSchema = z
  .object({
    v: z.literal(1).optional(),
    name: z.string().min(1),
    partitions: z.number().int().min(1),
    createdAt: z.number().int().min(0),
    lanes: z.number().int().min(1).max(10).optional(),
    /** The settings set on the topic through the admin API (the rest are the broker's defaults). */
    settings: topicSettings.optional(),
  })
  .refine((file) => file.partitions % (file.lanes ?? 1) === 0, 'partitions must be a multiple of lanes');

const TOPIC_FILE_VERSION = 1;

export interface TopicDefinition {
  name: string;
  /** Every partition, of every priority lane. */
  partitions: number;
  createdAt: number;
  /** Priority lanes, each `partitions / lanes` partitions (absent: one). */
  lanes?: number;
  /** The settings set on the topic itself (absent or empty: the defaults). */
  settings?: TopicSettings;
}

/**
 * Where topics live on disk: `<dataDir>/topics/<topic>/topic.json` describes a topic and
 * `<dataDir>/topics/<topic>/<partition>/` holds each partition's log. A deleted topic's directory
 * moves to `<dataDir>/deleted/` at once (one rename), and is removed from there in the background,
 * or at the next start.
 */
export class TopicCatalog {
  private readonly root: string;
  private readonly deleted: string;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'topics');
    this.deleted = path.join(dataDir, 'deleted');
    fs.mkdirSync(this.root, { recursive: true });
    // What a deletion had not finished removing when the broker stopped.
    fs.rmSync(this.deleted, { recursive: true, force: true });
  }

  /**
   * Removes a topic's directory: moved out of `topics/` durably before this returns (a start
   * after a crash never sees the topic again), then deleted in the background.
   */
  remove(name: string): Promise<void> {
    const directory = path.join(this.root, name);
    fs.mkdirSync(this.deleted, { recursive: true });
    const away = path.join(this.deleted, `${name}-${Date.now()}`);
    fs.renameSync(directory, away);
    syncDirectoryNow(this.root);
    return fs.promises.rm(away, { recursive: true, force: true });
  }

  /** Every topic on disk, oldest first. A damaged `topic.json` stops the start, naming the file. */
  load(): TopicDefinition[] {
    const topics: TopicDefinition[] = [];
    for (const name of fs.readdirSync(this.root)) {
      const file = path.join(this.root, name, 'topic.json');
      if (!fs.existsSync(file)) continue;
      let parsed;
      try {
        parsed = topicFileSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
      } catch (error) {
        throw new Error(`${file} is not valid JSON (${(error as Error).message}); restore it or remove the topic's directory`);
      }
      if (!parsed.success) throw new Error(`${file} is not a topic definition: ${z.prettifyError(parsed.error).replace(/\n/g, ' ')}`);
      const { name: topic, partitions, createdAt, lanes, settings } = parsed.data;
      topics.push({
        name: topic,
        partitions,
        createdAt,
        ...(lanes === undefined || lanes === 1 ? {} : { lanes }),
        ...(settings === undefined || Object.keys(settings).length === 0 ? {} : { settings }),
      });
    }
    return topics.sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name));
  }

  /** Writes a topic's definition atomically (write, fsync, rename). */
  save(definition: TopicDefinition): void {
    const directory = path.join(this.root, definition.name);
    fs.mkdirSync(directory, { recursive: true });
    const { settings, ...rest } = definition;
    const stored = settings === undefined || Object.keys(settings).length === 0 ? rest : definition;
    const file = path.join(directory, 'topic.json');
    const temporary = `${file}.tmp`;
    const fd = fs.openSync(temporary, 'w');
    try {
      fs.writeSync(fd, JSON.stringify({ v: TOPIC_FILE_VERSION, ...stored }, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, file);
    // A topic acknowledged as created (or written to) must not vanish with a crash of the machine.
    syncDirectoryNow(directory);
    syncDirectoryNow(this.root);
  }

  partitionDirectory(topic: string, partition: number): string {
    return path.join(this.root, topic, String(partition));
  }
}

import fs from 'node:fs';
import path from 'node:path';

export interface TopicDefinition {
  name: string;
  partitions: number;
  createdAt: number;
}

/**
 * Where topics live on disk: `<dataDir>/topics/<topic>/topic.json` describes a topic and
 * `<dataDir>/topics/<topic>/<partition>/` holds each partition's log.
 */
export class TopicCatalog {
  private readonly root: string;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'topics');
    fs.mkdirSync(this.root, { recursive: true });
  }

  load(): TopicDefinition[] {
    const topics: TopicDefinition[] = [];
    for (const name of fs.readdirSync(this.root)) {
      const file = path.join(this.root, name, 'topic.json');
      if (!fs.existsSync(file)) continue;
      const definition = JSON.parse(fs.readFileSync(file, 'utf8')) as TopicDefinition;
      topics.push(definition);
    }
    return topics.sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name));
  }

  /** Writes a topic's definition atomically (write, fsync, rename). */
  save(definition: TopicDefinition): void {
    const directory = path.join(this.root, definition.name);
    fs.mkdirSync(directory, { recursive: true });
    const file = path.join(directory, 'topic.json');
    const temporary = `${file}.tmp`;
    const fd = fs.openSync(temporary, 'w');
    try {
      fs.writeSync(fd, JSON.stringify(definition, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temporary, file);
  }

  partitionDirectory(topic: string, partition: number): string {
    return path.join(this.root, topic, String(partition));
  }
}

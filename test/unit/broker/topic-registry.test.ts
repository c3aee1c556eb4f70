import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CreationQuota, TopicRegistry, type Topic } from '../../../src/broker/index.js';
import type { TopicPolicy } from '../../../src/broker/front/topic-registry.js';
import { RillError } from '../../../src/errors/index.js';
import { createLogger, type Logger } from '../../../src/logging/index.js';
import { TopicCatalog } from '../../../src/storage/index.js';
import { DEFAULT_TOPIC_SETTINGS } from '../../helpers/topics.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A registry over a real catalog in a temporary directory, recording where partitions were placed. */
function registry(policy: Partial<TopicPolicy> = {}, options: { dir?: string; logger?: Logger } = {}) {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rill-registry-'));
  dirs.push(dir);
  const placed: Array<{ topic: string; worker: number; ids: number[] }> = [];
  const reconfigured: Topic[] = [];
  const removed: string[] = [];
  const catalog = new TopicCatalog(dir);
  const topics = new TopicRegistry(
    catalog,
    { autoCreate: true, defaultPartitions: 3, maxTopics: 10_000, maxPartitions: 100_000, defaults: DEFAULT_TOPIC_SETTINGS, definitions: [], ...policy },
    {
      workerCount: 2,
      place: (topic: Topic, assignments) => {
        for (const [worker, list] of assignments) placed.push({ topic: topic.name, worker, ids: list.map((a) => a.id) });
      },
      reconfigure: (topic: Topic) => void reconfigured.push(topic),
      checkRemovable: () => undefined,
      remove: async (topic: Topic) => void removed.push(topic.name),
    },
    options.logger ?? createLogger('silent'),
  );
  return { topics, placed, catalog, dir, reconfigured, removed };
}

function errorOf(run: () => unknown): RillError | null {
  try {
    run();
  } catch (error) {
    if (error instanceof RillError) return error;
    throw error;
  }
  return null;
}

function codeOf(run: () => unknown): string {
  return errorOf(run)?.code ?? 'none';
}

/** A logger that keeps its warnings. */
function warningLogger() {
  const warnings: string[] = [];
  const ignore = (): void => {};
  const logger = { warn: (_fields: unknown, message: string) => void warnings.push(message), info: ignore, debug: ignore, error: ignore } as unknown as Logger;
  return { logger, warnings };
}

describe('TopicRegistry', () => {
  it('creates a topic on first use under auto-create, writes it to the catalog, and numbers partitions densely', () => {
    const { topics, placed, catalog, dir } = registry();
    const orders = topics.resolve('orders');
    expect(orders).toMatchObject({ name: 'orders', partitions: 3, partitionIds: [0, 1, 2] });
    expect(topics.resolve('orders')).toBe(orders);
    expect(topics.resolve('payments').partitionIds).toEqual([3, 4, 5]);
    expect(placed.flatMap((p) => p.ids).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(catalog.load().map((t) => [t.name, t.partitions])).toEqual([
      ['orders', 3],
      ['payments', 3],
    ]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'topics', 'orders', 'topic.json'), 'utf8'))).toMatchObject({ v: 1, name: 'orders', partitions: 3 });
  });

  it('follows the policy: existing only, auto only when auto-create is on, always for dead letters', () => {
    const { topics } = registry({ autoCreate: false, defaultPartitions: 1 });
    expect(codeOf(() => topics.resolve('orders'))).toBe('unknown-topic');
    expect(codeOf(() => topics.resolve('orders', 'existing'))).toBe('unknown-topic');
    expect(topics.get('orders')).toBeUndefined();
    expect(topics.resolve('orders.DLQ', 'always').partitions).toBe(1);
    expect(topics.resolve('orders.DLQ', 'existing').name).toBe('orders.DLQ');
  });

  it('refuses names that are not topic names, and never hands an internal topic to a client-named lookup', () => {
    const { topics } = registry();
    for (const name of ['no spaces', '', '.', '..', 'a/b', 'x'.repeat(250), '__consumer_offsets', '__anything']) {
      expect(
        codeOf(() => topics.resolve(name, 'always')),
        name,
      ).toBe('invalid-destination');
    }
    const internal = topics.internal('__consumer_offsets', 1);
    expect(internal.partitions).toBe(1);
    expect(topics.get('__consumer_offsets')).toBe(internal);
    expect(codeOf(() => topics.resolve('__consumer_offsets'))).toBe('invalid-destination');
    expect(topics.listPublic().map((t) => t.name)).toEqual([]);
    expect(() => topics.internal('orders', 1)).toThrow(/not an internal topic name/);
  });

  it('grows a topic, never shrinks it, and tells its listeners', () => {
    const { topics, catalog } = registry();
    topics.resolve('orders');
    const grown: string[] = [];
    topics.onPartitionsAdded((name) => grown.push(name));
    expect(topics.addPartitions('orders', 5).partitionIds).toEqual([0, 1, 2, 3, 4]);
    expect(grown).toEqual(['orders']);
    expect(catalog.load()[0]).toMatchObject({ name: 'orders', partitions: 5 });
    expect(codeOf(() => topics.addPartitions('orders', 5))).toBe('invalid-request');
    expect(codeOf(() => topics.addPartitions('nope', 2))).toBe('unknown-topic');
  });

  it('refuses a damaged topic.json at start-up, naming the file', () => {
    const { dir, catalog } = registry();
    fs.mkdirSync(path.join(dir, 'topics', 'broken'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'topics', 'broken', 'topic.json'), '{"name":"broken","partitions":0,"createdAt":1}');
    expect(() => catalog.load()).toThrow(/broken[/\\]topic\.json is not a topic definition/);
  });

  describe('limits', () => {
    it('refuses a topic past limits.maxTopics, internal topics counted, naming the key', () => {
      const { topics, catalog } = registry({ maxTopics: 3 });
      topics.internal('__consumer_offsets', 1);
      topics.resolve('a');
      topics.resolve('b', 'always');
      for (const creation of ['auto', 'always'] as const) {
        const refused = errorOf(() => topics.resolve('c', creation));
        expect(refused?.code).toBe('limit-reached');
        expect(refused?.retriable).toBe(false);
        expect(refused?.message).toMatch(/cannot create topic "c".*3 topics.*limits\.maxTopics \(3\)/);
      }
      // A topic defined in the configuration goes through create(): the start-up fails with the same error.
      expect(errorOf(() => topics.create('c', 1))?.message).toContain('limits.maxTopics');
      expect(topics.get('c')).toBeUndefined();
      expect(catalog.load().map((t) => t.name)).not.toContain('c');
      // Existing topics are still served.
      expect(topics.resolve('a').name).toBe('a');
    });

    it('refuses creating or growing past limits.maxPartitions (all topics together), naming the key', () => {
      const { topics, placed } = registry({ maxPartitions: 10, defaultPartitions: 4 });
      topics.resolve('a');
      topics.resolve('b');
      const refused = errorOf(() => topics.resolve('c'));
      expect(refused?.code).toBe('limit-reached');
      expect(refused?.message).toMatch(
        /create topic "c" with 4 partitions: the topics would have 12 partitions together, more than limits\.maxPartitions \(10\)/,
      );
      expect(topics.create('c', 2).partitions).toBe(2);
      const growth = errorOf(() => topics.addPartitions('a', 5));
      expect(growth?.code).toBe('limit-reached');
      expect(growth?.message).toMatch(/grow topic "a" from 4 to 5 partitions.*limits\.maxPartitions/);
      expect(topics.get('a')?.partitions).toBe(4);
      expect(placed.flatMap((p) => p.ids)).toHaveLength(10);
    });

    it('never refuses an internal topic, which still counts toward the limits', () => {
      const { topics } = registry({ maxTopics: 1, maxPartitions: 2, defaultPartitions: 1 });
      topics.resolve('only');
      expect(topics.internal('__consumer_offsets', 5).partitions).toBe(5);
      expect(codeOf(() => topics.resolve('more'))).toBe('limit-reached');
    });

    it('loads every topic on disk whatever the limits, warns, and refuses new topics then', () => {
      const first = registry({ defaultPartitions: 2 });
      for (const name of ['a', 'b', 'c']) first.topics.resolve(name);
      const { logger, warnings } = warningLogger();
      const { topics, catalog } = registry({ maxTopics: 2, maxPartitions: 4 }, { dir: first.dir, logger });
      topics.load(catalog.load());
      expect(topics.list().map((t) => t.name)).toEqual(['a', 'b', 'c']);
      expect(warnings.some((w) => w.includes('limits.maxTopics or limits.maxPartitions'))).toBe(true);
      expect(codeOf(() => topics.resolve('d'))).toBe('limit-reached');
    });

    it('never refuses a topic for open files: partitions hold no descriptors of their own, only limits.maxTopics and limits.maxPartitions count', () => {
      // Under the old estimate (3 descriptors a partition) a 1024-descriptor limit refused the 257th partition.
      const { topics, placed } = registry({ defaultPartitions: 4 });
      for (let i = 0; i < 300; i++) topics.resolve(`t${i}`);
      expect(topics.list()).toHaveLength(300);
      expect(placed.flatMap((p) => p.ids)).toHaveLength(1200);
    });

    it('takes a creation from the quota only when an auto-created topic is really created', () => {
      let now = 0;
      const quota = new CreationQuota(2, () => now);
      const { topics } = registry({ maxTopics: 3 });
      topics.resolve('a', 'auto', quota);
      topics.resolve('a', 'auto', quota); // exists: free
      topics.resolve('dead.DLQ', 'always', quota); // not auto: free
      expect(quota.available).toBe(1);
      topics.resolve('b', 'auto', quota);
      expect(quota.available).toBe(0);
      // A creation the limits refuse does not use the quota up: it answers limit-reached, not rate-limited.
      expect(codeOf(() => topics.resolve('c', 'auto', quota))).toBe('limit-reached');
      const { topics: other } = registry();
      const refused = errorOf(() => other.resolve('x', 'auto', quota));
      expect(refused?.code).toBe('rate-limited');
      expect(refused?.retriable).toBe(true);
      expect(refused?.message).toContain('limits.autoCreatePerMinute');
      expect(other.get('x')).toBeUndefined();
      expect(other.resolve('y', 'always', quota).name).toBe('y');
      now += 30_000;
      expect(other.resolve('x', 'auto', quota).name).toBe('x');
    });
  });

  describe('settings and deletion', () => {
    it('stores a topic’s own settings with it, over its definition and the defaults, and a null puts the default back', () => {
      const { topics, catalog, dir, reconfigured } = registry({ definitions: [{ name: 'orders', ttlMs: 5_000, retentionMs: 1_000 }] });
      const orders = topics.create('orders', 2, 1, { retentionBytes: 4096 });
      expect(orders.settings).toMatchObject({
        retentionBytes: 4096,
        retentionMs: 1_000,
        ttlMs: 5_000,
        maxMessageBytes: DEFAULT_TOPIC_SETTINGS.maxMessageBytes,
      });
      topics.configure('orders', { retentionMs: 60_000, ttlMs: null, maxMessageBytes: 100 });
      expect(reconfigured.map((t) => t.name)).toEqual(['orders']);
      expect(orders.ownSettings).toEqual({ retentionBytes: 4096, retentionMs: 60_000, maxMessageBytes: 100 });
      expect(orders.settings).toMatchObject({ retentionMs: 60_000, ttlMs: 5_000, maxMessageBytes: 100 });
      topics.configure('orders', { retentionBytes: null });
      // Read back from topic.json by a new registry: the settings were stored.
      const { topics: again } = registry({}, { dir });
      again.load(catalog.load());
      expect(again.get('orders')?.ownSettings).toEqual({ retentionMs: 60_000, maxMessageBytes: 100 });
      expect(again.get('orders')?.settings.retentionBytes).toBe(DEFAULT_TOPIC_SETTINGS.retentionBytes);
      expect(codeOf(() => topics.configure('missing', { ttlMs: 1 }))).toBe('unknown-topic');
      expect(codeOf(() => topics.configure('__consumer_offsets', { ttlMs: 1 }))).toBe('unknown-topic');
    });

    it('keeps internal topics uncompressed, without deduplication or time-to-live, whatever the defaults', () => {
      const { topics } = registry({ defaults: { ...DEFAULT_TOPIC_SETTINGS, compression: 'zstd', deduplicationWindowMs: 1000, ttlMs: 5 } });
      expect(topics.internal('__consumer_offsets', 1).settings).toMatchObject({ compression: 'none', deduplicationWindowMs: 0, ttlMs: 0 });
    });

    it('deletes a topic: its files leave topics/, its partitions no longer count, and its name is free again', async () => {
      const { topics, catalog, dir, removed } = registry({ maxPartitions: 6 });
      topics.create('a', 3);
      topics.create('b', 3);
      expect(codeOf(() => topics.create('c', 1))).toBe('limit-reached');
      const deleted: string[] = [];
      topics.listen({ deleted: (topic) => void deleted.push(topic.name) });
      await topics.delete('a');
      expect(deleted).toEqual(['a']);
      expect(removed).toEqual(['a']);
      expect(topics.get('a')).toBeUndefined();
      expect(fs.existsSync(path.join(dir, 'topics', 'a'))).toBe(false);
      expect(catalog.load().map((t) => t.name)).toEqual(['b']);
      expect(topics.create('c', 3).partitions).toBe(3);
      await expect(topics.delete('a')).rejects.toMatchObject({ code: 'unknown-topic' });
      topics.internal('__consumer_offsets', 1);
      await expect(topics.delete('__consumer_offsets')).rejects.toMatchObject({ code: 'invalid-request' });
    });

    it('refuses the name of a topic being deleted, retriably, until its files are gone', async () => {
      let finish: () => void = () => {};
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-registry-'));
      dirs.push(dir);
      const topics = new TopicRegistry(
        new TopicCatalog(dir),
        { autoCreate: true, defaultPartitions: 1, maxTopics: 10, maxPartitions: 100, defaults: DEFAULT_TOPIC_SETTINGS, definitions: [] },
        {
          workerCount: 1,
          place: () => undefined,
          reconfigure: () => undefined,
          checkRemovable: () => undefined,
          remove: () => new Promise<void>((resolve) => (finish = resolve)),
        },
        createLogger('silent'),
      );
      topics.create('a', 1);
      const deleting = topics.delete('a');
      const refused = errorOf(() => topics.resolve('a'));
      expect(refused?.code).toBe('unavailable');
      expect(refused?.retriable).toBe(true);
      finish();
      await deleting;
      expect(topics.resolve('a').name).toBe('a');
    });
  });
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TopicRegistry, type Topic } from '../../../src/broker/index.js';
import { RillError } from '../../../src/errors/index.js';
import { createLogger } from '../../../src/logging/index.js';
import { TopicCatalog } from '../../../src/storage/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A registry over a real catalog in a temporary directory, recording where partitions were placed. */
function registry(policy = { autoCreate: true, defaultPartitions: 3 }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-registry-'));
  dirs.push(dir);
  const placed: Array<{ topic: string; worker: number; ids: number[] }> = [];
  const catalog = new TopicCatalog(dir);
  const topics = new TopicRegistry(
    catalog,
    policy,
    {
      workerCount: 2,
      place: (topic: Topic, assignments) => {
        for (const [worker, list] of assignments) placed.push({ topic: topic.name, worker, ids: list.map((a) => a.id) });
      },
    },
    createLogger('silent'),
  );
  return { topics, placed, catalog, dir };
}

function codeOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof RillError) return error.code;
    throw error;
  }
  return 'none';
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
});

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DescriptorBudget, readOpenFileLimit } from '../../../src/broker/front/descriptor-budget.js';
import { RillError } from '../../../src/errors/index.js';
import type { Logger } from '../../../src/logging/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-descriptors-'));
  dirs.push(dir);
  return dir;
}

/** A partition directory holding `segments` segments (with their index files, which do not count). */
function partitionWith(segments: number): string {
  const dir = tempDir();
  for (let i = 0; i < segments; i++) {
    const base = String(i * 1000).padStart(20, '0');
    for (const ext of ['log', 'index', 'timeindex']) fs.writeFileSync(path.join(dir, `${base}.${ext}`), '');
  }
  fs.writeFileSync(path.join(dir, '.clean-shutdown'), '');
  return dir;
}

/** A logger that keeps what was logged. */
function recordingLogger() {
  const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown> | string, message?: string): void =>
      void lines.push(typeof fields === 'string' ? { level, fields: {}, message: fields } : { level, fields, message: message ?? '' });
  const logger = { warn: at('warn'), info: at('info'), debug: at('debug'), error: at('error') } as unknown as Logger;
  return { logger, lines };
}

function limitsFile(text: string): string {
  const file = path.join(tempDir(), 'limits');
  fs.writeFileSync(file, text);
  return file;
}

const PROC_LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            4096                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe('readOpenFileLimit', () => {
  it('reads the soft "Max open files" limit, and gives null when it is unlimited or cannot be read', () => {
    expect(readOpenFileLimit(limitsFile(PROC_LIMITS))).toBe(4096);
    expect(readOpenFileLimit(limitsFile(PROC_LIMITS.replace('4096     ', 'unlimited')))).toBeNull();
    expect(readOpenFileLimit(limitsFile('Max processes 100 100 processes\n'))).toBeNull();
    expect(readOpenFileLimit(path.join(tempDir(), 'missing'))).toBeNull();
  });

  it('reads this process limit on Linux', () => {
    if (process.platform !== 'linux') return;
    const limit = readOpenFileLimit();
    expect(limit === null || limit > 0).toBe(true);
  });
});

describe('DescriptorBudget', () => {
  it('counts a partition on disk as its segments plus the active segment indexes, a new partition as 3', () => {
    const budget = new DescriptorBudget(10_000);
    budget.addExisting(partitionWith(5));
    expect(budget.estimated).toBe(7);
    budget.addExisting(path.join(tempDir(), 'not-created-yet'));
    expect(budget.estimated).toBe(10);
    budget.addNew(4);
    expect(budget.estimated).toBe(22);
  });

  it('keeps a fifth of the limit (at least 256) for connections and refuses partitions past the rest, naming ulimit -n', () => {
    const budget = new DescriptorBudget(1000);
    expect(budget.reserve).toBe(256);
    expect(budget.budget).toBe(744);
    expect(new DescriptorBudget(10_000).reserve).toBe(2000);
    budget.addNew(248); // 744 descriptors: the budget exactly
    expect(budget.room).toBe(0);
    let refused: unknown;
    try {
      budget.check(1, 'create topic "x" with 1 partitions');
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(RillError);
    expect((refused as RillError).code).toBe('limit-reached');
    expect((refused as RillError).message).toMatch(/cannot create topic "x".*747.*744.*open-file limit is 1000.*ulimit -n/);
    expect(() => new DescriptorBudget(1000).check(248, 'fill it')).not.toThrow();
  });

  it('checks nothing when the limit is unknown', () => {
    const budget = new DescriptorBudget(null);
    budget.addNew(1_000_000);
    expect(() => budget.check(1_000_000, 'anything')).not.toThrow();
    const { logger, lines } = recordingLogger();
    budget.report(logger, 1_000_000, 100_000);
    expect(lines.filter((line) => line.level === 'warn')).toEqual([]);
  });

  it('warns at start-up when the topics on disk need more than the budget, naming the numbers and the fix', () => {
    const budget = new DescriptorBudget(1000);
    for (let i = 0; i < 40; i++) budget.addExisting(partitionWith(i < 20 ? 20 : 1)); // 20 x 22 + 20 x 3 = 500
    const quiet = recordingLogger();
    budget.report(quiet.logger, 40, 100);
    expect(quiet.lines.filter((line) => line.level === 'warn')).toEqual([]);
    expect(quiet.lines[0]?.fields).toMatchObject({ openFileLimit: 1000, estimatedDescriptors: 500, descriptorBudget: 744, newPartitionsThatFit: 81 });

    for (let i = 0; i < 20; i++) budget.addExisting(partitionWith(12)); // + 20 x 14 = 780
    const { logger, lines } = recordingLogger();
    budget.report(logger, 60, 100);
    const warning = lines.find((line) => line.level === 'warn');
    expect(warning?.fields).toMatchObject({ openFileLimit: 1000, estimatedDescriptors: 780, descriptorBudget: 744, newPartitionsThatFit: 0 });
    expect(warning?.message).toMatch(/780 open files.*limit of 1000.*ulimit -n/);
  });
});

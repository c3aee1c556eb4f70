import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DescriptorBudget, fitOpenFiles, readOpenFileLimit } from '../../../src/broker/front/descriptor-budget.js';
import type { Logger } from '../../../src/logging/index.js';
import { MIN_OPEN_FILES } from '../../../src/storage/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-descriptors-'));
  dirs.push(dir);
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
  it('counts a cache of open segment files per broker worker and for the main thread, and each worker journal, whatever the partitions', () => {
    expect(DescriptorBudget.estimate(1024, 2)).toBe(3 * 1024 + 2 * 4);
    expect(DescriptorBudget.estimate(64, 8)).toBe(9 * 64 + 8 * 4);
  });

  it('keeps a fifth of the limit (at least 256) for connections and fits the largest capacity per thread in the rest', () => {
    const budget = new DescriptorBudget(1000);
    expect(budget.reserve).toBe(256);
    expect(budget.budget).toBe(744);
    expect(new DescriptorBudget(10_000).reserve).toBe(2000);
    // (744 - 2 x 4) / 3 threads = 245.
    expect(budget.fit(1024, 2)).toBe(245);
    expect(DescriptorBudget.estimate(245, 2)).toBeLessThanOrEqual(744);
    expect(DescriptorBudget.estimate(246, 2)).toBeGreaterThan(744);
    expect(budget.fit(100, 2)).toBe(100);
    expect(new DescriptorBudget(10_000).fit(1024, 2)).toBe(1024);
    // Never below the minimum, however low the limit.
    expect(new DescriptorBudget(260).fit(1024, 4)).toBe(MIN_OPEN_FILES);
  });

  it('fits nothing when the limit is unknown', () => {
    expect(new DescriptorBudget(null).fit(1_000_000, 256)).toBe(1_000_000);
  });
});

describe('fitOpenFiles', () => {
  it('keeps the configured capacity when it fits, logging the numbers', () => {
    const { logger, lines } = recordingLogger();
    expect(fitOpenFiles(512, 2, logger, 10_000)).toBe(512);
    expect(lines).toEqual([
      {
        level: 'info',
        fields: { openFileLimit: 10_000, workers: 2, openFilesPerWorker: 512, estimatedDescriptors: 1544, descriptorBudget: 8000 },
        message: 'descriptor budget',
      },
    ]);
  });

  it('shrinks a capacity that does not fit the open-file limit, with a warning naming the key, the numbers and the fix', () => {
    const { logger, lines } = recordingLogger();
    expect(fitOpenFiles(1024, 2, logger, 1024)).toBe(253); // (1024 - 256 - 8) / 3
    expect(lines.map((line) => line.level)).toEqual(['warn']);
    expect(lines[0]!.fields).toMatchObject({
      openFileLimit: 1024,
      configured: 1024,
      openFilesPerWorker: 253,
      estimatedDescriptors: 767,
      descriptorBudget: 768,
    });
    expect(lines[0]!.message).toMatch(/storage\.openFilesPerWorker \(1024\) does not fit the open-file limit \(1024\).*at most 253.*ulimit -n/);
  });

  it('warns that even the least capacity does not fit a tiny limit, and still starts', () => {
    const { logger, lines } = recordingLogger();
    expect(fitOpenFiles(1024, 4, logger, 260)).toBe(MIN_OPEN_FILES);
    expect(lines.map((line) => line.level)).toEqual(['warn']);
    expect(lines[0]!.message).toMatch(/too few even for 8 open segment files per thread.*EMFILE.*ulimit -n/);
  });

  it('checks nothing when the limit is unknown', () => {
    const { logger, lines } = recordingLogger();
    expect(fitOpenFiles(4096, 64, logger, null)).toBe(4096);
    expect(lines.filter((line) => line.level !== 'debug')).toEqual([]);
  });
});

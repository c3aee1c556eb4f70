import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LogConfig } from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const config: LogConfig = {
  segmentBytes: 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 256,
  retentionMs: -1,
  retentionBytes: -1,
};

/** The storage modules, loaded afresh with RILL_FAILPOINTS set to `value` (it is read once, at load). */
async function storageWith(value: string | undefined): Promise<typeof import('../../../src/storage/index.js')> {
  vi.resetModules();
  vi.stubEnv('RILL_FAILPOINTS', value);
  return import('../../../src/storage/index.js');
}

describe('storage failpoints (RILL_FAILPOINTS)', () => {
  const tempDir = useTempDirs();
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  function oneBatch(storage: typeof import('../../../src/storage/index.js'), value = 'x'.repeat(100)): Buffer {
    const builder = new storage.RecordBatchBuilder(16);
    builder.append(1000, 'k', 'id', null, Buffer.from(value));
    return builder.finish();
  }

  it('fails every fsync of a partition log with EIO under fsync=error, and the durable end stays put', async () => {
    const storage = await storageWith('fsync=error');
    const { log } = storage.PartitionLog.open(tempDir(), config);
    log.append(oneBatch(storage));
    await expect(log.flush()).rejects.toMatchObject({ code: 'EIO', syscall: 'fdatasync' });
    expect(log.durableEndOffset).toBe(0);
    expect(log.logEndOffset).toBe(1);
    // A checkpoint fsyncs the segments too: it fails, and the recovery point is not written.
    await expect(log.checkpoint()).rejects.toMatchObject({ code: 'EIO' });
    expect(fs.existsSync(path.join(log.directory, 'recovery-point.json'))).toBe(false);
  });

  it('does nothing when unset, set to off, or naming only unknown failpoints', async () => {
    for (const value of [undefined, '', 'fsync=off', 'no-such-point=error', ' torn = error , other=x ']) {
      const storage = await storageWith(value);
      const { log } = storage.PartitionLog.open(tempDir(), config);
      log.append(oneBatch(storage));
      expect(await log.flush(), `RILL_FAILPOINTS=${value}`).toBe(1);
      log.close();
    }
  });

  it('refuses a malformed entry or an unknown action for a known failpoint', async () => {
    await expect(storageWith('fsync')).rejects.toThrow(/"fsync" is not <name>=<action>/);
    await expect(storageWith('fsync=sometimes')).rejects.toThrow(/failpoint fsync takes error or every-<n> or exit-at-<n> or off, not "sometimes"/);
  });

  it('takes several entries, separated by commas', async () => {
    const storage = await storageWith('unknown=1, fsync=error');
    const { log } = storage.PartitionLog.open(tempDir(), config);
    log.append(oneBatch(storage));
    await expect(log.flush()).rejects.toThrow(/EIO/);
  });
});

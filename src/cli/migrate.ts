import fs from 'node:fs';
import { resolveDataDir } from '../config/index.js';
import { createLogger } from '../logging/index.js';
import { DataDirectoryAccessError, DataDirectoryLock, DataDirectoryLockedError } from '../storage/index.js';
import { migrateDataDirectory, type MigrationReport } from '../storage/index.js';
import { configFromFlags } from './config-flags.js';

const USAGE = `Usage: rill migrate [--config FILE] [--data-dir DIR]
  Converts a data directory written by Rill before 0.2 (its own record format) to Kafka's
  RecordBatch v2, partition by partition; safe to interrupt and run again. The broker must be stopped.
`;

/**
 * `rill migrate`: converts the data directory (named as `rill start` names it: the config file,
 * then --data-dir) while holding its lock, so that no broker can start on it meanwhile. Exit code
 * 0 when the directory is in the current format at the end, 1 when it could not be converted
 * (what was converted stays so, the rest is untouched: run it again), 2 for a bad flag or config.
 */
export async function runMigrate(argv: string[]): Promise<number> {
  const config = configFromFlags('migrate', argv, USAGE);
  if (typeof config === 'number') return config;
  const dataDir = resolveDataDir(config);
  if (!fs.existsSync(dataDir)) return fail(`data directory ${dataDir} does not exist`);
  let lock: DataDirectoryLock;
  try {
    lock = DataDirectoryLock.acquire(dataDir);
  } catch (error) {
    if (error instanceof DataDirectoryLockedError) return fail(`${error.message}: stop it first, then run rill migrate again`);
    if (error instanceof DataDirectoryAccessError) return fail(error.message);
    throw error;
  }
  const logger = createLogger(config.log.level, { component: 'rill-migrate' });
  try {
    const report = await migrateDataDirectory(dataDir, logger, { indexIntervalBytes: config.storage.indexIntervalBytes });
    process.stdout.write(summary(dataDir, report));
    return 0;
  } catch (error) {
    // The stack goes to the log; the operator gets one line.
    logger.error({ err: error }, 'migration failed');
    return fail(`${(error as Error).message}; partitions already converted stay so and the others are untouched: run rill migrate again once fixed`);
  } finally {
    lock.release();
  }
}

/** The configuration as `rill start` would load it, or the exit code for a bad flag or config file. */
function summary(dataDir: string, report: MigrationReport): string {
  if (report.partitions === 0) return `rill migrate: ${dataDir} is in the current format (nothing to convert)\n`;
  const restored = report.restoredBatches === 0 ? '' : `, ${report.restoredBatches} of them from the journals`;
  const dropped = report.droppedBytes === 0 ? '' : `; ${report.droppedBytes} bytes of torn or orphaned tails left out, as a start-up would have`;
  return (
    `rill migrate: ${dataDir} converted to Kafka RecordBatch v2: ${report.partitions} partitions, ${report.records} records in ${report.batches} batches${restored}` +
    ` (${report.bytesBefore} bytes before, ${report.bytesAfter} after)${dropped}\n`
  );
}

function fail(message: string): number {
  process.stderr.write(`rill migrate: ${message}\n`);
  return 1;
}

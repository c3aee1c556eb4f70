import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../logging/index.js';
import type { LogConfig } from '../partition-log.js';
import { syncDirectoryNow } from '../sync-directory.js';
import { formatFileSaysCurrent, partitionFormat, writeFormatFile } from './data-format.js';
import { listPartitions, type PartitionPlace } from './data-layout.js';
import { indexLegacyJournals, type JournaledBatch, removeLegacyJournals } from './legacy-journals.js';
import { convertPartition } from './partition-conversion.js';

export interface MigrationReport {
  /** Partitions converted by this run. */
  partitions: number;
  batches: number;
  records: number;
  /** Of those, batches the segments had lost and the journals gave back. */
  restoredBatches: number;
  /** Legacy bytes of the batches kept, and the same batches' bytes in the new format. */
  bytesBefore: number;
  bytesAfter: number;
  /** Legacy segment bytes that were not records (torn tails, segments after a gap): the old start-up cut them off too. */
  droppedBytes: number;
}

/**
 * The moments of a migration after which a crash leaves a different state on disk: a test stops
 * the migration at each (by throwing), then runs it again.
 */
export type MigrationStep = 'converted' | 'moved-aside' | 'swapped' | 'journals-removed';

export interface MigrationOptions {
  /** Bytes of log between two offset index entries, as the broker's `storage.indexIntervalBytes`. */
  indexIntervalBytes?: number;
  /** Told after each step, with the partition's key (the data directory for 'journals-removed'). */
  afterStep?: (step: MigrationStep, key: string) => void;
}

const DEFAULT_INDEX_INTERVAL_BYTES = 4096;

/**
 * Converts a data directory from Rill's old record format to Kafka's RecordBatch v2, partition by
 * partition; the broker must not run (the caller holds the data directory's lock). A crash (or
 * kill -9) at any moment leaves every partition either in its old directory or converted whole,
 * and running it again finishes the work:
 *
 * 1. A legacy partition `P` is written converted into `P.migrating` (segments, the journals'
 *    batches the segments lost, indexes; every file and the directory fsynced).
 * 2. Swap: `P` is renamed `P.legacy`, `P.migrating` renamed `P`, the topic directory fsynced;
 *    then `P.legacy` is removed. Run again: `P.migrating` beside `P` is incomplete and written
 *    anew; `P.legacy` and `P.migrating` without `P` were complete, the swap is finished; `P.legacy`
 *    beside `P` is removed. A partition already converted is skipped.
 * 3. Once every partition is converted: the journals' files (their batches are in the segments
 *    now) and `journal/workers.json` are removed, and `format.json` written, last. Until then the
 *    broker refuses to start on the directory (assertCurrentDataFormat).
 */
export async function migrateDataDirectory(dataDir: string, logger: Logger, options: MigrationOptions = {}): Promise<MigrationReport> {
  const directory = path.resolve(dataDir);
  const report: MigrationReport = { partitions: 0, batches: 0, records: 0, restoredBatches: 0, bytesBefore: 0, bytesAfter: 0, droppedBytes: 0 };
  if (formatFileSaysCurrent(directory)) {
    logger.info({ dataDir: directory }, 'data directory already in the current format: nothing to migrate');
    return report;
  }
  const afterStep = options.afterStep ?? (() => {});
  const logConfig = logConfigFor(options.indexIntervalBytes ?? DEFAULT_INDEX_INTERVAL_BYTES);
  const { byKey: journaled, liveFiles } = indexLegacyJournals(directory);
  // The old start-up cut unjournaled tails only when it had journal files to recover from: a data
  // directory from before the journal (or after a clean shutdown) has none, and nothing is cut.
  const journalsLive = liveFiles > 0;
  for (const place of listPartitions(directory)) {
    settleLeftovers(place, logger);
    const converted = migratePartition(place, journaled.get(place.key) ?? [], journalsLive, logConfig, afterStep, logger);
    if (converted !== null) addTo(report, converted);
    // Lets the log line out (pino writes asynchronously) before the next partition holds the thread.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const journalFiles = removeLegacyJournals(directory);
  afterStep('journals-removed', directory);
  writeFormatFile(directory);
  logger.info({ dataDir: directory, journalFilesRemoved: journalFiles, ...report }, 'data directory migrated to Kafka RecordBatch v2');
  return report;
}

/** Converts and swaps one partition if it is in the old format; returns what it converted, null if nothing. */
function migratePartition(
  place: PartitionPlace,
  journaled: readonly JournaledBatch[],
  journalsLive: boolean,
  logConfig: LogConfig,
  afterStep: (step: MigrationStep, key: string) => void,
  logger: Logger,
): Omit<MigrationReport, 'partitions'> | null {
  const format = partitionFormat(place.directory);
  // An empty partition is as good in either format, unless the journals hold batches its segments lost.
  if (format === 'current' || (format === 'empty' && journaled.length === 0)) {
    logger.debug({ partition: place.key, format }, 'partition needs no conversion');
    return null;
  }
  const started = performance.now();
  const conversion = convertPartition(place.directory, place.migrating, journaled, journalsLive, logConfig);
  afterStep('converted', place.key);
  fs.renameSync(place.directory, place.legacy);
  afterStep('moved-aside', place.key);
  fs.renameSync(place.migrating, place.directory);
  syncDirectoryNow(place.topicDirectory);
  afterStep('swapped', place.key);
  removeOldDirectory(place);
  const { restored, droppedBytes, batches, records, bytesBefore, bytesAfter } = conversion;
  logger.info({ partition: place.key, ...conversion, ms: Math.round(performance.now() - started) }, 'partition migrated');
  return { batches, records, restoredBatches: restored, bytesBefore, bytesAfter, droppedBytes };
}

/**
 * Finishes or undoes what a migration stopped half-way left beside the partition (see
 * migrateDataDirectory), so that `P` is the partition, old or converted, and nothing is beside it.
 */
function settleLeftovers(place: PartitionPlace, logger: Logger): void {
  const exists = (directory: string) => fs.existsSync(directory);
  if (exists(place.legacy) && !exists(place.directory)) {
    // Stopped between the swap's renames: the conversion was complete. (Without it, which no
    // migration leaves, the old directory goes back: it is converted again.)
    const back = exists(place.migrating) ? place.migrating : place.legacy;
    fs.renameSync(back, place.directory);
    syncDirectoryNow(place.topicDirectory);
    logger.info({ partition: place.key, from: back }, 'finished the swap a stopped migration had begun');
  }
  if (exists(place.legacy)) removeOldDirectory(place);
  if (exists(place.migrating)) {
    if (!exists(place.directory)) {
      throw new Error(`${place.migrating} is a conversion of ${place.directory}, which is gone; move one of them back by hand and run rill migrate again`);
    }
    // Stopped while writing it (or before the swap): written anew.
    fs.rmSync(place.migrating, { recursive: true, force: true });
    logger.info({ partition: place.key }, 'removed the incomplete conversion a stopped migration had left');
  }
}

/** Removes `P.legacy` once the converted `P` is in place, durably (else a later start finds it again). */
function removeOldDirectory(place: PartitionPlace): void {
  fs.rmSync(place.legacy, { recursive: true, force: true });
  syncDirectoryNow(place.topicDirectory);
}

/** What PartitionLog needs to check and index a converted partition: nothing rolls or expires while it is open. */
function logConfigFor(indexIntervalBytes: number): LogConfig {
  return { segmentBytes: Number.MAX_SAFE_INTEGER, segmentMs: Number.MAX_SAFE_INTEGER, indexIntervalBytes, retentionMs: -1, retentionBytes: -1 };
}

function addTo(report: MigrationReport, partition: Omit<MigrationReport, 'partitions'>): void {
  report.partitions++;
  report.batches += partition.batches;
  report.records += partition.records;
  report.restoredBatches += partition.restoredBatches;
  report.bytesBefore += partition.bytesBefore;
  report.bytesAfter += partition.bytesAfter;
  report.droppedBytes += partition.droppedBytes;
}

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { JOURNALS_DIRECTORY as BROKER_JOURNALS_DIRECTORY } from '../../../src/broker/log-config.js';
import { PartitionLog, RecordBatchBuilder, TopicCatalog, type LogConfig } from '../../../src/storage/index.js';
import { JOURNALS_DIRECTORY, TOPICS_DIRECTORY } from '../../../src/storage/migration/data-layout.js';
import {
  assertCurrentDataFormat,
  checkDataFormat,
  LegacyDataFormatError,
  migrateDataDirectory,
  type MigrationStep,
} from '../../../src/storage/migration/index.js';
import {
  type JournaledBatch,
  LegacyPartition,
  readConverted,
  tornJournalRecord,
  writeLegacyJournal,
  writeLegacyTopic,
  writeWorkersFile,
} from '../../helpers/legacy-data.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const silent = pino({ level: 'silent' });

/**
 * A legacy data directory with what a crash leaves: three topics (one internal), partitions of
 * several segments, a start offset past 0, an empty partition, torn segment tails, and two
 * workers' journals holding batches the segments lost, batches they still have, a damaged batch,
 * a gap, a torn record and a stale spare file.
 */
function buildLegacyDataDir(dataDir: string): LegacyPartition[] {
  writeLegacyTopic(dataDir, 'orders', 3);
  writeLegacyTopic(dataDir, '__consumer_offsets', 2);
  writeLegacyTopic(dataDir, 'gaps', 1);
  const journal0a: JournaledBatch[] = [];
  const journal0b: JournaledBatch[] = [];
  const journal1: JournaledBatch[] = [];

  // Three segments; the last lost its two newest batches (a torn copy of the first one is left), the journal has them.
  const orders0 = new LegacyPartition(dataDir, 'orders', 0);
  for (let i = 0; i < 5; i++) orders0.append(1 + (i % 4));
  orders0.roll();
  for (let i = 0; i < 4; i++) orders0.append(3);
  orders0.roll();
  orders0.append(2);
  journal0a.push({ key: orders0.key, batch: orders0.append(4) });
  const lost1 = orders0.lost(3);
  const lost2 = orders0.lost(1);
  orders0.tornTail(25);
  journal0a.push({ key: orders0.key, batch: lost1 });
  journal0b.push({ key: orders0.key, batch: lost2 });

  // Retention deleted what was before offset 500; a torn tail no journal has.
  const orders1 = new LegacyPartition(dataDir, 'orders', 1, 500);
  for (let i = 0; i < 3; i++) orders1.append(2, 300);
  orders1.roll();
  for (let i = 0; i < 3; i++) orders1.append(5, 10);
  orders1.tornTail(60);

  // Its segment lost everything: only the journal has its batches.
  const orders2 = new LegacyPartition(dataDir, 'orders', 2);
  journal1.push({ key: orders2.key, batch: orders2.lost(2) });
  journal1.push({ key: orders2.key, batch: orders2.lost(6) });

  // A damaged batch ends its journal file (what follows there is not kept); the next file goes on.
  const offsets0 = new LegacyPartition(dataDir, '__consumer_offsets', 0);
  for (let i = 0; i < 4; i++) offsets0.append(1);
  journal0a.push({ key: offsets0.key, batch: offsets0.damaged(2) });
  journal0a.push({ key: offsets0.key, batch: offsets0.notKept(2) });
  journal0b.push({ key: offsets0.key, batch: offsets0.lost(2) });

  // Empty, in either format.
  const offsets1 = new LegacyPartition(dataDir, '__consumer_offsets', 1);

  // A batch past a gap ends its journal for the partition; another journal goes on.
  const gaps0 = new LegacyPartition(dataDir, 'gaps', 0);
  gaps0.append(2);
  gaps0.append(2);
  journal0a.push({ key: gaps0.key, batch: gaps0.beyondGap(3) });
  journal0b.push({ key: gaps0.key, batch: gaps0.notKept(1) });
  journal1.push({ key: gaps0.key, batch: gaps0.lost(1) });

  // What the old start-up cut after a crash, and what it kept after a clean shutdown: a batch past
  // the recovery point that no journal holds was never acknowledged (its producer sent it again),
  // so it is not converted; the segments of a partition closed cleanly are kept whole, recovery
  // point or not.
  writeLegacyTopic(dataDir, 'cuts', 2);
  const cuts0 = new LegacyPartition(dataDir, 'cuts', 0);
  cuts0.append(3);
  cuts0.append(2);
  cuts0.unacknowledged(4);
  const cuts1 = new LegacyPartition(dataDir, 'cuts', 1);
  cuts1.append(3);
  cuts1.roll();
  cuts1.append(2);
  cuts1.closeCleanly();

  const partitions = [orders0, orders1, orders2, offsets0, offsets1, gaps0, cuts0, cuts1];
  for (const partition of partitions) partition.write();
  writeLegacyJournal(dataDir, 0, 7, journal0a);
  writeLegacyJournal(dataDir, 0, 8, journal0b, tornJournalRecord(orders0.key, orders0.notKept(2), 8));
  writeLegacyJournal(dataDir, 1, 3, journal1);
  // A spare: a file of an earlier use, its records stale (the next use overwrites them).
  fs.copyFileSync(path.join(dataDir, 'journal', '1', `${'3'.padStart(20, '0')}.journal`), path.join(dataDir, 'journal', '1', `${'2'.padStart(20, '0')}.spare`));
  writeWorkersFile(dataDir, 2);
  return partitions;
}

/** Every partition holds exactly its expected records (every field), from its expected start, and is read by offset through its index. */
function expectConverted(partitions: LegacyPartition[]): void {
  for (const partition of partitions) {
    const { logStartOffset, records } = readConverted(partition.directory);
    expect(records, partition.key).toEqual(partition.expected);
    expect(logStartOffset, partition.key).toBe(partition.expected[0]?.offset ?? 0);
    expectReadableByOffset(partition);
  }
}

/** Reads from offsets in the middle of the log: finds the batch through the rebuilt offset index. */
function expectReadableByOffset(partition: LegacyPartition): void {
  const config: LogConfig = { segmentBytes: 1 << 30, segmentMs: 1e12, indexIntervalBytes: 64, retentionMs: -1, retentionBytes: -1 };
  const { log } = PartitionLog.open(partition.directory, config);
  try {
    for (const record of partition.expected.filter((_, i) => i % 3 === 1)) {
      const batches = log.read(record.offset, 1);
      expect(batches.readInt32BE(0) * 2 ** 32 + batches.readUInt32BE(4), `${partition.key} at ${record.offset}`).toBeLessThanOrEqual(record.offset);
    }
  } finally {
    log.close();
  }
}

/** Every file of the directory with its content's hash, for "nothing changed" checks. */
function snapshot(dataDir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of fs.readdirSync(dataDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    files[path.relative(dataDir, file)] = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }
  return files;
}

function leftovers(dataDir: string): string[] {
  return fs
    .readdirSync(path.join(dataDir, 'topics'), { recursive: true })
    .map(String)
    .filter((name) => /\.(migrating|legacy)$/.test(name));
}

describe('data format check', () => {
  const tempDir = useTempDirs();

  it('uses the directory names of the topic catalog and the broker', () => {
    const dataDir = tempDir();
    expect(new TopicCatalog(dataDir).partitionDirectory('t', 3)).toBe(path.join(dataDir, TOPICS_DIRECTORY, 't', '3'));
    expect(JOURNALS_DIRECTORY).toBe(BROKER_JOURNALS_DIRECTORY);
  });

  it('refuses a legacy directory, naming it and the command that converts it, and leaves it untouched', () => {
    const dataDir = tempDir();
    buildLegacyDataDir(dataDir);
    const before = snapshot(dataDir);
    expect(checkDataFormat(dataDir)).toBe('legacy');
    let thrown: unknown;
    try {
      assertCurrentDataFormat(dataDir, './data');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(LegacyDataFormatError);
    // The first legacy segment found, for whoever debugs a refusal.
    expect((thrown as LegacyDataFormatError).evidence).toBe(path.join(dataDir, 'topics', '__consumer_offsets', '0', `${'0'.padStart(20, '0')}.log`));
    expect((thrown as Error).message).toBe(
      "data directory ./data holds records in Rill's old format (before Kafka's RecordBatch v2); stop the broker and run: rill migrate --data-dir ./data",
    );
    expect(() => assertCurrentDataFormat(dataDir, '/srv/my data')).toThrow("rill migrate --data-dir '/srv/my data'");
    expect(snapshot(dataDir)).toEqual(before);
  });

  it('finds the old format in a journal alone (the segments lost everything)', () => {
    const dataDir = tempDir();
    writeLegacyTopic(dataDir, 't', 1);
    const partition = new LegacyPartition(dataDir, 't', 0);
    const batch = partition.lost(2);
    partition.write();
    writeLegacyJournal(dataDir, 0, 0, [{ key: partition.key, batch }]);
    expect(checkDataFormat(dataDir)).toBe('legacy');
    expect(fs.existsSync(path.join(dataDir, 'format.json'))).toBe(false);
  });

  it('a new directory, or one written in the new format only: current, and format.json says so from then on', () => {
    const fresh = tempDir();
    expect(checkDataFormat(fresh)).toBe('current');
    expect(JSON.parse(fs.readFileSync(path.join(fresh, 'format.json'), 'utf8'))).toEqual({ v: 2, records: 'kafka-record-batch-v2' });
    expect(fs.readdirSync(fresh).sort()).toEqual(['format.json']);

    const written = tempDir();
    const config: LogConfig = { segmentBytes: 1 << 20, segmentMs: 1e12, indexIntervalBytes: 4096, retentionMs: -1, retentionBytes: -1 };
    const { log } = PartitionLog.open(new TopicCatalog(written).partitionDirectory('t', 0), config);
    const builder = new RecordBatchBuilder();
    builder.append(1, 'k', 'id', null, Buffer.from('v'));
    log.append(builder.finish());
    log.close();
    fs.mkdirSync(path.join(written, 'journal', '0'), { recursive: true });
    fs.writeFileSync(path.join(written, 'journal', '0', `${'0'.padStart(20, '0')}.journal`), Buffer.alloc(1024));
    expect(checkDataFormat(written)).toBe('current');
    expect(() => assertCurrentDataFormat(written)).not.toThrow();
  });

  it('refuses a format.json it does not know', () => {
    const dataDir = tempDir();
    fs.writeFileSync(path.join(dataDir, 'format.json'), '{"v":3}');
    expect(() => checkDataFormat(dataDir)).toThrow(/format\.json names a data format this version of Rill does not know/);
  });
});

describe('migrateDataDirectory', () => {
  const tempDir = useTempDirs();

  it('converts every partition: every record, every field, at its offset, nothing lost, added or doubled; then the broker may start', async () => {
    const dataDir = tempDir();
    const partitions = buildLegacyDataDir(dataDir);
    const legacySegments = partitions.map((p) =>
      fs
        .readdirSync(p.directory)
        .filter((f) => f.endsWith('.log'))
        .sort(),
    );
    const legacyTimes = partitions.map((p) => fs.statSync(path.join(p.directory, `${'0'.padStart(20, '0')}.log`), { throwIfNoEntry: false })?.mtimeMs);

    const report = await migrateDataDirectory(dataDir, silent);

    expectConverted(partitions);
    const records = partitions.reduce((sum, p) => sum + p.expected.length, 0);
    // The empty partition needed nothing; the others were converted, 6 batches of them from the
    // journals; the torn tails and the unacknowledged batch were left behind.
    expect(report).toMatchObject({ partitions: 7, records, restoredBatches: 6 });
    const cut = partitions.reduce((sum, p) => sum + p.cutBytes, 0);
    expect(cut).toBeGreaterThan(0);
    expect(report.droppedBytes).toBe(25 + 60 + cut);
    expect(report.bytesAfter).toBeGreaterThan(0);
    // Same segments, same names, same modification times (retention counts from them).
    expect(
      partitions.map((p) =>
        fs
          .readdirSync(p.directory)
          .filter((f) => f.endsWith('.log'))
          .sort(),
      ),
    ).toEqual(legacySegments);
    const times = partitions.map((p) => fs.statSync(path.join(p.directory, `${'0'.padStart(20, '0')}.log`), { throwIfNoEntry: false })?.mtimeMs);
    for (const [i, time] of times.entries()) expect(Math.abs((time ?? 0) - (legacyTimes[i] ?? 0))).toBeLessThan(1);

    expect(leftovers(dataDir)).toEqual([]);
    expect(fs.readdirSync(path.join(dataDir, 'journal')).sort()).toEqual(['0', '1']);
    expect(fs.readdirSync(path.join(dataDir, 'journal', '0'))).toEqual([]);
    expect(fs.readdirSync(path.join(dataDir, 'journal', '1'))).toEqual([]);
    expect(checkDataFormat(dataDir)).toBe('current');
    expect(() => assertCurrentDataFormat(dataDir)).not.toThrow();
  });

  it('a directory from before the journal (no journal files, no recovery point): nothing is cut, as the old start-up cut nothing', async () => {
    const dataDir = tempDir();
    writeLegacyTopic(dataDir, 'early', 1);
    const partition = new LegacyPartition(dataDir, 'early', 0);
    partition.append(3);
    partition.append(2);
    partition.write();
    fs.rmSync(path.join(partition.directory, 'recovery-point.json'));
    await migrateDataDirectory(dataDir, silent);
    expect(partition.expected).toHaveLength(5);
    expectConverted([partition]);
  });

  it('run again: nothing to do, nothing changes', async () => {
    const dataDir = tempDir();
    const partitions = buildLegacyDataDir(dataDir);
    await migrateDataDirectory(dataDir, silent);
    const after = snapshot(dataDir);
    expect(await migrateDataDirectory(dataDir, silent)).toMatchObject({ partitions: 0, records: 0 });
    expect(snapshot(dataDir)).toEqual(after);
    // Even without format.json: the partitions are found converted and left as they are.
    fs.rmSync(path.join(dataDir, 'format.json'));
    expect(await migrateDataDirectory(dataDir, silent)).toMatchObject({ partitions: 0, records: 0 });
    expect(snapshot(dataDir)).toEqual(after);
    expectConverted(partitions);
  });

  const steps: MigrationStep[] = ['converted', 'moved-aside', 'swapped', 'journals-removed'];
  for (const step of steps) {
    for (const nth of step === 'journals-removed' ? [0] : [0, 3]) {
      const name =
        step === 'journals-removed'
          ? 'stopped once the journals are removed: every partition is converted and nothing old is left, so the broker may start'
          : `stopped after "${step}" of partition ${nth}: the broker still refuses to start, and a second run completes it`;
      it(name, async () => {
        const dataDir = tempDir();
        const partitions = buildLegacyDataDir(dataDir);
        const crash = new Error('crash');
        const converted: string[] = [];
        const stopped = migrateDataDirectory(dataDir, silent, {
          afterStep: (at, key) => {
            if (at === 'converted') converted.push(key);
            if (at === step && (step === 'journals-removed' || converted.length === nth + 1)) throw crash;
          },
        });
        await expect(stopped).rejects.toBe(crash);
        if (step === 'journals-removed') expect(checkDataFormat(dataDir)).toBe('current');
        else expect(() => assertCurrentDataFormat(dataDir)).toThrow(LegacyDataFormatError);

        await migrateDataDirectory(dataDir, silent);
        expectConverted(partitions);
        expect(leftovers(dataDir)).toEqual([]);
        expect(checkDataFormat(dataDir)).toBe('current');
      });
    }
  }

  it('reads journal files past its read buffer: records across its boundary, and one larger than it', async () => {
    const dataDir = tempDir();
    writeLegacyTopic(dataDir, 'big', 1);
    const partition = new LegacyPartition(dataDir, 'big', 0);
    partition.append(3);
    const entries: JournaledBatch[] = [];
    for (let i = 0; i < 500; i++) entries.push({ key: partition.key, batch: partition.lost(5, 2_000) });
    entries.push({ key: partition.key, batch: partition.lost(1, 5 * 1024 * 1024) });
    entries.push({ key: partition.key, batch: partition.lost(2) });
    partition.write();
    writeLegacyJournal(dataDir, 0, 1, entries);
    expect(await migrateDataDirectory(dataDir, silent)).toMatchObject({ partitions: 1, restoredBatches: 502 });
    expectConverted([partition]);
  });

  it('stopped while writing a conversion: the half-written copy is thrown away and written anew', async () => {
    const dataDir = tempDir();
    const partitions = buildLegacyDataDir(dataDir);
    const half = `${partitions[0]!.directory}.migrating`;
    fs.mkdirSync(half);
    fs.writeFileSync(path.join(half, `${'0'.padStart(20, '0')}.log`), Buffer.alloc(100, 7));
    expect(() => assertCurrentDataFormat(dataDir)).toThrow(LegacyDataFormatError);
    await migrateDataDirectory(dataDir, silent);
    expectConverted(partitions);
    expect(leftovers(dataDir)).toEqual([]);
  });

  it('refuses a conversion whose partition directory is gone, and keeps both', async () => {
    const dataDir = tempDir();
    const partitions = buildLegacyDataDir(dataDir);
    const directory = partitions[1]!.directory;
    fs.renameSync(directory, `${directory}.migrating`);
    await expect(migrateDataDirectory(dataDir, silent)).rejects.toThrow(/\.migrating is a conversion of .*, which is gone/);
    expect(fs.existsSync(`${directory}.migrating`)).toBe(true);
    expect(() => assertCurrentDataFormat(dataDir)).toThrow(LegacyDataFormatError);
  });
});

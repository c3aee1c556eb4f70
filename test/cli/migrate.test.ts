import { type ChildProcess, spawn } from 'node:child_process';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DataDirectoryLock } from '../../src/storage/index.js';
import { assertCurrentDataFormat, LegacyDataFormatError } from '../../src/storage/migration/index.js';
import { runRill, useChildServers } from '../helpers/child-server.js';
import { type JournaledBatch, LegacyPartition, readConverted, writeLegacyJournal, writeLegacyTopic, writeWorkersFile } from '../helpers/legacy-data.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));
const TOPICS = ['alpha', 'beta', 'gamma', '__consumer_offsets'];
const PARTITIONS = 4;

/**
 * A legacy data directory large enough that converting it takes a while (16 partitions of three
 * segments, some 12 MB): each partition's last segment lost its newest batches in a crash (two
 * workers' journals have them) and ends in a torn write.
 */
function buildLargeLegacyDataDir(dataDir: string): LegacyPartition[] {
  const partitions: LegacyPartition[] = [];
  const journals: JournaledBatch[][] = [[], []];
  for (const topic of TOPICS) {
    writeLegacyTopic(dataDir, topic, PARTITIONS);
    for (let p = 0; p < PARTITIONS; p++) {
      const partition = new LegacyPartition(dataDir, topic, p);
      for (let segment = 0; segment < 3; segment++) {
        if (segment > 0) partition.roll();
        for (let b = 0; b < 25; b++) partition.append(40, 150);
      }
      for (let lost = 0; lost < 3; lost++) journals[p % 2]!.push({ key: partition.key, batch: partition.lost(10, 150) });
      partition.tornTail(100);
      partition.write();
      partitions.push(partition);
    }
  }
  for (const [worker, entries] of journals.entries()) writeLegacyJournal(dataDir, worker, 0, entries);
  writeWorkersFile(dataDir, 2);
  return partitions;
}

interface MigrateRun {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `rill migrate --data-dir DIR`, from source as the other CLI tests run it. */
function startMigrate(args: string[]): MigrateRun {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'migrate', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run: MigrateRun = {
    child,
    stdout: '',
    stderr: '',
    done: new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal }))),
  };
  child.stdout!.on('data', (chunk: Buffer) => (run.stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (run.stderr += chunk.toString()));
  return run;
}

function migratedCount(run: MigrateRun): number {
  return run.stdout.split('\n').filter((line) => line.includes('"msg":"partition migrated"')).length;
}

function anyDirectoryEndingWith(dataDir: string, suffix: string): boolean {
  return TOPICS.some((topic) => fs.readdirSync(path.join(dataDir, 'topics', topic)).some((name) => name.endsWith(suffix)));
}

/**
 * Kills the run with SIGKILL the moment `happened()` holds, checked at each line it logs and each
 * change in a topic directory (no timers). Resolves to whether it was killed, false if it ended first.
 */
async function killWhen(run: MigrateRun, dataDir: string, happened: () => boolean): Promise<boolean> {
  const check = () => {
    if (run.child.exitCode === null && run.child.signalCode === null && happened()) run.child.kill('SIGKILL');
  };
  const watchers = TOPICS.map((topic) => fs.watch(path.join(dataDir, 'topics', topic), check));
  run.child.stdout!.on('data', check);
  const { signal } = await run.done;
  for (const watcher of watchers) watcher.close();
  return signal === 'SIGKILL';
}

/** However a run was stopped, each partition is whole in one place: its directory, or (between the swap's renames) its old and new copies beside each other. */
function expectEveryPartitionWhole(partitions: LegacyPartition[]): void {
  for (const { directory } of partitions) {
    const between = fs.existsSync(`${directory}.legacy`) && fs.existsSync(`${directory}.migrating`);
    expect(fs.existsSync(directory) || between, directory).toBe(true);
  }
}

function expectAllRecords(partitions: LegacyPartition[]): void {
  for (const partition of partitions) {
    const { logStartOffset, records } = readConverted(partition.directory);
    expect(logStartOffset).toBe(0);
    expect(records.length, partition.key).toBe(partition.expected.length);
    expect(records, partition.key).toEqual(partition.expected);
  }
}

describe('rill migrate', () => {
  const tempDir = useTempDirs();
  const startChild = useChildServers();

  it('killed with SIGKILL at several moments, then run again: every record comes through exactly once', { timeout: 120_000 }, async () => {
    const dataDir = tempDir();
    const partitions = buildLargeLegacyDataDir(dataDir);

    // After two partitions are reported converted.
    const first = startMigrate(['--data-dir', dataDir]);
    expect(await killWhen(first, dataDir, () => migratedCount(first) >= 2), first.stderr).toBe(true);
    // While a conversion is being written, after another partition was converted.
    const second = startMigrate(['--data-dir', dataDir]);
    expect(await killWhen(second, dataDir, () => migratedCount(second) >= 1 && anyDirectoryEndingWith(dataDir, '.migrating')), second.stderr).toBe(true);
    // During a swap if the kill lands there, else after two more partitions.
    const third = startMigrate(['--data-dir', dataDir]);
    const lastKill = () => migratedCount(third) >= 2 || (migratedCount(third) >= 1 && anyDirectoryEndingWith(dataDir, '.legacy'));
    expect(await killWhen(third, dataDir, lastKill), third.stderr).toBe(true);

    expectEveryPartitionWhole(partitions);
    expect(() => assertCurrentDataFormat(dataDir)).toThrow(LegacyDataFormatError);
    const converted = migratedCount(first) + migratedCount(second) + migratedCount(third);
    expect(converted).toBeLessThan(partitions.length);

    const last = startMigrate(['--data-dir', dataDir]);
    expect(await last.done, last.stderr).toEqual({ code: 0, signal: null });
    expect(last.stderr).toBe('');
    expect(last.stdout).toMatch(new RegExp(`rill migrate: ${dataDir} converted to Kafka RecordBatch v2: \\d+ partitions, \\d+ records in \\d+ batches`));
    expectAllRecords(partitions);
    expect(() => assertCurrentDataFormat(dataDir)).not.toThrow();
    expect(fs.readdirSync(path.join(dataDir, 'journal', '0'))).toEqual([]);
    expect(fs.existsSync(path.join(dataDir, '.lock'))).toBe(false);

    // Once more: nothing to do.
    const again = startMigrate(['--data-dir', dataDir]);
    expect((await again.done).code).toBe(0);
    expect(again.stdout).toContain(`rill migrate: ${dataDir} is in the current format (nothing to convert)`);
  });

  it('rill start on a legacy directory: exits 1 with one line naming rill migrate, no stack trace, the directory untouched', async () => {
    const dataDir = tempDir();
    const partitions = buildLargeLegacyDataDir(dataDir).slice(0, 2);
    const before = partitions.map((p) => fs.readFileSync(path.join(p.directory, `${'0'.padStart(20, '0')}.log`)));
    const run = await runRill(['start', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--stomp-port', '0', '--workers', '1']);
    const output = `stderr:\n${run.stderr}\nstdout:\n${run.stdout}`;
    expect(run.code, output).toBe(1);
    // By itself and promptly (the CLI's last-resort exit comes 5 s after a failed start).
    expect(run.exitDelayMs, output).toBeLessThan(3_000);
    expect(run.stderr + run.stdout, output).not.toMatch(/^\s+at /m);
    expect(run.stderr.trimEnd().split('\n'), output).toEqual([
      `rill: data directory ${dataDir} holds records in Rill's old format (before Kafka's RecordBatch v2): ` +
        `convert it with \`rill migrate --data-dir ${dataDir}\`, or pass --data-dir or set storage.dataDir to use another directory`,
    ]);
    expect(partitions.map((p) => fs.readFileSync(path.join(p.directory, `${'0'.padStart(20, '0')}.log`)))).toEqual(before);
    expect(fs.existsSync(path.join(dataDir, '.lock'))).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'format.json'))).toBe(false);
  });

  it('after the migration the broker starts on the directory and serves every record', { timeout: 60_000 }, async () => {
    const dataDir = tempDir();
    const partitions = buildLargeLegacyDataDir(dataDir);
    const migrate = startMigrate(['--data-dir', dataDir]);
    expect((await migrate.done).code, migrate.stderr).toBe(0);

    const server = await startChild(dataDir);
    const url = `ws://127.0.0.1:${server.httpPort}/stomp`;
    const tail = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', ENTRY, 'tail', 'alpha', '--url', url, '--from', 'earliest', '--no-follow', '--json'],
      {
        maxBuffer: 64 * 1024 * 1024,
        timeout: 30_000,
      },
    );
    const served = tail.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { partition: number; offset: number; messageID?: string; timestamp: number });
    const expected = partitions.filter((p) => p.topic === 'alpha').flatMap((p) => p.expected.map((r) => ({ partition: p.partition, ...r })));
    expect(served.length).toBe(expected.length);
    const key = (r: { partition: number; offset: number }) => `${r.partition}/${r.offset}`;
    const byPlace = new Map(served.map((r) => [key(r), r]));
    for (const record of expected) {
      const got = byPlace.get(key(record));
      expect(got, key(record)).toBeDefined();
      expect(got!.timestamp).toBe(record.timestamp);
      if (record.messageId !== null) expect(got!.messageID).toBe(record.messageId);
    }
  });

  it('refuses a data directory a broker holds, a missing one, and a bad flag', async () => {
    const dataDir = tempDir();
    buildLargeLegacyDataDir(dataDir);
    const lock = DataDirectoryLock.acquire(dataDir);
    try {
      const held = startMigrate(['--data-dir', dataDir]);
      expect((await held.done).code).toBe(1);
      expect(held.stderr).toMatch(new RegExp(`^rill migrate: data directory ${dataDir} is in use by another broker: pid ${process.pid} .*: stop it first`));
    } finally {
      lock.release();
    }
    expect(() => assertCurrentDataFormat(dataDir)).toThrow(LegacyDataFormatError);

    const missing = startMigrate(['--data-dir', path.join(dataDir, 'nope')]);
    expect((await missing.done).code).toBe(1);
    expect(missing.stderr).toBe(`rill migrate: data directory ${path.join(dataDir, 'nope')} does not exist\n`);

    const flag = startMigrate(['--frobnicate']);
    expect((await flag.done).code).toBe(2);
    expect(flag.stderr).toMatch(/^rill migrate: Unknown option '--frobnicate'/);
  });
});

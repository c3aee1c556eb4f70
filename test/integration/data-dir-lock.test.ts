import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { StartupError } from '../../src/server/index.js';
import { DataDirectoryLock, DataDirectoryLockedError, type LockHolder } from '../../src/storage/index.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { exited, runRill, useChildServers } from '../helpers/child-server.js';
import { useServers } from '../helpers/server.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STORAGE = pathToFileURL(path.join(ROOT, 'src/storage/index.ts')).href;
const onLinux = fs.existsSync('/proc/self/stat');

/** Publishes each messageID to a one-partition topic and waits for its RECEIPT. */
async function publish(server: { stompPort: number }, topic: string, ids: string[]): Promise<void> {
  const client = await RawStompClient.session(server.stompPort);
  for (const id of ids) {
    client.send('SEND', { destination: `/producer/publish/${topic}`, receipt: id, partition: '0' }, canonical(id, 'k', `body of ${id}`));
    await client.receipt(id);
  }
  client.close();
}

/** Every file under `dir` with its size and modification time, and the lock's content: what a refused broker must leave as it was. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    const stat = fs.statSync(file);
    files[path.relative(dir, file)] = `${stat.size} bytes, modified ${stat.mtimeMs}`;
  }
  files['.lock content'] = fs.readFileSync(path.join(dir, '.lock'), 'utf8');
  return files;
}

function lockOf(dataDir: string): LockHolder {
  return JSON.parse(fs.readFileSync(path.join(dataDir, '.lock'), 'utf8')) as LockHolder;
}

function writeLock(dataDir: string, holder: Partial<LockHolder>): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const record = { pid: process.pid, hostname: os.hostname(), startedAt: new Date(0).toISOString(), token: 'written-by-the-test', ...holder };
  fs.writeFileSync(path.join(dataDir, '.lock'), JSON.stringify(record));
}

/** The pid of a process that has run and is gone (reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await exited(child);
  return child.pid!;
}

describe('one data directory, one broker', () => {
  const servers = useServers();
  const startChild = useChildServers();
  const tempDir = useTempDirs();

  it('refuses a second in-process broker on the same directory, which touches nothing; the first keeps serving', async () => {
    // One broker worker: the server is up before all its workers are, and a second one still starting would write its
    // journal after the snapshot below (a change the refused broker did not make).
    const first = await servers.start({ brokers: { workers: 1 }, topics: { definitions: [{ name: 'mine', partitions: 1 }] } });
    await publish(first, 'mine', ['m-0', 'm-1', 'm-2']);
    expect(lockOf(first.dataDir)).toMatchObject({ pid: process.pid, hostname: os.hostname(), httpPort: first.httpPort, stompPort: first.stompPort });
    const before = snapshot(first.dataDir);

    const refused = await servers.start({ topics: { definitions: [{ name: 'mine', partitions: 3 }] } }, first.dataDir).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StartupError);
    const { message, setting } = refused as StartupError;
    expect(setting).toBe('storage.dataDir');
    expect(message).toContain(`data directory ${first.dataDir} is in use by another broker`);
    expect(message).toContain(`pid ${process.pid} on host ${os.hostname()}`);
    expect(message).toContain(`HTTP port ${first.httpPort}`);
    expect(snapshot(first.dataDir)).toEqual(before);

    await publish(first, 'mine', ['m-3']);
    const stored = await readTopic(first, 'mine');
    expect(stored.map((m) => [m.offset, m.messageId])).toEqual([
      [0, 'm-0'],
      [1, 'm-1'],
      [2, 'm-2'],
      [3, 'm-3'],
    ]);
    expect(first.broker.topic('mine')?.partitions).toBe(1);
  });

  it('makes a second `rill start` on the same directory exit at once, naming the directory and the holder; the first keeps serving', async () => {
    const dataDir = tempDir();
    const first = await startChild(dataDir);
    await publish(first, 'mine', ['c-0', 'c-1']);
    // Every partition of the auto-created topic is open (its files exist) once they all answer.
    expect(await readTopic(first, 'mine')).toHaveLength(2);
    const before = snapshot(dataDir);

    const second = await runRill(['start', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--stomp-port', '0', '--workers', '1']);
    expect(second.timedOut).toBe(false);
    expect(second.code).toBe(1);
    const lines = second.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`rill: data directory ${dataDir} is in use by another broker: pid ${first.process.pid} on host ${os.hostname()}`);
    expect(lines[0]).toContain(`HTTP port ${first.httpPort}`);
    expect(lines[0]).toMatch(/stop that broker, or pass --data-dir or set storage\.dataDir/);
    expect(second.stderr + second.stdout).not.toMatch(/^\s+at /m);
    expect(snapshot(dataDir)).toEqual(before);

    await publish(first, 'mine', ['c-2']);
    expect((await readTopic(first, 'mine')).map((m) => [m.offset, m.messageId])).toEqual([
      [0, 'c-0'],
      [1, 'c-1'],
      [2, 'c-2'],
    ]);
  });

  it('takes over the lock of a broker killed with SIGKILL, and removes it at a clean stop', async () => {
    const dataDir = tempDir();
    const killed = await startChild(dataDir);
    await publish(killed, 'mine', ['k-0', 'k-1']);
    killed.process.kill('SIGKILL');
    await exited(killed.process);
    expect(lockOf(dataDir).pid).toBe(killed.process.pid);

    const next = await startChild(dataDir);
    const takeover = next.logs.find((line) => line.includes('took over the data directory lock'));
    expect(takeover, next.logs.join('\n')).toBeDefined();
    expect(JSON.parse(takeover!).previousHolder.pid).toBe(killed.process.pid);
    expect(lockOf(dataDir).pid).toBe(next.process.pid);
    expect((await readTopic(next, 'mine')).map((m) => m.messageId)).toEqual(['k-0', 'k-1']);

    next.process.kill('SIGTERM');
    expect(await exited(next.process)).toBe(0);
    expect(fs.existsSync(path.join(dataDir, '.lock'))).toBe(false);
    expect(fs.readdirSync(dataDir).filter((name) => name.startsWith('.lock'))).toEqual([]);
  });

  it('removes the lock when an in-process broker closes, so the next one starts', async () => {
    const first = await servers.start();
    expect(fs.existsSync(path.join(first.dataDir, '.lock'))).toBe(true);
    await first.close();
    expect(fs.existsSync(path.join(first.dataDir, '.lock'))).toBe(false);
    const again = await servers.start({}, first.dataDir);
    expect(lockOf(first.dataDir).stompPort).toBe(again.stompPort);
  });
});

describe('telling a stale lock from a live one', () => {
  const tempDir = useTempDirs();
  const held: DataDirectoryLock[] = [];
  afterEach(() => {
    for (const lock of held.splice(0)) lock.release();
  });
  const acquire = (dir: string): DataDirectoryLock => {
    const lock = DataDirectoryLock.acquire(dir);
    held.push(lock);
    return lock;
  };
  const refusal = (dir: string): DataDirectoryLockedError => {
    try {
      acquire(dir);
    } catch (error) {
      if (error instanceof DataDirectoryLockedError) return error;
      throw error;
    }
    throw new Error(`${dir} was locked, but should not have been`);
  };

  it('takes over a lock whose process is gone', async () => {
    const dir = tempDir();
    const pid = await deadPid();
    writeLock(dir, { pid });
    expect(acquire(dir).tookOverFrom).toMatchObject({ pid, token: 'written-by-the-test' });
    expect(lockOf(dir).pid).toBe(process.pid);
  });

  it("takes over a lock with this process's pid that this process does not hold (a restart that got the same pid)", () => {
    const dir = tempDir();
    writeLock(dir, { pid: process.pid });
    expect(acquire(dir).tookOverFrom).toMatchObject({ pid: process.pid });
    // ... but not one this process does hold.
    expect(refusal(dir).holder).toMatchObject({ pid: process.pid, token: lockOf(dir).token });
    for (const lock of held.splice(0)) lock.release();
    expect(fs.existsSync(path.join(dir, '.lock'))).toBe(false);
  });

  it('refuses a lock whose process runs, and one from another host', () => {
    const live = tempDir();
    writeLock(live, { pid: process.ppid });
    expect(refusal(live).holder).toMatchObject({ pid: process.ppid });
    const remote = tempDir();
    writeLock(remote, { pid: 1, hostname: `not-${os.hostname()}` });
    const error = refusal(remote);
    expect(error.message).toContain(`pid 1 on host not-${os.hostname()}`);
    expect(error.message).toContain(remote);
  });

  it.skipIf(!onLinux)('takes over a lock whose pid now belongs to another process, or that is from before the machine restarted', () => {
    const reused = tempDir();
    writeLock(reused, { pid: process.ppid, processStart: 1 });
    expect(acquire(reused).tookOverFrom).toMatchObject({ pid: process.ppid });
    const rebooted = tempDir();
    writeLock(rebooted, { pid: process.ppid, bootId: 'some-earlier-boot' });
    expect(acquire(rebooted).tookOverFrom).toMatchObject({ pid: process.ppid });
  });

  it('takes over a stale lock whose earlier takeover was killed half-way, leaving no guard behind', async () => {
    const dir = tempDir();
    writeLock(dir, { pid: await deadPid(), token: 'stale' });
    const guard = { pid: await deadPid(), hostname: os.hostname(), startedAt: new Date(0).toISOString(), token: 'killed-taking-over' };
    fs.writeFileSync(path.join(dir, '.lock.takeover-stale'), JSON.stringify(guard));
    expect(acquire(dir).tookOverFrom).toMatchObject({ token: 'stale' });
    expect(fs.readdirSync(dir).filter((name) => name.startsWith('.lock'))).toEqual(['.lock']);
  });

  it('refuses a lock file it cannot read, naming it', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, '.lock'), 'not json');
    const error = refusal(dir);
    expect(error.holder).toBeNull();
    expect(error.message).toContain(path.join(dir, '.lock'));
  });

  it('lets exactly one of several processes starting together take over the same stale lock', async () => {
    // Each contender reads commands on stdin: "acquire <dir>" answers "held" or "refused <error>"; "release" lets go.
    // Each one dawdles after reading the stale lock, so that all of them have judged it stale before
    // any acts on it: the race of a takeover, made wide enough to lose every time it is not handled.
    const script = path.join(tempDir(), 'contender.mts');
    fs.writeFileSync(
      script,
      `import fs from 'node:fs';
import readline from 'node:readline';
import { DataDirectoryLock } from ${JSON.stringify(STORAGE)};
const readFileSync = fs.readFileSync;
fs.readFileSync = (file, ...rest) => {
  const text = readFileSync(file, ...rest);
  if (String(file).endsWith('.lock') && String(text).includes('"stale-')) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  return text;
};
let lock;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'release') {
    lock?.release();
    lock = undefined;
    process.stdout.write('released\\n');
    return;
  }
  try {
    lock = DataDirectoryLock.acquire(line.slice('acquire '.length));
    process.stdout.write('held\\n');
  } catch (error) {
    process.stdout.write(\`refused \${error.name}\\n\`);
  }
});
process.stdout.write('loaded\\n');
`,
    );
    const contenders = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
      const output = { lines: [] as string[] };
      readline.createInterface({ input: child.stdout }).on('line', (line) => output.lines.push(line));
      return { child, output };
    });
    const answers = async (what: string, count: number): Promise<string[]> => {
      await until(what, () => contenders.every((c) => c.output.lines.length >= count), 30_000);
      return contenders.map((c) => c.output.lines[count - 1]!);
    };
    try {
      await answers('every contender loaded', 1);
      for (let round = 0; round < 3; round++) {
        const dir = tempDir();
        writeLock(dir, { pid: await deadPid(), token: `stale-${round}` });
        for (const { child } of contenders) child.stdin.write(`acquire ${dir}\n`);
        const outcome = await answers(`round ${round}`, 2 + round * 2);
        expect(
          outcome.filter((a) => a === 'held'),
          outcome.join(', '),
        ).toHaveLength(1);
        expect(
          outcome.filter((a) => a === 'refused DataDirectoryLockedError'),
          outcome.join(', '),
        ).toHaveLength(3);
        expect(lockOf(dir).pid).toBe(contenders[outcome.indexOf('held')]!.child.pid);
        for (const { child } of contenders) child.stdin.write('release\n');
        await answers(`round ${round} released`, 3 + round * 2);
        expect(fs.readdirSync(dir).filter((name) => name.startsWith('.lock'))).toEqual([]);
      }
    } finally {
      for (const { child } of contenders) killIfRunning(child);
    }
  });
});

function killIfRunning(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

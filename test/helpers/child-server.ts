import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { databaseFor, TESTING_POSTGRES } from './postgres.js';

const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));

export interface ChildServer {
  process: ChildProcess;
  httpPort: number;
  stompPort: number;
  logs: string[];
}

export interface ChildServerOptions {
  /** More `rill start` flags, e.g. `--config FILE`. */
  args?: string[];
  /** Environment variables set for the child on top of this process's (worker threads inherit them), e.g. RILL_FAILPOINTS. */
  env?: Record<string, string>;
  /** The child's open-file limit (soft and hard), as `ulimit -n` sets it. */
  openFiles?: number;
}

/** Starts child servers that are killed after each test. */
export function useChildServers(): (dataDir: string, options?: ChildServerOptions) => Promise<ChildServer> {
  const children: ChildProcess[] = [];
  afterEach(async () => {
    const killed = children.splice(0);
    for (const child of killed) child.kill('SIGKILL');
    await Promise.all(killed.map((child) => exited(child)));
  });
  return async (dataDir, options) => {
    const server = await startChildServer(dataDir, options);
    children.push(server.process);
    return server;
  };
}

/** Runs `rill start` as a child process (from source, through tsx) and waits for its ready line. */
async function startChildServer(dataDir: string, options: ChildServerOptions = {}): Promise<ChildServer> {
  // A cluster-mode run (RILL_TEST_STORAGE=postgres): the same tests, the partitions in PostgreSQL.
  const storage =
    TESTING_POSTGRES && !(options.args ?? []).includes('--storage') ? ['--storage', 'postgres', '--postgres-url', await databaseFor(dataDir)] : [];
  const args = [
    '--import',
    'tsx',
    ENTRY,
    'start',
    '--data-dir',
    dataDir,
    '--host',
    '127.0.0.1',
    '--http-port',
    '0',
    '--stomp-port',
    '0',
    '--workers',
    '2',
    ...storage,
    ...(options.args ?? []),
  ];
  const spawnOptions = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } };
  const child =
    options.openFiles === undefined
      ? spawn(process.execPath, args, spawnOptions)
      : spawn('sh', ['-c', `ulimit -n ${options.openFiles} && exec "$@"`, 'sh', process.execPath, ...args], spawnOptions);
  const logs: string[] = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    // A server that never gets ready is killed: the caller never gets hold of it to stop it.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start (no "ready" log line):\n${logs.join('\n')}`));
    }, 20_000);
    child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        logs.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; httpPort?: number; stompPort?: number };
          if (entry.msg === 'ready') {
            clearTimeout(timer);
            resolve({ process: child, httpPort: entry.httpPort!, stompPort: entry.stompPort!, logs });
          }
        } catch {
          // not a log line
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${logs.join('\n')}`));
    });
  });
}

export interface RillRun {
  /** The exit code; null when the process was killed (see `signal`). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Whether it was still running after `timeoutMs` (it was then killed). */
  timedOut: boolean;
  /** Milliseconds from its first output on stderr to its exit (null when it wrote nothing there): how long a failed start lingers. */
  exitDelayMs: number | null;
}

/**
 * Runs the `rill` command (from source, through tsx) to its end, without waiting for any log line,
 * and collects what it printed and how it exited. One that runs longer than `timeoutMs` is killed.
 */
export function runRill(args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RillRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let stdout = '';
  let stderr = '';
  let stderrAt: number | null = null;
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderrAt ??= performance.now();
    stderr += chunk.toString();
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? 20_000);
  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close', not 'exit': by then stdout and stderr have been read to their end.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, exitDelayMs: stderrAt === null ? null : performance.now() - stderrAt });
    });
  });
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

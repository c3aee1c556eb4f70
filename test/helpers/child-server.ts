import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));

export interface ChildServer {
  process: ChildProcess;
  httpPort: number;
  stompPort: number;
  logs: string[];
}

/** Starts child servers that are killed after each test. */
export function useChildServers(): (dataDir: string, extraArgs?: string[]) => Promise<ChildServer> {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });
  return async (dataDir, extraArgs) => {
    const server = await startChildServer(dataDir, extraArgs);
    children.push(server.process);
    return server;
  };
}

/** Runs `rill start` as a child process (from source, through tsx) and waits for its ready line. */
export function startChildServer(dataDir: string, extraArgs: string[] = []): Promise<ChildServer> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', ENTRY, 'start', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--stomp-port', '0', '--workers', '2', ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: string[] = [];
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${logs.join('\n')}`)), 20_000);
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

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

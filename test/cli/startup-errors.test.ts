import fs from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StartupError } from '../../src/server/index.js';
import { type RillRun, runRill } from '../helpers/child-server.js';
import { useServers } from '../helpers/server.js';
import { useTempDirs } from '../helpers/temp-dir.js';

/**
 * A failed start writes its line, stops what it had started, and exits by itself: well before the
 * CLI's last-resort exit (5 s after the failure), which would hide workers left running.
 */
const PROMPT_EXIT_MS = 3_000;

/** Occupies a port on 127.0.0.1 with a plain TCP server, closed after each test. */
function useOccupiedPorts(): () => Promise<number> {
  const open: net.Server[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });
  return async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    open.push(server);
    return (server.address() as AddressInfo).port;
  };
}

function start(dataDir: string, ...flags: string[]): Promise<RillRun> {
  return runRill(['start', '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--stomp-port', '0', '--workers', '1', ...flags]);
}

/** Exited with `code`, by itself and promptly, with exactly one line on stderr, and no stack trace anywhere. */
function expectOneLine(run: RillRun, code: number): string {
  const output = `stderr:\n${run.stderr}\nstdout:\n${run.stdout}`;
  expect(run.timedOut, output).toBe(false);
  expect(run.code, output).toBe(code);
  expect(run.exitDelayMs, output).toBeLessThan(PROMPT_EXIT_MS);
  expect(run.stderr + run.stdout, output).not.toMatch(/^\s+at /m);
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines, output).toHaveLength(1);
  return lines[0]!;
}

describe('rill start: start-up errors name the fix', () => {
  const tempDir = useTempDirs();
  const occupiedPort = useOccupiedPorts();

  it('a port in use: names the port, the flag and the setting, stops the broker workers it had started and unlocks the data directory', async () => {
    const dataDir = tempDir();
    const httpPort = await occupiedPort();
    const http = await start(dataDir, '--http-port', String(httpPort));
    expect(expectOneLine(http, 1)).toBe(`rill: port ${httpPort} on 127.0.0.1 is in use: pass --http-port or set server.httpPort`);
    // The broker had started (it created the offsets topic), and let go of the directory.
    expect(fs.existsSync(path.join(dataDir, 'topics', '__consumer_offsets', 'topic.json'))).toBe(true);
    expect(fs.existsSync(path.join(dataDir, '.lock'))).toBe(false);

    const stompPort = await occupiedPort();
    const stomp = await start(dataDir, '--stomp-port', String(stompPort));
    expect(expectOneLine(stomp, 1)).toBe(`rill: port ${stompPort} on 127.0.0.1 is in use: pass --stomp-port or set server.stompPort`);
    expect(fs.existsSync(path.join(dataDir, '.lock'))).toBe(false);
  });

  it('a data directory that cannot be written: names it, the flag and the setting', async () => {
    const file = path.join(tempDir(), 'file');
    fs.writeFileSync(file, 'a regular file, not a directory');
    const dataDir = path.join(file, 'data');
    const line = expectOneLine(await start(dataDir), 1);
    expect(line).toMatch(new RegExp(`^rill: cannot write ${dataDir} \\(ENOTDIR[^)]*\\): pass --data-dir or set storage\\.dataDir$`));
  });

  it('a flag value the configuration does not accept: blamed on the flag, not on the config file', async () => {
    const dataDir = tempDir();
    const port = expectOneLine(await start(dataDir, '--http-port', '70000'), 2);
    expect(port).toBe('rill: --http-port 70000 is not valid: Too big: expected number to be <=65535');
    const workers = expectOneLine(await start(dataDir, '--workers', '0'), 2);
    expect(workers).toBe('rill: --workers 0 is not valid: Too small: expected number to be >=1');
    const level = expectOneLine(await start(dataDir, '--log-level', 'loud'), 2);
    expect(level).toMatch(/^rill: --log-level "loud" is not valid: Invalid option: expected one of /);
    expect(fs.readdirSync(dataDir)).toEqual([]);
  });

  it('a bad flag and a bad config file: each blamed for its own problem', async () => {
    const dir = tempDir();
    const config = path.join(dir, 'rill.json');
    fs.writeFileSync(config, JSON.stringify({ storage: { segmentBytes: 'big' } }));
    const run = await start(path.join(dir, 'data'), '--config', config, '--http-port', '70000');
    expect(run.code).toBe(2);
    const [flag, file, ...rest] = run.stderr.trimEnd().split('\n');
    expect(flag).toBe('rill: --http-port 70000 is not valid: Too big: expected number to be <=65535');
    expect(file).toBe(`config file ${config} is not valid:`);
    expect(rest.join('\n')).toContain('storage.segmentBytes');
    expect(rest.join('\n')).not.toContain('server.httpPort');
  });
});

describe('startServer: a start-up that fails half-way', () => {
  const servers = useServers();
  const occupiedPort = useOccupiedPorts();

  it('throws a StartupError naming the setting, after stopping what it had started and unlocking the data directory', async () => {
    const dataDir = servers.tempDir();
    const port = await occupiedPort();
    const error = await servers.start({ server: { httpPort: port } }, dataDir).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(StartupError);
    expect(error).toMatchObject({ problem: `port ${port} on 127.0.0.1 is in use`, setting: 'server.httpPort' });
    expect((error as Error).message).toBe(`port ${port} on 127.0.0.1 is in use: set server.httpPort`);
    expect(fs.existsSync(path.join(dataDir, '.lock'))).toBe(false);
    // The directory is free again: a broker starts on it at once.
    const server = await servers.start({}, dataDir);
    expect(server.broker.topic('__consumer_offsets')).toBeDefined();
  });
});

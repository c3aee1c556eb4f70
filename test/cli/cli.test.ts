import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { canonical, connectStompJs, publishWithReceipt, WAIT } from '../helpers/clients.js';
import { exited, useChildServers } from '../helpers/child-server.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));

function rill(args: string[], stdin?: string, env?: Record<string, string>): Promise<{ stdout: string; stderr: string; code: number }> {
  const running = run(process.execPath, ['--import', 'tsx', ENTRY, ...args], { timeout: 20_000, env: { ...process.env, ...env } });
  if (stdin !== undefined) running.child.stdin!.end(stdin);
  return running.then(
    ({ stdout, stderr }) => ({ stdout, stderr, code: 0 }),
    (error: { stdout: string; stderr: string; code: number }) => ({ stdout: error.stdout, stderr: error.stderr, code: error.code }),
  );
}

describe('rill command', () => {
  const tempDir = useTempDirs();
  const startChild = useChildServers();

  it('starts with flags over the config, tails a topic, and shuts down cleanly on SIGTERM', async () => {
    const dataDir = tempDir();
    const server = await startChild(dataDir);
    const listening = server.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'listening');
    expect(listening).toMatchObject({ dataDir, workers: 2, durability: 'fsync' });
    expect(server.httpPort).toBeGreaterThan(0);

    const url = `ws://127.0.0.1:${server.httpPort}/stomp`;
    const client = await connectStompJs(url);
    for (let i = 0; i < 5; i++) await publishWithReceipt(client, '/producer/publish/cli', canonical(`c${i}`, `k${i}`, `text ${i}`, 1_700_000_000_000 + i));
    await client.deactivate();

    const tail = await rill(['tail', 'cli', '--url', url, '--from', 'earliest', '--no-follow', '--json']);
    expect(tail.code).toBe(0);
    const lines = tail.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(5);
    expect(lines.map((l) => l.messageID).sort()).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    const first = lines.find((l) => l.messageID === 'c0');
    expect(first).toMatchObject({ topic: 'cli', key: 'k0', timestamp: 1_700_000_000_000, message: 'text 0' });
    expect(Object.keys(first).sort()).toEqual(['key', 'message', 'messageID', 'offset', 'partition', 'timestamp', 'topic']);

    const one = await rill(['tail', 'cli', '--url', url, '--from', 'earliest', '--no-follow', '--json', '--partition', String(first.partition)]);
    expect(
      one.stdout
        .trim()
        .split('\n')
        .every((l) => JSON.parse(l).partition === first.partition),
    ).toBe(true);

    server.process.kill('SIGTERM');
    expect(await exited(server.process)).toBe(0);
    expect(server.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    const markers = fs
      .readdirSync(path.join(dataDir, 'topics', 'cli'))
      .filter((d) => d !== 'topic.json')
      .map((p) => fs.existsSync(path.join(dataDir, 'topics', 'cli', p, '.clean-shutdown')));
    expect(markers.every(Boolean)).toBe(true);
  });

  it('exits with a clear message on an invalid config or flag', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, JSON.stringify({ storage: { segmentBytes: 'big' } }));
    const bad = await rill(['start', '--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad.json is not valid/);
    expect(bad.stderr).toContain('storage.segmentBytes');
    const flag = await rill(['start', '--http-port', 'eighty']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--http-port takes a whole number/);
    const unknown = await rill(['frobnicate']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
  });

  it('tail reports a missing topic', async () => {
    const server = await startChild(tempDir());
    const result = await rill(['tail', 'nothing-here', '--url', `ws://127.0.0.1:${server.httpPort}/stomp`, '--no-follow']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/topic "nothing-here" does not exist/);
  });

  it('passwd hashes a password read on stdin; the broker takes it, and SIGHUP reloads users without a restart', async () => {
    const hashed = await rill(['passwd'], 'open sesame\n');
    expect(hashed.code).toBe(0);
    const passwordHash = hashed.stdout.trim();
    expect(passwordHash).toMatch(/^scrypt\$/);
    expect(passwordHash).not.toContain('open sesame');
    expect((await rill(['passwd', 'open sesame'])).code).toBe(2);

    const configFile = path.join(tempDir(), 'rill.json');
    const config = (users: unknown[]) => ({
      auth: { users, acls: [{ principal: 'role:admin', resource: 'topic:*', operations: ['all'] }] },
    });
    fs.writeFileSync(configFile, JSON.stringify(config([{ name: 'ops', passwordHash, roles: ['admin'] }])));
    const dataDir = tempDir();
    const server = await startChild(dataDir, { args: ['--config', configFile] });
    const url = `ws://127.0.0.1:${server.httpPort}/stomp`;
    const ops = await connectStompJs(url, { login: 'ops', passcode: 'open sesame' });
    await publishWithReceipt(ops, '/producer/publish/secured', canonical('s-1', 'k', 'x'));
    // The CLI logs in as the operator tells it to: --user and RILL_PASSWORD (never a password flag).
    const tail = ['tail', 'secured', '--url', url, '--from', 'earliest', '--no-follow', '--json'];
    const refused = await rill(tail);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('the broker needs credentials: pass --user and set RILL_PASSWORD');
    const tailed = await rill([...tail, '--user', 'ops'], undefined, { RILL_PASSWORD: 'open sesame' });
    expect(tailed.code).toBe(0);
    expect(JSON.parse(tailed.stdout.trim())).toMatchObject({ topic: 'secured', messageID: 's-1' });

    // The user is removed from the file; `rill reload` (SIGHUP to the broker holding the data
    // directory) ends its connection with an ERROR.
    fs.writeFileSync(configFile, JSON.stringify(config([])));
    expect((await rill(['reload', '--data-dir', tempDir()])).stderr).toMatch(/no broker runs on .* on this machine/);
    const reloaded = await rill(['reload', '--data-dir', dataDir]);
    expect(reloaded.code).toBe(0);
    expect(reloaded.stdout).toContain(`(pid ${server.process.pid})`);
    await vi.waitFor(() => expect(ops.errors.map((e) => e.headers.message)).toContain('user "ops" may no longer connect'), WAIT);
    // The log line comes through the child's stdout, which may be read after the ERRORs it caused arrived.
    await vi.waitFor(() => expect(server.logs.some((line) => line.includes('reloaded users, tokens, ACLs and TLS certificates'))).toBe(true), WAIT);
    await ops.deactivate();
  });
});

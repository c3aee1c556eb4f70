import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { exited, useChildServers } from '../helpers/child-server.js';
import { canonical, connectStompJs, publishWithReceipt, subscribed, WAIT } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { storedMessages, useServers } from '../helpers/server.js';
import { useTempDirs } from '../helpers/temp-dir.js';

/*
 * `rill` as scripts and people use it: each command run as a process (through tsx) against a real
 * broker, its --json output parsed, its exit code checked. Each CLI start costs about a second, so
 * the file runs few of them, in parallel where they are independent.
 */

const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));
const PACKAGE_VERSION = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

interface RillRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment the CLI runs in: this one's, without credentials or a broker address that would change what it does. */
function cliEnvironment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const name of ['RILL_TOKEN', 'RILL_USER', 'RILL_PASSWORD']) delete env[name];
  if (extra.RILL_URL === undefined) delete env.RILL_URL;
  return env;
}

function startRill(args: string[], options: { url?: string; stdin?: string } = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: cliEnvironment(options.url === undefined ? {} : { RILL_URL: options.url }),
  });
  child.stdin!.end(options.stdin ?? '');
  return child;
}

/** Runs `rill args` to its end; `url` goes in RILL_URL (the tests pass --url explicitly where the flag itself is the point). */
function rill(args: string[], options: { url?: string; stdin?: string } = {}): Promise<RillRun> {
  const child = startRill(args, options);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The one JSON document a --json command printed. */
// biome-ignore lint/suspicious/noExplicitAny: documents are checked field by field in each test, against the documented shapes
function json(run: RillRun): any {
  expect(run.code, `exit code; stderr: ${run.stderr}`).toBe(0);
  return JSON.parse(run.stdout);
}

/** The JSON lines a --json tail or consume printed. */
// biome-ignore lint/suspicious/noExplicitAny: lines are checked field by field
function jsonLines(text: string): any[] {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line));
}

/** A table's rows, split on runs of spaces (cells hold no spaces in these tests). */
function tableRows(text: string): string[][] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.trim().split(/\s{2,}/));
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('rill admin commands', () => {
  const servers = useServers();

  it('lists every command in --help, prints the version, and exits 2 on bad usage (naming the flag) and 3 when no broker answers', async () => {
    const nowhere = `http://127.0.0.1:${await closedPort()}`;
    const [help, version, badValue, unknownFlag, missingOption, unreachable, unreachableProduce] = await Promise.all([
      rill(['--help']),
      rill(['--version']),
      rill(['topics', 'create', 'orders', '--partitions', 'many']),
      rill(['topics', 'list', '--frobnicate']),
      rill(['groups', 'reset', 'billing']),
      rill(['topics', 'list', '--url', nowhere]),
      rill(['produce', 'orders'], { url: nowhere, stdin: 'one line\n' }),
    ]);
    expect(help.code).toBe(0);
    for (const command of ['start', 'tail', 'consume', 'produce', 'topics list|create|describe|alter|delete', 'groups list|describe|reset|delete', 'bench']) {
      expect(help.stdout).toContain(`  ${command.split(' ')[0]}`);
      expect(help.stdout).toContain(command);
    }
    for (const command of ['passwd', 'reload', 'migrate', 'dump-segment']) expect(help.stdout).toContain(`  ${command}`);
    expect(help.stdout).toMatch(
      /Exit codes[^\n]*\n\s+0 {2}success\n\s+1 {2}the broker refused[^\n]*\n\s+2 {2}bad usage[^\n]*\n\s+3 {2}the broker cannot be reached/,
    );

    expect(version).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: '' });

    expect(badValue.code).toBe(2);
    expect(badValue.stderr).toBe('rill topics create: --partitions takes a whole number of at least 1, not "many"; see rill topics create --help\n');
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toMatch(/^rill topics list: Unknown option '--frobnicate'/);
    expect(missingOption.code).toBe(2);
    expect(missingOption.stderr).toMatch(/^rill groups reset: Required option '--to <target>' not specified/);

    for (const [run, command] of [
      [unreachable, 'topics list'],
      [unreachableProduce, 'produce'],
    ] as const) {
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toBe(`rill ${command}: cannot reach the broker at ${nowhere}: is it running? pass --url or set RILL_URL\n`);
      expect(run.stdout).toBe('');
    }
  });

  it("topics: create with partitions and settings, list, describe, alter and delete; a missing topic exits 1 with the broker's error", async () => {
    const server = await servers.start();
    const url = httpBase(server.httpPort);

    const created = json(
      await rill(['topics', 'create', 'orders', '--partitions', '2', '--config', 'retentionMs=60000', '--config', 'compression=gzip', '--json', '--url', url]),
    );
    expect(created).toMatchObject({ name: 'orders', partitions: 2, priorityLanes: 1, config: { retentionMs: 60_000, compression: 'gzip' } });

    const [list, described] = await Promise.all([rill(['topics', 'list'], { url }), rill(['topics', 'describe', 'orders', '--json'], { url })]);
    expect(list.code).toBe(0);
    const [head, ...rows] = tableRows(list.stdout);
    expect(head).toEqual(['NAME', 'PARTITIONS']);
    expect(rows).toContainEqual(['orders', '2']);
    const description = json(described);
    expect(description).toMatchObject({
      name: 'orders',
      priorityLanes: 1,
      config: { retentionMs: 60_000, compression: 'gzip', retentionBytes: expect.any(Number), ttlMs: expect.any(Number) },
      overrides: { retentionMs: 60_000, compression: 'gzip' },
    });
    expect(Object.keys(description.overrides).sort()).toEqual(['compression', 'retentionMs']);
    expect(description.partitions).toHaveLength(2);
    for (const partition of description.partitions) {
      expect(partition).toMatchObject({
        logStartOffset: 0,
        logEndOffset: 0,
        sizeBytes: expect.any(Number),
        segments: expect.any(Number),
        worker: expect.any(Number),
      });
    }

    const altered = json(
      await rill(['topics', 'alter', 'orders', '--partitions', '3', '--config', 'ttlMs=5000', '--reset-config', 'compression', '--json'], { url }),
    );
    expect(altered).toMatchObject({
      name: 'orders',
      partitions: 3,
      config: { ttlMs: 5000, retentionMs: 60_000 },
      overrides: { ttlMs: 5000, retentionMs: 60_000 },
    });
    expect(altered.overrides).not.toHaveProperty('compression');
    expect(server.broker.topics.get('orders')?.partitions).toBe(3);

    // For people: the settings with where each comes from, and the partitions.
    const human = await rill(['topics', 'describe', 'orders'], { url });
    expect(human.code).toBe(0);
    const lines = tableRows(human.stdout);
    expect(lines[0]).toEqual(['topic orders: 3 partitions']);
    expect(lines).toContainEqual(['SETTING', 'VALUE', 'SOURCE']);
    expect(lines).toContainEqual(['ttlMs', '5000', 'topic']);
    expect(lines).toContainEqual(['compression', 'none', 'default']);
    expect(lines).toContainEqual(['PARTITION', 'START OFFSET', 'END OFFSET', 'MESSAGES', 'BYTES', 'SEGMENTS', 'WORKER']);

    expect(json(await rill(['topics', 'delete', 'orders', '--json'], { url }))).toEqual({ name: 'orders', deleted: true });
    expect(server.broker.topics.get('orders')).toBeUndefined();
    const missing = await rill(['topics', 'describe', 'orders'], { url });
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'rill topics describe: unknown-topic: no topic "orders"\n' });
  });

  it('groups: list, describe with offsets and lag, reset (refused with members, dry run, executed) and delete', async () => {
    const server = await servers.start();
    const url = httpBase(server.httpPort);
    expect((await call(url, 'POST', '/v1/topics', { name: 'ledger', partitions: 3 })).status).toBe(201);
    const client = await connectStompJs(server.wsUrl);
    for (let i = 0; i < 6; i++) await publishWithReceipt(client, '/producer/publish/ledger', canonical(`l${i}`, `k${i}`, i));
    await client.deactivate();
    const ends = (await call(url, 'GET', '/v1/topics/ledger')).body.partitions as { partition: number; logEndOffset: number }[];
    const joined = await call(url, 'POST', '/v1/groups/audit/members', { member: 'auditor', topics: ['ledger'] });
    expect(joined.status).toBe(200);
    const committed = ends.map((e) => ({ topic: 'ledger', partition: e.partition, offset: e.logEndOffset }));
    expect((await call(url, 'POST', '/v1/groups/audit/members/auditor/commit', { generation: joined.body.generation, offsets: committed })).status).toBe(200);

    const [listed, described, resetRefused, deleteRefused] = await Promise.all([
      rill(['groups', 'list', '--json'], { url }),
      rill(['groups', 'describe', 'audit', '--json'], { url }),
      rill(['groups', 'reset', 'audit', '--to', 'earliest'], { url }),
      rill(['groups', 'delete', 'audit'], { url }),
    ]);
    expect(json(listed).groups).toContainEqual({ group: 'audit', generation: expect.any(Number), members: 1 });
    const description = json(described);
    expect(description).toMatchObject({ group: 'audit', members: [{ member: 'auditor', topics: ['ledger'] }] });
    expect(description.members[0].assignment).toHaveLength(3);
    expect(description.partitions).toEqual(
      ends.map((e) => ({ topic: 'ledger', partition: e.partition, committedOffset: e.logEndOffset, logEndOffset: e.logEndOffset, lag: 0 })),
    );
    for (const refused of [resetRefused, deleteRefused]) {
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^rill groups (reset|delete): group-not-empty: /);
    }

    expect((await call(url, 'DELETE', '/v1/groups/audit/members/auditor')).status).toBe(200);
    const dryRun = json(await rill(['groups', 'reset', 'audit', '--to', 'earliest', '--dry-run', '--json'], { url }));
    expect(dryRun).toEqual({ group: 'audit', dryRun: true, offsets: ends.map((e) => ({ topic: 'ledger', partition: e.partition, offset: 0 })) });
    // Nothing moved.
    expect((await call(url, 'GET', '/v1/groups/audit/lag')).body.partitions.map((p: { offset: number }) => p.offset)).toEqual(ends.map((e) => e.logEndOffset));

    const executed = await rill(['groups', 'reset', 'audit', '--to', 'offset:1', '--topic', 'ledger'], { url });
    expect(executed.code, executed.stderr).toBe(0);
    const [title, head, ...rows] = tableRows(executed.stdout);
    expect(title).toEqual(['the offsets of group audit moved to']);
    expect(head).toEqual(['TOPIC', 'PARTITION', 'OFFSET']);
    const lag = (await call(url, 'GET', '/v1/groups/audit/lag')).body.partitions as { partition: number; offset: number }[];
    expect(rows).toEqual(lag.map((p) => ['ledger', String(p.partition), String(p.offset)]));
    expect(lag.some((p) => p.offset === 1)).toBe(true);

    expect(json(await rill(['groups', 'delete', 'audit', '--json'], { url }))).toEqual({ group: 'audit', deleted: true });
    expect((await call(url, 'GET', '/v1/groups')).body.groups).not.toContainEqual(expect.objectContaining({ group: 'audit' }));
  });

  it('produce publishes each line with its key and headers; consume reads them back, as a tail and as a group member that commits', async () => {
    const server = await servers.start();
    const url = httpBase(server.httpPort);
    const reader = await connectStompJs(server.wsUrl);
    const seen = await subscribed(reader, '/topic/events', { from: 'earliest' });

    const fromStdin = json(await rill(['produce', 'events', '--key', 'k1', '--header', 'source:cli', '--json'], { url, stdin: 'one\n{"n":2}\n\nthree\n' }));
    expect(fromStdin).toEqual({ messages: 3, bytes: expect.any(Number), seconds: expect.any(Number), failed: 0 });
    await vi.waitFor(() => expect(seen).toHaveLength(3), WAIT);
    const bodies = seen.map((m) => JSON.parse(m.body));
    expect(bodies.map((b) => b.message)).toEqual(['one', { n: 2 }, 'three']);
    expect(fromStdin.bytes).toBe(seen.reduce((sum, m) => sum + m.binaryBody.byteLength, 0));
    for (const [index, message] of seen.entries()) {
      expect(message.headers).toMatchObject({ key: 'k1', source: 'cli', 'message-id': bodies[index].messageID });
      expect(bodies[index]).toEqual({
        messageID: expect.stringMatching(/^[0-9a-f-]{36}$/),
        key: 'k1',
        message: expect.anything(),
        timestamp: expect.any(Number),
      });
    }
    expect(new Set(bodies.map((b) => b.messageID)).size).toBe(3);

    const file = path.join(servers.tempDir(), 'lines.jsonl');
    fs.writeFileSync(file, '{"user":"ann","n":4}\n{"user":"bob","n":5}\n');
    expect(json(await rill(['produce', 'events', '--file', file, '--key-field', 'user', '--json'], { url }))).toMatchObject({ messages: 2, failed: 0 });
    await vi.waitFor(() => expect(seen).toHaveLength(5), WAIT);
    expect(seen.slice(3).map((m) => m.headers.key)).toEqual(['ann', 'bob']);
    await reader.deactivate();

    const [tailed, grouped, counted] = await Promise.all([
      rill(['consume', 'events', '--from', 'earliest', '--no-follow', '--json'], { url }),
      rill(['consume', 'events', '--group', 'readers', '--no-follow', '--json'], { url }),
      rill(['consume', 'events', '--group', 'sampler', '--from', 'earliest', '--count', '2', '--json'], { url }),
    ]);
    for (const run of [tailed, grouped]) {
      expect(run.code, run.stderr).toBe(0);
      const lines = jsonLines(run.stdout);
      expect(lines.map((l) => l.messageID).sort()).toEqual(seen.map((m) => m.headers['message-id']).sort());
      expect(lines.find((l) => l.key === 'ann')).toMatchObject({ topic: 'events', message: { user: 'ann', n: 4 } });
    }
    expect(counted.code, counted.stderr).toBe(0);
    expect(jsonLines(counted.stdout)).toHaveLength(2);
    // The group member ACKed what it printed: the group has consumed everything, and left.
    const lag = (await call(url, 'GET', '/v1/groups/readers/lag')).body.partitions as { lag: number }[];
    expect(lag.length).toBeGreaterThan(0);
    expect(lag.every((p) => p.lag === 0)).toBe(true);
    expect((await call(url, 'GET', '/v1/groups/readers')).body.members).toEqual([]);
  });

  it('bench publishes through several connections, reads everything back, and reports both rates', async () => {
    const server = await servers.start();
    const run = await rill(['bench', '--messages', '300', '--size', '64', '--producers', '3', '--topic', 'benchmark', '--json'], {
      url: httpBase(server.httpPort),
    });
    const summary = json(run);
    expect(summary).toMatchObject({
      topic: 'benchmark',
      messages: 300,
      size: 64,
      producers: 3,
      produce: { messages: 300, failed: 0 },
      consume: { messages: 300 },
    });
    for (const phase of [summary.produce, summary.consume]) {
      expect(phase.seconds).toBeGreaterThan(0);
      expect(phase.messagesPerSecond).toBeGreaterThan(0);
      expect(phase.megabytesPerSecond).toBeGreaterThan(0);
    }
    expect(await storedMessages(server, 'benchmark')).toBe(300);
    // No progress bar when stderr is not a terminal.
    expect(run.stderr).toBe('');
  });
});

describe('rill tail and rill consume --follow across a broker restart', () => {
  const tempDir = useTempDirs();
  const startChild = useChildServers();
  const running: ChildProcess[] = [];
  afterEach(async () => {
    const children = running.splice(0);
    for (const child of children) child.kill('SIGKILL');
    await Promise.all(children.map((child) => exited(child)));
  });

  it('reconnect and resume after the last message printed: every message once, in order per partition', async () => {
    const dataDir = tempDir();
    const first = await startChild(dataDir);
    const port = first.httpPort;
    const url = httpBase(port);
    expect((await call(url, 'POST', '/v1/topics', { name: 'restarts', partitions: 3 })).status).toBe(201);
    const publish = async (from: number, to: number): Promise<void> => {
      const client = await connectStompJs(`ws://127.0.0.1:${port}/stomp`);
      for (let i = from; i < to; i++) await publishWithReceipt(client, '/producer/publish/restarts', canonical(`r${i}`, `key-${i}`, i));
      await client.deactivate();
    };
    await publish(0, 6);

    const outputs = [
      startRill(['tail', 'restarts', '--from', 'earliest', '--json'], { url }),
      startRill(['consume', 'restarts', '--group', 'followers', '--from', 'earliest', '--json'], { url }),
    ].map((child) => {
      running.push(child);
      const output = { stdout: '', stderr: '' };
      child.stdout!.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
      return output;
    });
    await vi.waitFor(() => {
      for (const output of outputs) expect(jsonLines(output.stdout)).toHaveLength(6);
    }, WAIT);

    first.process.kill('SIGKILL');
    await exited(first.process);
    await startChild(dataDir, { args: ['--http-port', String(port)] });
    await publish(6, 12);

    await vi.waitFor(() => {
      for (const output of outputs) expect(jsonLines(output.stdout).length).toBeGreaterThanOrEqual(12);
    }, WAIT);
    for (const output of outputs) {
      const lines = jsonLines(output.stdout);
      expect(lines.map((l) => l.messageID).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `r${i}`).sort());
      for (let partition = 0; partition < 3; partition++) {
        const offsets = lines.filter((l) => l.partition === partition).map((l) => l.offset);
        expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
      }
      expect(output.stderr).toContain('reconnecting');
    }
  });
});

// What the benchmark scripts share (see bench.mjs): starting and stopping the Rill server and the
// bare server, running producer processes, a raw STOMP-over-TCP peer, and small measuring helpers.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeFrame, FrameParser } from '../dist/protocol/stomp/index.js';

export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const log = (text) => process.stdout.write(`[bench] ${text}\n`);
export const fmt = (n) => Math.round(n).toLocaleString('en-US');
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const percent = (part, whole) => `${((part / whole) * 100).toFixed(0)} %`;

/** Calls `send(n)` for n = 0 .. total - 1 at `rate` per second (checked every millisecond); resolves once all are sent. */
export function sendAtRate(rate, total, send) {
  let sent = 0;
  const begin = performance.now();
  return new Promise((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - begin) / 1000) * rate) + rate / 1000);
      while (sent < due) send(sent++);
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
}

export function spawnNode(args, options = {}) {
  return spawn(process.execPath, args, { cwd: root, stdio: ['pipe', 'pipe', 'inherit'], ...options });
}

export function lines(child, onLine) {
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      onLine(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  });
}

/** A fresh data directory, and beside it (not inside, so that du of the directory is only the log) a config file when `config` is given. */
export function scratch(config, base = os.tmpdir()) {
  const dataDir = fs.mkdtempSync(path.join(base, 'rill-bench-'));
  const configFile = config === undefined ? undefined : `${dataDir}.json`;
  if (configFile !== undefined) fs.writeFileSync(configFile, JSON.stringify(config));
  return {
    dataDir,
    configFile,
    remove() {
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (configFile !== undefined) fs.rmSync(configFile, { force: true });
    },
  };
}

/** Starts the built server (`bin/rill.js start` of `build`, this checkout by default) on free ports; resolves once it logs `ready` (it listens on both ports then). */
export async function startRill(dataDir, configFile, { build = root, onSpawn } = {}) {
  const config = configFile === undefined ? [] : ['--config', configFile];
  const child = spawnNode(['bin/rill.js', 'start', ...config, '--data-dir', dataDir, '--host', '127.0.0.1', '--http-port', '0', '--stomp-port', '0'], {
    cwd: build,
  });
  onSpawn?.(child);
  const ready = await new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`rill exited with ${code ?? signal}`)));
    lines(child, (line) => {
      try {
        const entry = JSON.parse(line);
        if (entry.msg === 'ready') resolve(entry);
        else if (entry.level >= 40) process.stderr.write(line + '\n');
      } catch {}
    });
  });
  return {
    child,
    url: `ws://127.0.0.1:${ready.httpPort}/stomp`,
    wssUrl: ready.httpsPort === undefined ? undefined : `wss://127.0.0.1:${ready.httpsPort}/stomp`,
    http: `http://127.0.0.1:${ready.httpPort}`,
    httpPort: ready.httpPort,
    stompPort: ready.stompPort,
  };
}

/** The bare server (scripts/bare-stomp-server.mjs); `relay`: forward each SEND to the destination's subscribers. */
export async function startBare({ relay = false } = {}) {
  const child = spawnNode(['scripts/bare-stomp-server.mjs', '0', ...(relay ? ['--relay'] : [])]);
  const { port } = await new Promise((resolve) => lines(child, (line) => resolve(JSON.parse(line))));
  return { child, url: `ws://127.0.0.1:${port}/stomp` };
}

export async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

export function rssMiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
}

/** Open file descriptors of a process (entries of /proc/<pid>/fd: files, sockets, pipes, Node's own). */
export function openFiles(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

/** Samples `measure()` every `everyMs` until the returned function is called, which gives the largest value seen. */
export function sampleMax(measure, everyMs = 100) {
  let max = measure();
  const timer = setInterval(() => (max = Math.max(max, measure())), everyMs);
  return () => {
    clearInterval(timer);
    return Math.max(max, measure());
  };
}

/**
 * A directory on a memory file system (tmpfs), where fsync costs nothing: Rill run there shows what
 * its durable latency owes to the disk and what to the rest of the path. Null where there is none
 * with room for a run (a container's /dev/shm is often 64 MiB: journals alone take more).
 */
export function memoryDirectory() {
  try {
    const mounts = fs.readFileSync('/proc/mounts', 'utf8');
    if (!mounts.split('\n').some((line) => line.split(' ')[1] === '/dev/shm' && line.split(' ')[2] === 'tmpfs')) return null;
    const { bavail, bsize } = fs.statfsSync('/dev/shm');
    return bavail * bsize >= 1024 * 1024 * 1024 ? '/dev/shm' : null;
  } catch {
    return null;
  }
}

/** Lets the disk settle between sections: what the previous one left dirty is written back before the next measures. */
export async function settle() {
  spawnSync('sync');
  await sleep(1000);
}

/**
 * Runs `producers` processes of scripts/bench-producer.mjs, each publishing `perProducer` messages of
 * `size` bytes with a receipt every `receiptEvery` and at most `window` receipts outstanding.
 * `rate` is over the wall time from "go" to the exit of the last producer (what the publishing
 * table has always used); `spanRate` is over the longest time a producer itself measured from "go"
 * to its last receipt, which leaves out process exit (it matters for short runs).
 * `started` (optional) is called once every producer is connected and has been told to go.
 */
let produceRuns = 0;

export async function produce(url, topic, producers, perProducer, size, options = {}) {
  const { receiptEvery = 100, window = 50, keyless = false, text = 'x', started: onStarted, env } = options;
  const run = ++produceRuns;
  const children = [];
  const results = [];
  for (let i = 0; i < producers; i++) {
    // A messageID prefix of its own per run and producer: a second run into the same topic (a fill)
    // with the same IDs would be resends, and the broker would store none of them.
    const args = [url, topic, String(perProducer), String(size), String(receiptEvery), String(window), `r${run}p${i}`, keyless ? 'keyless' : 'keyed', text];
    children.push(spawnNode(['scripts/bench-producer.mjs', ...args], env === undefined ? {} : { env: { ...process.env, ...env } }));
  }
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve, reject) => {
          child.once('exit', (code) => reject(new Error(`a producer exited with ${code} before it was connected`)));
          lines(child, (line) => (line === 'ready' ? resolve() : results.push(JSON.parse(line))));
        }),
    ),
  );
  const started = performance.now();
  const done = Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
  for (const child of children) child.stdin.write('go\n');
  onStarted?.();
  await done;
  const seconds = (performance.now() - started) / 1000;
  const messages = results.reduce((sum, r) => sum + r.messages, 0);
  const bytes = results.reduce((sum, r) => sum + r.bytes, 0);
  const span = Math.max(...results.map((r) => r.seconds));
  return { messages, seconds, rate: messages / seconds, mbps: bytes / seconds / 1e6, span, spanRate: messages / span, spanMbps: bytes / span / 1e6 };
}

const PARSER_LIMITS = { maxFrameBytes: 64 * 1024 * 1024, maxHeaders: 1000, maxHeaderBytes: 1024 * 1024 };

/** A raw STOMP peer over TCP (Rill's STOMP port); resolves once CONNECTED, after which every frame goes to `onFrame`. */
export async function stompTcp(port, onFrame) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  let connected;
  const ready = new Promise((resolve, reject) => {
    connected = resolve;
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before CONNECTED')));
  });
  const parser = new FrameParser((frame) => (frame.command === 'CONNECTED' ? connected() : onFrame(frame)), PARSER_LIMITS);
  socket.on('data', (data) => parser.push(data));
  socket.write(encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'bench' }));
  await ready;
  socket.on('error', () => {});
  return { socket, send: (command, headers, body) => socket.write(encodeFrame(command, headers, body)), close: () => socket.destroy() };
}

/**
 * Publishes one message with a receipt to every partition of `topic` (the `partition` header) and
 * resolves once each is acknowledged, i.e. every partition is open and writable. A connection
 * closed by an ERROR (a partition not ready yet) is opened again for the partitions still missing.
 * Resolves to the number of ERROR frames seen; throws after `timeoutMs`.
 */
export async function publishToEveryPartition(stompPort, topic, partitions, timeoutMs = 60_000) {
  const missing = new Set(Array.from({ length: partitions }, (_, p) => p));
  const deadline = performance.now() + timeoutMs;
  let errors = 0;
  while (missing.size > 0) {
    if (performance.now() > deadline)
      throw new Error(`${missing.size} of ${partitions} partitions of ${topic} did not acknowledge a publish within ${timeoutMs} ms`);
    let finished;
    const attempt = new Promise((resolve) => (finished = resolve));
    let peer;
    try {
      peer = await stompTcp(stompPort, (frame) => {
        if (frame.command === 'RECEIPT') {
          missing.delete(Number(frame.headers['receipt-id'].slice(2)));
          if (missing.size === 0) finished();
        } else if (frame.command === 'ERROR') errors++;
      });
    } catch {
      await sleep(10);
      continue;
    }
    peer.socket.once('close', finished);
    const timer = setTimeout(finished, Math.max(0, deadline - performance.now()));
    for (const p of missing) {
      peer.send('SEND', { destination: `/producer/publish/${topic}`, partition: String(p), receipt: `w-${p}`, 'content-type': 'text/plain' }, `probe ${p}`);
    }
    await attempt;
    clearTimeout(timer);
    peer.close();
    if (missing.size > 0) await sleep(10);
  }
  return errors;
}

/** Messages a topic holds, from GET /v1/topics/<topic> (the sum over its partitions of end less start offset). */
export async function storedMessages(http, topic) {
  const response = await fetch(`${http}/v1/topics/${topic}`);
  if (!response.ok) throw new Error(`GET /v1/topics/${topic}: ${response.status} ${await response.text()}`);
  const { partitions } = await response.json();
  return partitions.reduce((sum, p) => sum + (p.logEndOffset - p.logStartOffset), 0);
}

/** Resolves once GET /health answers 200 with status ok. */
export async function healthy(http, timeoutMs = 60_000) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`${http}/health`);
      if (response.ok && (await response.json()).status === 'ok') return;
    } catch {}
    await sleep(5);
  }
  throw new Error(`${http}/health did not answer ok within ${timeoutMs} ms`);
}

/** `du -s` of a directory in bytes: blocks allocated, and the apparent size (what the files say). */
export function diskUsage(dir) {
  const du = (extra) => Number(spawnSync('du', ['-s', '-B1', ...extra, dir], { encoding: 'utf8' }).stdout.split('\t')[0]);
  return { allocated: du([]), apparent: du(['--apparent-size']) };
}

export function directoryBytes(dir) {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? directoryBytes(full) : fs.statSync(full).size;
  }
  return total;
}

export function machine() {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

export function median(list) {
  const sorted = [...list].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * One publishing run of case `c` ({producers, count, size}) on a fresh server (of `build`, with
 * `config` when given): a warm-up, then the measured run; `scale` shortens both.
 */
/**
 * `secure`: publish over wss (the config has `tls`); `env`: for the producers (credentials, the CA
 * to trust); `alongside(rill)`: started with the measured run, returns what stops it.
 */
export async function publishOnFreshServer(c, scale, { build = root, config, secure = false, env, alongside } = {}) {
  const dir = scratch(config);
  const rill = await startRill(dir.dataDir, dir.configFile, { build });
  const url = secure ? rill.wssUrl : rill.url;
  try {
    await produce(url, 'warmup', c.producers, Math.round(20_000 * scale), c.size, { env });
    const stopAlongside = alongside?.(rill);
    try {
      return await produce(url, 'bench', c.producers, Math.round(c.count * scale), c.size, { env });
    } finally {
      await stopAlongside?.();
    }
  } finally {
    await stop(rill.child);
    dir.remove();
  }
}

// The `format` section of `npm run bench`: publishing with Kafka's RecordBatch v2 against the
// build from before it (a git ref, built into a temporary directory), in the same run, and what
// each compression codec costs and saves.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pullDrain } from './bench-consumers.mjs';
import { directoryBytes, fmt, log, median, produce, publishOnFreshServer, root, scratch, settle, startRill, stop } from './bench-lib.mjs';

/** The last commit before segments held RecordBatch v2: the "before" of the format comparison. */
export const FORMAT_BASELINE = 'f01b393';

/** Builds `ref` (its own dist/, this checkout's node_modules) into a temporary directory, once. */
function buildBaseline(ref) {
  const dir = path.join(os.tmpdir(), `rill-baseline-${ref}`);
  if (fs.existsSync(path.join(dir, 'dist', 'cli', 'entry.js'))) return dir;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const archive = spawnSync('sh', ['-c', `git -C "${root}" archive "${ref}" | tar -x -C "${dir}"`], { stdio: 'inherit' });
  if (archive.status !== 0) throw new Error(`cannot check out ${ref} for the baseline`);
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: dir,
    stdio: 'inherit',
  });
  if (tsc.status !== 0) throw new Error(`cannot build ${ref} for the baseline`);
  return dir;
}

export async function formatComparison({ quick, baseline = FORMAT_BASELINE }) {
  const scale = quick ? 0.3 : 1;
  log(`building the baseline (${baseline}, the format before RecordBatch v2) ...`);
  const before = buildBaseline(baseline);
  const cases = [
    { name: '1 producer x 100 B', producers: 1, count: 600_000, size: 100 },
    { name: '4 producers x 100 B', producers: 4, count: 200_000, size: 100 },
    { name: '1 producer x 1 KiB', producers: 1, count: 300_000, size: 1024 },
    { name: '4 producers x 1 KiB', producers: 4, count: 100_000, size: 1024 },
  ];
  const rows = [];
  // Runs of one case move by ±15 % on this machine: several per build, in alternating order (drift
  // falls on both), and the median of each.
  const rounds = quick ? 2 : 6;
  for (const c of cases) {
    const rates = { before: [], after: [] };
    for (let round = 0; round < rounds; round++) {
      for (const which of round % 2 === 0 ? ['before', 'after'] : ['after', 'before']) {
        const result = await publishOnFreshServer(c, scale, { build: which === 'before' ? before : root });
        rates[which].push(result.rate);
        log(`  ${c.name}, ${which}: ${fmt(result.rate)} msgs/s`);
      }
    }
    rows.push({ ...c, before: median(rates.before), after: median(rates.after), runs: rates });
  }
  await settle();

  const codecs = ['none', 'lz4', 'zstd', 'snappy', 'gzip'];
  const perCodec = Math.round(40_000 * scale);
  const compression = [];
  for (const codec of codecs) {
    const dir = scratch({ topics: { compression: codec } });
    const rill = await startRill(dir.dataDir, dir.configFile);
    try {
      await produce(rill.url, 'warmup', 4, Math.round(10_000 * scale), 1024, { text: 'words' });
      const published = await produce(rill.url, 'text', 4, perCodec, 1024, { text: 'words' });
      const bytes = directoryBytes(path.join(dir.dataDir, 'topics', 'text'));
      const drained = await pullDrain(rill.http, 'text', `drain-${codec}`, 1, published.messages);
      compression.push({ codec, rate: published.rate, bytes, messages: published.messages, drain: drained.rate });
      log(`  ${codec}: ${fmt(published.rate)} msgs/s, ${(bytes / published.messages).toFixed(0)} B/message on disk, pull drain ${fmt(drained.rate)} msgs/s`);
    } finally {
      await stop(rill.child);
      dir.remove();
    }
  }
  await settle();

  const none = compression[0];
  return `## Record format: before and after Kafka's RecordBatch v2

Segments hold Kafka's RecordBatch v2 (varints, big-endian header, the messageID as a record
header). The same publishing cases against the build of \`${baseline}\` (the last commit with
Rill's own fixed-width format), built from git in the same run; a receipt every 100, 50
outstanding, fsync durability, a fresh server per run, each case run ${rounds} times per build in
alternating order: the median, and every run beside it (single runs move by ±15 % here).
Target: the change costs under 5 %.

| case | before msgs/s | after msgs/s | after / before | target | | runs before | runs after |
|---|---:|---:|---:|---:|---|---|---|
${rows.map((r) => `| ${r.name} | ${fmt(r.before)} | ${fmt(r.after)} | ${((r.after / r.before) * 100).toFixed(0)} % | ≥ 95 % | ${r.after >= 0.95 * r.before ? 'met' : 'not met'} | ${r.runs.before.map(fmt).join(', ')} | ${r.runs.after.map(fmt).join(', ')} |`).join('\n')}

## Compression

\`topics.compression\` per codec: 4 producers x ${fmt(perCodec)} messages of 1 KiB whose text is
random words (512 different texts in turn, about as compressible as ordinary JSON), fsync
durability, a fresh server per codec; bytes on disk are the topic's segments and indexes by
\`du\`; then one member of a group drains the topic by pull (decompressing on the broker).
The broker worker compresses; the gateway thread, the bound when publishing, does not.

| codec | publish msgs/s | of none | bytes on disk per message | of none | pull drain msgs/s |
|---|---:|---:|---:|---:|---:|
${compression.map((c) => `| ${c.codec} | ${fmt(c.rate)} | ${((c.rate / none.rate) * 100).toFixed(0)} % | ${(c.bytes / c.messages).toFixed(0)} | ${((c.bytes / c.messages / (none.bytes / none.messages)) * 100).toFixed(0)} % | ${fmt(c.drain)} |`).join('\n')}
`;
}

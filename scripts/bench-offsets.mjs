// The `offsets` section of `npm run bench`: start-up with 1,000,000 commits in the history of
// __consumer_offsets, before and after the log cleaner compacted it, beside a start with no commits.
import fs from 'node:fs';
import path from 'node:path';
import { directoryBytes, fmt, log, scratch, settle, sleep, startRill, stop } from './bench-lib.mjs';

/** directoryBytes, retried when the cleaner removes a file under it meanwhile. */
function sizeOf(dir) {
  for (;;) {
    try {
      return directoryBytes(dir);
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
  }
}
import { PartitionLog, RecordBatchBuilder } from '../dist/storage/index.js';

const GROUPS = 100;
const PARTITIONS_PER_GROUP = 10;

/** Times a start from the spawn to its `ready` line (the committed offsets are read back before it). */
async function timedReady(dir) {
  const spawned = performance.now();
  const rill = await startRill(dir.dataDir, dir.configFile);
  return { rill, ready: performance.now() - spawned };
}

/** Appends `commits` offset commits to a stopped broker's __consumer_offsets, as its coordinator writes them (a batch per 1,000). */
function writeCommits(dataDir, commits) {
  const directory = path.join(dataDir, 'topics', '__consumer_offsets', '0');
  const { log: partition } = PartitionLog.open(directory, {
    segmentBytes: 1024 * 1024,
    segmentMs: 7 * 24 * 3600 * 1000,
    indexIntervalBytes: 4096,
    retentionMs: -1,
    retentionBytes: -1,
  });
  const now = Date.now();
  const groups = new RecordBatchBuilder(16 * 1024);
  for (let g = 0; g < GROUPS; g++) groups.append(now, `group/group-${g}`, null, null, Buffer.from(JSON.stringify({ v: 1 })));
  partition.append(groups.finish());
  for (let written = 0; written < commits; ) {
    const builder = new RecordBatchBuilder(128 * 1024);
    for (let i = 0; i < 1000 && written < commits; i++, written++) {
      const key = `offset/group-${written % GROUPS}/events/${Math.floor(written / GROUPS) % PARTITIONS_PER_GROUP}`;
      builder.append(now, key, null, null, Buffer.from(JSON.stringify({ v: 1, offset: written, committedAt: now })));
    }
    partition.append(builder.finish());
  }
  return partition.flush().then(() => partition.close());
}

export async function offsetsStartup({ quick }) {
  const commits = quick ? 200_000 : 1_000_000;
  const dir = scratch({ storage: { compaction: { intervalMs: 1000 } } });
  const offsetsDir = path.join(dir.dataDir, 'topics', '__consumer_offsets');
  log('offsets: start-up with no commits ...');
  const empty = await timedReady(dir);
  log(`  ready in ${(empty.ready / 1000).toFixed(2)} s`);
  await stop(empty.rill.child);

  log(`offsets: ${fmt(commits)} commits of ${fmt(GROUPS * PARTITIONS_PER_GROUP)} group partitions written to __consumer_offsets ...`);
  await writeCommits(dir.dataDir, commits);
  const history = sizeOf(offsetsDir);
  const before = await timedReady(dir);
  log(`  ${(history / 2 ** 20).toFixed(1)} MiB of commits; ready in ${(before.ready / 1000).toFixed(2)} s (every commit read back)`);
  const cleaningStarted = performance.now();
  // Cleaned once the size stops falling (a run is throttled: storage.compaction.bytesPerSecond) for 3 s.
  let compacted = history;
  let steady = 0;
  for (;;) {
    await sleep(500);
    const now = sizeOf(offsetsDir);
    steady = now < history / 2 && now === compacted ? steady + 1 : 0;
    compacted = now;
    if (steady >= 6 || performance.now() - cleaningStarted > 300_000) break;
  }
  const cleaningSeconds = (performance.now() - cleaningStarted) / 1000 - 3;
  log(`  compacted to ${(compacted / 2 ** 20).toFixed(2)} MiB in ${cleaningSeconds.toFixed(1)} s`);
  await stop(before.rill.child);
  const after = await timedReady(dir);
  log(`  ready in ${(after.ready / 1000).toFixed(2)} s after compaction`);
  const lag = await fetch(`${after.rill.http}/v1/groups/group-7/lag`).then((response) => response.json());
  await stop(after.rill.child);
  dir.remove();
  fs.rmSync(`${dir.dataDir}.json`, { force: true });
  await settle();
  const kept = Array.isArray(lag.partitions) ? lag.partitions.length : 0;
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  return `## Start-up with a long history of committed offsets

\`__consumer_offsets\` is compacted (cleanupPolicy \`compact\`): the log cleaner keeps each key's latest
commit, so a start reads back the live offsets, not the history. ${fmt(commits)} commits of
${fmt(GROUPS)} groups × ${PARTITIONS_PER_GROUP} partitions (${(history / 2 ** 20).toFixed(1)} MiB) are written into the log of a stopped
broker, which is then started (it reads every commit back), left to compact (${cleaningSeconds.toFixed(1)} s, to
${(compacted / 2 ** 20).toFixed(2)} MiB), and started again. Times run from spawning the server to its \`ready\` line;
the committed offsets are read back before it (group-7 came back with ${kept} partitions).

| start-up | ready | target |
|---|---:|---|
| no commits | ${s(empty.ready)} | |
| ${fmt(commits)} commits, before compaction | ${s(before.ready)} | |
| ${fmt(commits)} commits, after compaction | ${s(after.ready)} | the history adds under 1 s to a start with no commits (≤ ${s(empty.ready + 1000)}) |
`;
}

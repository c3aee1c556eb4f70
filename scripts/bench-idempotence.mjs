// The `idempotence` section of `npm run bench`: what the deduplication window costs when
// publishing (on, the default, against off, in the same run), and how long a restart takes to read
// the window back from the log.
import { fmt, lines, log, median, produce, publishOnFreshServer, scratch, settle, startRill, stop } from './bench-lib.mjs';

/** Starts Rill on `dir` and waits for the windows to be rebuilt; returns when each milestone came, from the spawn. */
async function restartTimes(dir) {
  const spawned = performance.now();
  let rebuilt = null;
  const rill = await startRill(dir.dataDir, dir.configFile, {
    onSpawn: (child) =>
      lines(child, (line) => {
        if (!line.includes('deduplication windows rebuilt')) return;
        const entry = JSON.parse(line);
        rebuilt = { atMs: performance.now() - spawned, readMs: entry.ms, messageIds: entry.messageIds };
      }),
  });
  const readyMs = performance.now() - spawned;
  const started = Date.now();
  while (rebuilt === null && Date.now() - started < 60_000) await new Promise((resolve) => setTimeout(resolve, 5));
  await stop(rill.child);
  return { readyMs, ...rebuilt };
}

export async function idempotenceCost({ quick }) {
  const scale = quick ? 0.3 : 1;
  const cases = [
    { name: '1 producer x 100 B', producers: 1, count: 400_000, size: 100 },
    { name: '4 producers x 100 B', producers: 4, count: 150_000, size: 100 },
  ];
  const rounds = quick ? 2 : 4;
  const rows = [];
  for (const c of cases) {
    const rates = { on: [], off: [] };
    for (let round = 0; round < rounds; round++) {
      for (const which of round % 2 === 0 ? ['on', 'off'] : ['off', 'on']) {
        const config = which === 'on' ? undefined : { topics: { deduplicationWindowMs: 0 } };
        const result = await publishOnFreshServer(c, scale, { config });
        rates[which].push(result.rate);
        log(`  ${c.name}, deduplication ${which}: ${fmt(result.rate)} msgs/s`);
      }
    }
    rows.push({ ...c, on: median(rates.on), off: median(rates.off), runs: rates });
  }
  await settle();

  // A topic holding a million recent messages (4 partitions), then a restart.
  const filled = Math.round(1_000_000 * scale);
  const dir = scratch({ topics: { definitions: [{ name: 'filled', partitions: 4 }] } });
  let restart;
  try {
    const rill = await startRill(dir.dataDir, dir.configFile);
    await produce(rill.url, 'filled', 4, filled / 4, 100);
    await stop(rill.child);
    await settle();
    restart = await restartTimes(dir);
    log(`  restart over ${fmt(filled)} messages: ready ${fmt(restart.readyMs)} ms, windows rebuilt ${fmt(restart.atMs)} ms (${fmt(restart.messageIds)} IDs)`);
  } finally {
    dir.remove();
  }
  await settle();

  return `## Idempotent publishing: what the deduplication window costs

Publishing with the deduplication window on (the default: every messageID looked up and
remembered) against off (\`topics.deduplicationWindowMs: 0\`), in the same run: a receipt every 100,
50 outstanding, fsync durability, a fresh server per run, ${rounds} runs per setting in alternating
order: the median, and every run beside it. Target: the window costs under 5 %.

| case | off msgs/s | on msgs/s | on / off | target | | runs off | runs on |
|---|---:|---:|---:|---:|---|---|---|
${rows.map((r) => `| ${r.name} | ${fmt(r.off)} | ${fmt(r.on)} | ${((r.on / r.off) * 100).toFixed(0)} % | ≥ 95 % | ${r.on >= 0.95 * r.off ? 'met' : 'not met'} | ${r.runs.off.map(fmt).join(', ')} | ${r.runs.on.map(fmt).join(', ')} |`).join('\n')}

A restart over a topic of 4 partitions holding ${fmt(filled)} messages of 100 B published just
before (all within the window): the broker is ready (listening, CONNECTED) at ${fmt(restart.readyMs)} ms
from the spawn; the windows are read back from the log at ${fmt(restart.atMs)} ms (${fmt(restart.readMs)} ms of
reading, ${fmt(restart.messageIds)} messageIDs). Publishes to the topic wait until then; other topics'
do not wait for it.
`;
}

// The `metrics` section of `npm run bench`: publishing while Prometheus scrapes GET /metrics every
// second, beside publishing with nobody scraping, in the same run.
import { fmt, log, median, publishOnFreshServer, settle } from './bench-lib.mjs';

/** Scrapes /metrics every second, as a Prometheus would; returns what stops it (and resolves once the last scrape is done). */
function scraper(rill, scrapes) {
  let stopped = false;
  let last = Promise.resolve();
  const timer = setInterval(() => {
    if (stopped) return;
    last = fetch(`${rill.http}/metrics`)
      .then(async (response) => {
        if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
        scrapes.push((await response.text()).length);
      })
      .catch((error) => log(`  a scrape failed: ${error.message}`));
  }, 1000);
  return async () => {
    stopped = true;
    clearInterval(timer);
    await last;
  };
}

export async function metricsCost({ quick }) {
  const scale = quick ? 0.3 : 1;
  const rounds = quick ? 2 : 5;
  // The topic has 16 partitions (and the warm-up's 4), so that a scrape has some series to read per partition.
  const config = { topics: { definitions: [{ name: 'bench', partitions: 16 }] } };
  const c = { name: '4 producers x 100 B', producers: 4, count: 400_000, size: 100 };
  const rates = { quiet: [], scraped: [] };
  const scrapes = [];
  for (let round = 0; round < rounds; round++) {
    for (const which of round % 2 === 0 ? ['quiet', 'scraped'] : ['scraped', 'quiet']) {
      const alongside = which === 'scraped' ? (rill) => scraper(rill, scrapes) : undefined;
      const result = await publishOnFreshServer(c, scale, { config, alongside });
      rates[which].push(result.rate);
      log(`  ${c.name}, ${which}: ${fmt(result.rate)} msgs/s`);
    }
  }
  await settle();
  const quiet = median(rates.quiet);
  const scraped = median(rates.scraped);
  const bytes = scrapes.length === 0 ? 0 : Math.round(scrapes.reduce((a, b) => a + b, 0) / scrapes.length);
  return `## Metrics: what a Prometheus scrape every second costs

Publishing (${c.name} into a topic of 16 partitions, a receipt every 100, 50 outstanding, fsync
durability, a fresh server per run, ${rounds} runs per setting in alternating order: the median,
and every run beside it) with nobody reading the metrics (quiet), and with \`GET /metrics\` fetched
every second during the run (scraped; ${scrapes.length} scrapes of ${fmt(bytes)} bytes on average).
Target: the scrapes cost under 2 %.

| case | msgs/s | / quiet | target | | runs |
|---|---:|---:|---:|---|---|
| quiet | ${fmt(quiet)} | 100 % | | | ${rates.quiet.map(fmt).join(', ')} |
| scraped | ${fmt(scraped)} | ${((scraped / quiet) * 100).toFixed(0)} % | ≥ 98 % | ${scraped >= 0.98 * quiet ? 'met' : 'not met'} | ${rates.scraped.map(fmt).join(', ')} |
`;
}

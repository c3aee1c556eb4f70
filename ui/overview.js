// Overview: messages in and out per second (from the broker's own counters), and what the broker serves.

import { api } from './api.js';
import { timeChart } from './chart.js';
import { every, formatBytes, formatDuration, formatNumber, formatRate, h, pageLink, stat, table } from './dom.js';
import { byLabel, parseMetrics, total } from './metrics.js';

/** The counters are read this often: a rate needs two readings, and a scrape reads every partition's offsets. */
const SAMPLE_MS = 3000;
const WINDOW_MS = 5 * 60_000;
/** Kept while another page is shown: coming back, the chart has the minutes already sampled. */
const history = [];
/** The last reading of the counters: `{ time, in, out }`, each a Map of topic to count. */
let previous = null;

/**
 * Messages per second since the previous reading, per topic. A topic missing from the previous
 * reading was created since: all of its count is new. A counter that went down belongs to a topic
 * deleted and made again, and counts from zero.
 */
function rates(now, before, seconds) {
  const perTopic = new Map();
  for (const [topic, count] of now) {
    const earlier = before.get(topic) ?? 0;
    perTopic.set(topic, (count >= earlier ? count - earlier : count) / seconds);
  }
  return perTopic;
}

const sum = (values) => [...values].reduce((a, b) => a + b, 0);

export function render(view) {
  const chart = timeChart({
    name: 'throughput',
    windowMs: WINDOW_MS,
    points: history,
    format: formatRate,
    series: [
      { label: 'in/s', color: '#2563eb' },
      { label: 'out/s', color: '#16a34a' },
    ],
  });
  const figures = h('div', { class: 'stats' });
  const busiest = h('div', {});
  const problems = h('p', { class: 'status error', id: 'overview-error' });
  view.append(
    h('h1', {}, 'Overview'),
    figures,
    h('section', { class: 'card' }, h('h2', {}, 'Throughput, messages per second'), chart.element),
    h('section', { class: 'card' }, h('h2', {}, 'Busiest topics'), busiest),
    problems,
  );

  async function refresh() {
    const [metrics, stats, topics, groups] = await Promise.allSettled([
      api('GET', '/metrics'),
      api('GET', '/v1/stats'),
      api('GET', '/v1/topics'),
      api('GET', '/v1/groups'),
    ]);
    const failures = [metrics, stats, topics, groups].filter((answer) => answer.status === 'rejected').map((answer) => answer.reason.message);
    problems.textContent = failures.length === 0 ? '' : `Not shown: ${[...new Set(failures)].join('; ')}`;

    let rateIn = null;
    let rateOut = null;
    let connections = null;
    let perTopic = [];
    if (metrics.status === 'fulfilled') {
      const samples = parseMetrics(metrics.value);
      const time = Date.now();
      const reading = { time, in: byLabel(samples, 'rill_messages_in_total', 'topic'), out: byLabel(samples, 'rill_messages_out_total', 'topic') };
      connections = total(samples, 'rill_connections');
      // After a long pause (another page, a hidden tab) the last reading is too old to give a rate worth plotting.
      if (previous !== null && time - previous.time < 3 * SAMPLE_MS) {
        const seconds = (time - previous.time) / 1000;
        const topicsIn = rates(reading.in, previous.in, seconds);
        const topicsOut = rates(reading.out, previous.out, seconds);
        rateIn = sum(topicsIn.values());
        rateOut = sum(topicsOut.values());
        chart.add(time, [rateIn, rateOut]);
        perTopic = [...reading.in.keys()].map((topic) => ({
          topic,
          in: topicsIn.get(topic) ?? 0,
          out: topicsOut.get(topic) ?? 0,
          stored: reading.in.get(topic),
        }));
      }
      previous = reading;
    }
    const value = (answer, pick) => (answer.status === 'fulfilled' ? pick(answer.value) : null);
    figures.replaceChildren(
      stat('messages in/s', formatRate(rateIn), 'rate-in'),
      stat('messages out/s', formatRate(rateOut), 'rate-out'),
      stat('connections', formatNumber(connections), 'connections'),
      stat('topics', formatNumber(value(topics, (v) => v.topics.length)), 'topics'),
      stat('groups', formatNumber(value(groups, (v) => v.groups.length)), 'groups'),
      stat('memory (RSS)', value(stats, (v) => formatBytes(v.memory.rss)) ?? '–', 'memory'),
      stat('uptime', value(stats, (v) => formatDuration(v.uptimeSeconds)) ?? '–', 'uptime'),
    );
    const top = perTopic.sort((a, b) => b.in + b.out - (a.in + a.out) || a.topic.localeCompare(b.topic)).slice(0, 10);
    busiest.replaceChildren(
      table(
        [
          ['topic', (row) => pageLink('topics', row.topic)],
          ['in/s', (row) => formatRate(row.in)],
          ['out/s', (row) => formatRate(row.out)],
          ['stored since the broker started', (row) => formatNumber(row.stored)],
        ],
        top,
        { empty: rateIn === null ? 'Measuring: a rate takes two readings of the counters.' : 'No topics yet.', id: 'busiest-topics' },
      ),
    );
  }

  return every(SAMPLE_MS, refresh);
}

// Reading Prometheus' text format (GET /metrics): the broker's counters, per topic.

const SAMPLE = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

/** Every sample of the text: `[{ name, labels, value }]`. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (match === null) continue;
    const labels = {};
    for (const [, label, value] of (match[2] ?? '').matchAll(LABEL)) labels[label] = value.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** A metric's values by one of its labels (the topic, the transport). */
export function byLabel(samples, name, label) {
  const values = new Map();
  for (const sample of samples) if (sample.name === name) values.set(sample.labels[label], (values.get(sample.labels[label]) ?? 0) + sample.value);
  return values;
}

/** The sum of a metric's values over all its labels. */
export const total = (samples, name) => samples.reduce((sum, sample) => (sample.name === name ? sum + sample.value : sum), 0);

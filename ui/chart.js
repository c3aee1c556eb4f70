// A line chart of the last minutes, in SVG: a few series sampled every few seconds need no library.

import { h } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 160;

const svg = (tag, attributes) => {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
};

/** The smallest of 1, 2, 5 × 10ⁿ at or above `value`, so the scale's top is a round number. */
function roundUp(value) {
  if (value <= 1) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * magnitude).find((top) => top >= value);
}

/**
 * A chart of `series` (`[{ label, color }]`) over the last `windowMs`; `add(time, values)` appends a
 * sample (one value per series) and redraws. `format` writes values in the legend and the scale.
 * `points` is where the samples are kept (`[{ time, values }]`): a page shown again passes the
 * array it had, and the chart goes on from there. The chart element carries `data-points`
 * (samples shown) for whoever needs to know it moved.
 */
export function timeChart({ series, windowMs, format = String, name, points = [] }) {
  const lines = series.map(({ color }) =>
    svg('polyline', { fill: 'none', stroke: color, 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke', 'stroke-linejoin': 'round' }),
  );
  const grid = [0.25, 0.5, 0.75].map((fraction) => svg('line', { x1: 0, x2: WIDTH, y1: HEIGHT * fraction, y2: HEIGHT * fraction, class: 'grid' }));
  const plot = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', class: 'plot', role: 'img' });
  plot.append(...grid, ...lines);
  const currentValues = series.map(() => h('span', { class: 'legend-value' }, '–'));
  const top = h('span', { class: 'scale-top' }, '');
  const element = h(
    'figure',
    { class: 'chart', 'data-chart': name, 'data-points': 0 },
    h(
      'figcaption',
      { class: 'legend' },
      series.map(({ label, color }, index) => h('span', { class: 'legend-item' }, h('i', { style: `background:${color}` }), `${label} `, currentValues[index])),
    ),
    h('div', { class: 'plot-area' }, top, plot),
    h('div', { class: 'axis' }, h('span', {}, `−${Math.round(windowMs / 60_000)} min`), h('span', {}, 'now')),
  );

  function draw() {
    const now = Date.now();
    while (points.length > 0 && points[0].time < now - windowMs) points.shift();
    const max = roundUp(Math.max(0, ...points.flatMap((point) => point.values)));
    top.textContent = format(max);
    lines.forEach((line, index) => {
      const coordinates = points.map(({ time, values }) => {
        const x = ((time - (now - windowMs)) / windowMs) * WIDTH;
        const y = HEIGHT - (values[index] / max) * HEIGHT;
        return `${x.toFixed(1)},${y.toFixed(1)}`;
      });
      line.setAttribute('points', coordinates.join(' '));
    });
    const latest = points.at(-1);
    currentValues.forEach((value, index) => {
      value.textContent = latest === undefined ? '–' : format(latest.values[index]);
    });
    element.dataset.points = String(points.length);
  }

  draw();
  return {
    element,
    add(time, values) {
      points.push({ time, values });
      draw();
    },
  };
}

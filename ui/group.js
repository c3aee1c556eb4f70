// One consumer group: members and their partitions, lag per partition and over time, and resetting its offsets.

import { api, encodeName } from './api.js';
import { timeChart } from './chart.js';
import { every, formatNumber, h, pageLink, showStatus, stat, table } from './dom.js';

const REFRESH_MS = 3000;
const WINDOW_MS = 5 * 60_000;
/** Each group's lag samples, kept while other pages are shown. */
const lagHistory = new Map();

const assignmentText = (assignment) => assignment.map(({ topic, partition }) => `${topic}/${partition}`).join(', ') || 'none';

/** Earliest, latest, an offset or a time; always tried as a dry run first, then applied as it was tried. */
function resetForm(group, topicsOf, onReset) {
  const status = h('p', { class: 'status', id: 'reset-status', role: 'status' });
  const result = h('div', { id: 'reset-result' });
  const target = h(
    'select',
    { name: 'to', 'aria-label': 'reset to' },
    ...['earliest', 'latest', 'offset', 'timestamp'].map((to) => h('option', { value: to }, to)),
  );
  const offset = h('input', { name: 'offset', type: 'number', min: 0, placeholder: 'offset', 'aria-label': 'offset', hidden: true });
  const time = h('input', { name: 'timestamp', type: 'datetime-local', step: 1, 'aria-label': 'time', hidden: true });
  const topic = h('select', { name: 'topic', 'aria-label': 'topic' }, h('option', { value: '' }, 'all its topics'));
  const dryRun = h('button', { type: 'submit', id: 'reset-dry-run' }, 'Dry run');
  const apply = h('button', { type: 'button', class: 'danger', id: 'reset-apply', disabled: true }, 'Apply');
  /** The request the last dry run tried: Apply sends exactly it, and any change to the form asks for a new dry run. */
  let tried = null;

  const request = () => {
    const to = target.value;
    let chosen = { to };
    if (to === 'offset') {
      if (offset.value === '') throw new Error('give the offset to reset to');
      chosen = { to, offset: Number(offset.value) };
    } else if (to === 'timestamp') {
      if (time.value === '') throw new Error('give the time to reset to');
      chosen = { to, timestamp: new Date(time.value).getTime() };
    }
    return { target: chosen, ...(topic.value === '' ? {} : { topic: topic.value }) };
  };
  const showOffsets = (offsets) =>
    result.replaceChildren(
      table(
        [
          ['topic', (row) => row.topic],
          ['partition', (row) => String(row.partition)],
          ['new offset', (row) => formatNumber(row.offset)],
        ],
        offsets,
        { empty: 'No partition to reset.', class: 'numbers' },
      ),
    );

  const form = h('form', { id: 'reset-offsets', class: 'inline' }, h('label', {}, 'to ', target), offset, time, h('label', {}, 'in ', topic), dryRun, apply);
  const changed = () => {
    offset.hidden = target.value !== 'offset';
    time.hidden = target.value !== 'timestamp';
    tried = null;
    apply.disabled = true;
  };
  form.addEventListener('input', changed);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const body = request();
      const answer = await api('POST', `/v1/groups/${encodeName(group)}/offsets/reset`, { ...body, dryRun: true });
      showOffsets(answer.offsets);
      showStatus(status, 'Dry run: nothing changed yet. These are the offsets Apply would commit.');
      tried = body;
      apply.disabled = false;
    } catch (error) {
      showStatus(status, error);
    }
  });
  apply.addEventListener('click', async () => {
    try {
      const answer = await api('POST', `/v1/groups/${encodeName(group)}/offsets/reset`, { ...tried, dryRun: false });
      showOffsets(answer.offsets);
      showStatus(status, 'Offsets reset.');
      await onReset();
    } catch (error) {
      // A group with members refuses (group-not-empty): the message says so.
      showStatus(status, error);
    }
    tried = null;
    apply.disabled = true;
  });
  return {
    element: h(
      'section',
      { class: 'card' },
      h('h2', {}, 'Reset offsets'),
      h('p', { class: 'muted' }, 'Only while the group has no members. A dry run changes nothing.'),
      form,
      status,
      result,
    ),
    /** The topics to choose from follow the group's. */
    update() {
      const names = topicsOf();
      const current = [...topic.options].slice(1).map((option) => option.value);
      if (names.join('\n') === current.join('\n')) return;
      const selected = topic.value;
      topic.replaceChildren(h('option', { value: '' }, 'all its topics'), ...names.map((name) => h('option', { value: name }, name)));
      topic.value = names.includes(selected) ? selected : '';
    },
  };
}

export function render(view, [name]) {
  if (!lagHistory.has(name)) lagHistory.set(name, []);
  const chart = timeChart({
    name: 'lag',
    windowMs: WINDOW_MS,
    points: lagHistory.get(name),
    format: formatNumber,
    series: [{ label: 'total lag', color: '#dc2626' }],
  });
  const summary = h('div', { class: 'stats' });
  const members = h('div', {});
  const partitions = h('div', {});
  const settings = h('div', {});
  const problem = h('p', { class: 'status error', id: 'group-error' });
  let topics = [];
  // Declared below; the form shows the new lag at once after a reset instead of at the next turn.
  const reset = resetForm(
    name,
    () => topics,
    () => refresh(),
  );

  const refresh = async () => {
    let group;
    try {
      group = await api('GET', `/v1/groups/${encodeName(name)}`);
      problem.textContent = '';
    } catch (error) {
      showStatus(problem, error);
      return;
    }
    const totalLag = group.partitions.reduce((sum, p) => sum + p.lag, 0);
    chart.add(Date.now(), [totalLag]);
    topics = [...new Set(group.partitions.map((p) => p.topic))].sort();
    reset.update();
    summary.replaceChildren(
      stat('total lag', formatNumber(totalLag), 'lag'),
      stat('members', formatNumber(group.members.length), 'members'),
      stat('generation', formatNumber(group.generation), 'generation'),
      stat('partitions', formatNumber(group.partitions.length), 'partitions'),
    );
    members.replaceChildren(
      table(
        [
          ['member', (m) => m.member],
          ['instance id', (m) => m.instanceId ?? '–'],
          ['topics', (m) => m.topics.join(', ')],
          ['assigned partitions', (m) => assignmentText(m.assignment)],
        ],
        group.members,
        { id: 'members-table', empty: 'No members: nobody reads for this group now.', rowProps: (m) => ({ 'data-member': m.member }) },
      ),
    );
    partitions.replaceChildren(
      table(
        [
          ['topic', (p) => pageLink('topics', p.topic)],
          ['partition', (p) => String(p.partition)],
          ['committed offset', (p) => (p.committedOffset === null ? 'none' : formatNumber(p.committedOffset))],
          ['end offset', (p) => formatNumber(p.logEndOffset)],
          ['lag', (p) => formatNumber(p.lag)],
        ],
        group.partitions.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition),
        {
          id: 'lag-table',
          class: 'numbers',
          empty: 'No partitions: the group reads no topic.',
          rowProps: (p) => ({ 'data-topic': p.topic, 'data-partition': p.partition, 'data-lag': p.lag }),
        },
      ),
    );
    settings.replaceChildren(
      h('dl', { class: 'settings' }, ...Object.entries(group.settings).flatMap(([setting, value]) => [h('dt', {}, setting), h('dd', {}, String(value))])),
    );
  };

  view.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/groups' }, 'Consumer groups'), ' / '),
    h('h1', {}, name),
    problem,
    summary,
    h('section', { class: 'card' }, h('h2', {}, 'Lag over time'), chart.element),
    h('section', { class: 'card' }, h('h2', {}, 'Lag per partition'), partitions),
    h('section', { class: 'card' }, h('h2', {}, 'Members'), members),
    reset.element,
    h('section', { class: 'card' }, h('h2', {}, 'Settings'), settings),
  );
  return every(REFRESH_MS, refresh);
}

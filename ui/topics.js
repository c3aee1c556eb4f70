// Topics: the list, and the form that creates one.

import { api } from './api.js';
import { every, formatNumber, formValues, h, pageLink, showStatus, table } from './dom.js';
import { settingValue, TOPIC_SETTINGS } from './topic-settings.js';

const REFRESH_MS = 5000;

function createForm(onCreated) {
  const status = h('p', { class: 'status', id: 'create-topic-status', role: 'status' });
  const settingFields = TOPIC_SETTINGS.map(({ name, label, choices }) =>
    h(
      'label',
      {},
      label,
      choices === undefined
        ? h('input', { name, inputmode: 'numeric', placeholder: 'broker default' })
        : h('select', { name }, h('option', { value: '' }, 'broker default'), ...choices.map((choice) => h('option', { value: choice }, choice))),
    ),
  );
  const form = h(
    'form',
    { id: 'create-topic', class: 'card' },
    h('h2', {}, 'Create a topic'),
    h(
      'div',
      { class: 'fields' },
      h('label', {}, 'name', h('input', { name: 'name', required: true, placeholder: 'orders', autocomplete: 'off' })),
      h('label', {}, 'partitions', h('input', { name: 'partitions', type: 'number', min: 1, max: 10000, placeholder: 'broker default' })),
      h('label', {}, 'priority lanes', h('input', { name: 'priorityLanes', type: 'number', min: 1, max: 10, placeholder: 'none' })),
    ),
    h('details', {}, h('summary', {}, 'Settings'), h('div', { class: 'fields' }, settingFields)),
    h('button', { type: 'submit' }, 'Create topic'),
    status,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { name, partitions, priorityLanes, ...settings } = formValues(form);
      const config = Object.fromEntries(Object.entries(settings).map(([setting, text]) => [setting, settingValue(setting, text)]));
      const created = await api('POST', '/v1/topics', {
        name,
        ...(partitions === undefined ? {} : { partitions: Number(partitions) }),
        ...(priorityLanes === undefined ? {} : { priorityLanes: Number(priorityLanes) }),
        ...(Object.keys(config).length === 0 ? {} : { config }),
      });
      form.reset();
      showStatus(status, ['Created ', pageLink('topics', created.name), ` with ${created.partitions} partitions.`]);
      await onCreated();
    } catch (error) {
      showStatus(status, error);
    }
  });
  return form;
}

export function render(view) {
  const list = h('div', {});
  const filter = h('input', { type: 'search', placeholder: 'filter by name', id: 'topic-filter', 'aria-label': 'filter topics by name' });
  let topics = [];
  const draw = () => {
    const shown = topics.filter((topic) => topic.name.includes(filter.value.trim()));
    list.replaceChildren(
      table(
        [
          ['topic', (topic) => pageLink('topics', topic.name)],
          ['partitions', (topic) => formatNumber(topic.partitions)],
        ],
        shown,
        { id: 'topics-table', empty: topics.length === 0 ? 'No topics yet.' : 'No topic matches.', rowProps: (topic) => ({ 'data-topic': topic.name }) },
      ),
    );
  };
  filter.addEventListener('input', draw);
  const error = h('p', { class: 'status error' });
  const refresh = async () => {
    try {
      topics = (await api('GET', '/v1/topics')).topics.sort((a, b) => a.name.localeCompare(b.name));
      error.textContent = '';
      draw();
    } catch (failure) {
      showStatus(error, failure);
    }
  };
  view.append(
    h('h1', {}, 'Topics'),
    createForm(refresh),
    h('section', { class: 'card' }, h('div', { class: 'card-head' }, h('h2', {}, 'All topics'), filter), list, error),
  );
  return every(REFRESH_MS, refresh);
}

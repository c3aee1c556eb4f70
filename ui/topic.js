// One topic: its partitions, its settings (and the form that alters one), deleting it, its live tail and a test publisher.

import { api, encodeName } from './api.js';
import { confirmAction, every, formatBytes, formatNumber, h, showStatus, stat, table } from './dom.js';
import { release } from './stomp.js';
import { publishSection, tailSection } from './tail.js';
import { settingValue, TOPIC_SETTINGS } from './topic-settings.js';

const REFRESH_MS = 5000;

function alterForm(topic, onAltered) {
  const status = h('p', { class: 'status', id: 'alter-status', role: 'status' });
  const setting = h('select', { name: 'setting', 'aria-label': 'setting' }, ...TOPIC_SETTINGS.map(({ name }) => h('option', { value: name }, name)));
  const value = h('input', { name: 'value', placeholder: 'new value', autocomplete: 'off', 'aria-label': 'new value' });
  const change = async (newValue) => {
    try {
      await api('PATCH', `/v1/topics/${encodeName(topic)}/config`, { [setting.value]: newValue });
      showStatus(status, newValue === null ? `${setting.value} is the broker's default again.` : `${setting.value} is now ${newValue}.`);
      value.value = '';
      await onAltered();
    } catch (error) {
      showStatus(status, error);
    }
  };
  const form = h(
    'form',
    { id: 'alter-topic', class: 'inline' },
    setting,
    value,
    h('button', { type: 'submit' }, 'Set'),
    h('button', { type: 'button', class: 'secondary', onclick: () => change(null) }, 'Back to default'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    try {
      change(settingValue(setting.value, value.value.trim()));
    } catch (error) {
      showStatus(status, error);
    }
  });
  return h('div', {}, form, status);
}

export function render(view, [name]) {
  const summary = h('div', { class: 'stats' });
  const partitions = h('div', {});
  const settings = h('div', {});
  const problem = h('p', { class: 'status error', id: 'topic-error' });
  const tail = tailSection(name);
  const publisher = publishSection(name);
  const leaveStomp = () => {
    tail.stop();
    publisher.stop();
    return release();
  };
  const deleteStatus = h('p', { class: 'status', role: 'status' });
  const deleteButton = h('button', { type: 'button', class: 'danger', id: 'delete-topic' }, 'Delete topic');

  const refresh = async () => {
    let topic;
    try {
      topic = await api('GET', `/v1/topics/${encodeName(name)}`);
      problem.textContent = '';
    } catch (error) {
      showStatus(problem, error);
      return;
    }
    const messages = topic.partitions.reduce((sum, p) => sum + p.logEndOffset - p.logStartOffset, 0);
    summary.replaceChildren(
      stat('partitions', formatNumber(topic.partitions.length), 'partitions'),
      stat('messages held', formatNumber(messages), 'messages'),
      stat('on disk', formatBytes(topic.partitions.reduce((sum, p) => sum + p.sizeBytes, 0)), 'size'),
      stat('priority lanes', topic.priorityLanes > 1 ? String(topic.priorityLanes) : 'none', 'lanes'),
    );
    partitions.replaceChildren(
      table(
        [
          ['partition', (p) => String(p.partition)],
          ['start offset', (p) => formatNumber(p.logStartOffset)],
          ['end offset', (p) => formatNumber(p.logEndOffset)],
          ['messages', (p) => formatNumber(p.logEndOffset - p.logStartOffset)],
          ['size', (p) => formatBytes(p.sizeBytes)],
          ['segments', (p) => formatNumber(p.segments)],
          ['worker', (p) => String(p.worker)],
        ],
        topic.partitions,
        { id: 'partitions-table', class: 'numbers', rowProps: (p) => ({ 'data-partition': p.partition }) },
      ),
    );
    settings.replaceChildren(
      table(
        [
          ['setting', ([setting]) => setting],
          ['in force', ([, value]) => String(value)],
          [
            'set on this topic',
            ([setting]) =>
              setting in topic.overrides ? h('span', { class: 'badge' }, String(topic.overrides[setting])) : h('span', { class: 'muted' }, 'broker default'),
          ],
        ],
        Object.entries(topic.config),
        { id: 'config-table', rowProps: ([setting]) => ({ 'data-setting': setting }) },
      ),
    );
  };

  deleteButton.addEventListener('click', async () => {
    const confirmed = await confirmAction(
      `Delete topic "${name}" and all its messages? Its consumers get an error, and its groups forget their offsets in it.`,
      'Delete topic',
    );
    if (!confirmed) return;
    // The tail first: reconnecting after the broker's "topic deleted" ERROR, it would subscribe again and so create the topic anew.
    await leaveStomp();
    try {
      await api('DELETE', `/v1/topics/${encodeName(name)}`);
      location.hash = '#/topics';
    } catch (error) {
      showStatus(deleteStatus, error);
    }
  });

  view.append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/topics' }, 'Topics'), ' / '),
    h('div', { class: 'title' }, h('h1', {}, name), deleteButton),
    deleteStatus,
    problem,
    summary,
    h('section', { class: 'card' }, h('h2', {}, 'Partitions'), partitions),
    h('section', { class: 'card' }, h('h2', {}, 'Settings'), settings, alterForm(name, refresh)),
    h('div', { class: 'columns' }, publisher.element, tail.element),
  );
  const stopRefreshing = every(REFRESH_MS, refresh);
  return () => {
    stopRefreshing();
    leaveStomp();
  };
}

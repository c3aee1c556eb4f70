// Building the page from data without innerHTML: names, keys and bodies come from clients, so they are only ever text.

/**
 * An element: `h('a', { href: '#/', class: 'x', onclick: fn }, 'text', child)`.
 * Props starting with "on" are listeners; others are attributes (false and null leave them out).
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (name === 'value') element.value = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/**
 * A table: `columns` are `[heading, (row) => cell]`, a cell being text or an element.
 * `rowProps(row)` gives each row's attributes (data-* for tests and links).
 */
export function table(columns, rows, { empty = 'None.', rowProps = () => ({}), ...props } = {}) {
  if (rows.length === 0) return h('p', { class: 'empty', ...props }, empty);
  return h(
    'table',
    props,
    h('thead', {}, h('tr', {}, ...columns.map(([heading]) => h('th', {}, heading)))),
    h('tbody', {}, ...rows.map((row) => h('tr', rowProps(row), ...columns.map(([, cell]) => h('td', {}, cell(row) ?? ''))))),
  );
}

/** A labelled figure, as the overview and summaries show them. */
export function stat(label, value, name) {
  return h('div', { class: 'stat' }, h('span', { class: 'stat-value', 'data-stat': name }, value), h('span', { class: 'stat-label' }, label));
}

const numbers = new Intl.NumberFormat('en');
export const formatNumber = (value) => (value === null || value === undefined ? '–' : numbers.format(value));

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatRate(perSecond) {
  if (perSecond === null || perSecond === undefined) return '–';
  return perSecond >= 100 ? numbers.format(Math.round(perSecond)) : perSecond.toFixed(perSecond >= 10 ? 1 : 2);
}

export function formatDuration(seconds) {
  const units = [
    ['d', 86_400],
    ['h', 3_600],
    ['min', 60],
  ];
  for (const [unit, size] of units) if (seconds >= size) return `${Math.floor(seconds / size)} ${unit}`;
  return `${Math.round(seconds)} s`;
}

export const formatTime = (epochMs) =>
  epochMs === undefined || epochMs === null || Number.isNaN(Number(epochMs)) ? '–' : new Date(Number(epochMs)).toLocaleString();

/** A link to a page of the dashboard; names are encoded, as they may hold any character a topic or group may. */
export const pageLink = (kind, name) => h('a', { href: `#/${kind}/${encodeURIComponent(name)}` }, name);

/** Shows the outcome of an action beside its form: text or elements on success, or the Error (an ApiError carries the broker's message). */
export function showStatus(element, outcome) {
  const failed = outcome instanceof Error;
  element.replaceChildren(...(failed ? [outcome.message] : [outcome].flat()));
  element.classList.toggle('error', failed);
  element.classList.toggle('ok', !failed);
}

/** The values of a form's named fields, trimmed; empty ones left out. */
export function formValues(form) {
  const values = {};
  for (const [name, value] of new FormData(form)) {
    const text = String(value).trim();
    if (text !== '') values[name] = text;
  }
  return values;
}

/**
 * Calls `work` now and again `intervalMs` after each call finishes (never overlapping a slow answer),
 * skipping turns while the tab is hidden. Returns the function that stops it.
 */
export function every(intervalMs, work) {
  let timer;
  let stopped = false;
  const turn = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await work();
      } catch (error) {
        console.error(error);
      }
    }
    if (!stopped) timer = setTimeout(turn, intervalMs);
  };
  turn();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Asks before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(message, actionLabel) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-message').textContent = message;
  document.getElementById('confirm-ok').textContent = actionLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

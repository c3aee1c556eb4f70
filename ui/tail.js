// A topic's live tail and test publisher, through rill/client over the broker's own STOMP over WebSocket.

import { formatTime, h, showStatus } from './dom.js';
import { onStatus, publish, tail } from './stomp.js';

/** The newest messages kept on the page; older ones are dropped as new ones come. */
const SHOWN_MESSAGES = 100;
/** A body larger than this is cut when shown (the page stays responsive with 1 MiB messages). */
const SHOWN_BODY_CHARS = 64 * 1024;
/** After this long without the broker's acknowledgment the page says so (rill/client goes on trying, and the outcome is shown when it comes). */
const ACK_TIMEOUT_MS = 15_000;

/** JSON indented when the body is JSON; the text as it is otherwise. */
function prettyBody(body) {
  if (body.length > SHOWN_BODY_CHARS) return `${body.slice(0, SHOWN_BODY_CHARS)}\n… (${body.length - SHOWN_BODY_CHARS} more characters)`;
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

function messageCard(message) {
  // rill/client gives the producer's headers apart from Rill's own (partition, offset, key, timestamp: the card's header).
  const extra = [['message-id', message.messageID], ...Object.entries(message.headers)];
  return h(
    'article',
    { class: 'message', 'data-partition': message.partition, 'data-offset': message.offset },
    h(
      'header',
      {},
      h('span', { class: 'place' }, `partition ${message.partition} · offset ${message.offset}`),
      h('span', { class: 'key' }, message.key === null ? 'no key' : `key ${message.key}`),
      h('time', {}, formatTime(message.timestamp)),
    ),
    h(
      'details',
      { class: 'headers' },
      h('summary', {}, `headers (${extra.length})`),
      h('dl', {}, ...extra.flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value)])),
    ),
    h('pre', { class: 'body' }, prettyBody(message.body)),
  );
}

/** The live tail: start from the latest or earliest offset, stop; newest message first. Returns the section and its stop function. */
export function tailSection(topic) {
  const messages = h('div', { id: 'tail-messages', class: 'messages' });
  const count = h('span', { id: 'tail-count', class: 'muted' }, '');
  const from = h(
    'select',
    { name: 'from', id: 'tail-from', 'aria-label': 'start from' },
    h('option', { value: 'latest' }, 'new messages'),
    h('option', { value: 'earliest' }, 'the earliest message'),
  );
  const toggle = h('button', { type: 'button', id: 'tail-toggle' }, 'Start tail');
  // A dropped connection is taken up again by itself; meanwhile the user sees why nothing comes.
  const connection = h('span', { class: 'muted', id: 'stomp-status' });
  const stopWatchingConnection = onStatus((status) => {
    connection.textContent = status === 'connected' ? '' : `(${status === 'connecting' ? 'connecting…' : 'not connected'})`;
  });
  let stop = null;
  let received = 0;
  /**
   * The last offset shown of each partition. rill/client resumes each partition after the last
   * message it handed on when it reconnects; a new client (after signing in again) starts the tail
   * over, and a partition's messages come in offset order, so one at or below it was shown already.
   */
  const lastShown = new Map();

  const onMessage = (message) => {
    const last = lastShown.get(message.partition);
    if (last !== undefined && message.offset <= last) return;
    lastShown.set(message.partition, message.offset);
    received++;
    messages.prepend(messageCard(message));
    while (messages.childElementCount > SHOWN_MESSAGES) messages.lastElementChild.remove();
    count.textContent = `${received} received${received > SHOWN_MESSAGES ? `, the newest ${SHOWN_MESSAGES} shown` : ''}`;
  };

  const end = () => {
    stop?.();
    stop = null;
    toggle.textContent = 'Start tail';
    from.disabled = false;
  };

  toggle.addEventListener('click', async () => {
    if (stop !== null) return end();
    toggle.disabled = true;
    from.disabled = true;
    lastShown.clear();
    received = 0;
    messages.replaceChildren();
    count.textContent = 'waiting for messages…';
    try {
      stop = await tail(topic, { from: from.value, onMessage });
      toggle.textContent = 'Stop tail';
    } catch (error) {
      count.textContent = error.message;
      from.disabled = false;
    } finally {
      toggle.disabled = false;
    }
  });

  const element = h(
    'section',
    { class: 'card', id: 'tail' },
    h('div', { class: 'card-head' }, h('h2', {}, 'Live tail'), h('div', { class: 'inline' }, h('label', {}, 'from ', from), toggle, count, connection)),
    messages,
  );
  return {
    element,
    stop: () => {
      end();
      stopWatchingConnection();
    },
  };
}

/** `name: value` lines, as a message's extra headers. */
function parseHeaders(text) {
  const headers = {};
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`a header is "name: value", not "${line.trim()}"`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The typed body as the message's value: JSON when it parses as JSON, the text itself (a JSON string) otherwise. */
function typedValue(body) {
  try {
    return JSON.parse(body);
  } catch {
    return body;
  }
}

/**
 * The "publish a test message" form: rill/client publishes the body as the message's value (the
 * canonical `{messageID, key, message, timestamp}` envelope), with the key and headers given, and
 * resolves with where the broker stored it.
 */
export function publishSection(topic) {
  const status = h('p', { class: 'status', id: 'publish-status', role: 'status' });
  const form = h(
    'form',
    { id: 'publish', class: 'card' },
    h('h2', {}, 'Publish a test message'),
    h(
      'div',
      { class: 'fields' },
      h('label', {}, 'key', h('input', { name: 'key', placeholder: 'none: spread over the partitions', autocomplete: 'off' })),
      h('label', {}, 'headers, one "name: value" a line', h('textarea', { name: 'headers', rows: 2, placeholder: 'priority: 5' })),
    ),
    h('label', {}, 'body: JSON, or text', h('textarea', { name: 'body', rows: 4, class: 'code', value: '{"hello": "world"}' })),
    h('button', { type: 'submit' }, 'Publish'),
    status,
  );
  /** Only the latest publish reports to the form: an earlier one acknowledged late does not overwrite it. */
  let latest = 0;
  let stopped = false;

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const key = String(fields.get('key')).trim();
    const button = form.querySelector('button');
    const number = ++latest;
    const report = (outcome) => {
      if (number === latest && !stopped) showStatus(status, outcome);
    };
    button.disabled = true;
    const late = setTimeout(() => {
      report(new Error('no acknowledgment from the broker yet: is the connection up?'));
      button.disabled = false;
    }, ACK_TIMEOUT_MS);
    try {
      const headers = parseHeaders(String(fields.get('headers')));
      const stored = await publish(topic, typedValue(String(fields.get('body'))), { key: key === '' ? null : key, headers });
      report(`Stored in partition ${stored.partition} at offset ${stored.offset}${stored.duplicate ? ' (a duplicate)' : ''}.`);
    } catch (error) {
      // The broker's refusal (a RillError with its code); a mistake of the form's (a reserved header) as it is.
      report(error.name === 'RillError' && error.code !== 'invalid-argument' ? new Error(`Not stored: ${error.message} (${error.code})`) : error);
    } finally {
      clearTimeout(late);
      if (number === latest) button.disabled = false;
    }
  });
  return {
    element: form,
    stop: () => {
      stopped = true;
    },
  };
}

// A topic's live tail and test publisher, over the broker's own STOMP over WebSocket.

import { formatTime, h, showStatus } from './dom.js';
import { onStatus, publish, subscribe } from './stomp.js';

/** The newest messages kept on the page; older ones are dropped as new ones come. */
const SHOWN_MESSAGES = 100;
/** Messages in flight to the page at once: the broker waits for the page's ACKs, so a long topic read from the earliest offset cannot flood the tab. */
const PREFETCH = 200;
/** A body larger than this is cut when shown (the page stays responsive with 1 MiB messages). */
const SHOWN_BODY_CHARS = 64 * 1024;
const ACK_TIMEOUT_MS = 15_000;

/** Headers every tail MESSAGE has and the card shows otherwise (or that mean nothing to a reader). */
const SHOWN_ELSEWHERE = new Set(['subscription', 'destination', 'ack', 'content-length', 'topic', 'partition', 'offset', 'key', 'timestamp']);

// crypto.randomUUID exists only on secure origins (https, localhost): a page reached by another host name over http has none.
const newMessageId = () => globalThis.crypto?.randomUUID?.() ?? `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

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
  const { headers } = message;
  const extra = Object.entries(headers).filter(([name]) => !SHOWN_ELSEWHERE.has(name));
  return h(
    'article',
    { class: 'message', 'data-partition': headers.partition, 'data-offset': headers.offset },
    h(
      'header',
      {},
      h('span', { class: 'place' }, `partition ${headers.partition} · offset ${headers.offset}`),
      h('span', { class: 'key' }, headers.key === undefined ? 'no key' : `key ${headers.key}`),
      h('time', {}, formatTime(headers.timestamp)),
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
   * The last offset shown of each partition: a resubscription after a reconnect starts over, and a
   * partition's messages come in offset order, so one at or below it was shown already.
   */
  const lastShown = new Map();

  const onMessage = (message) => {
    const partition = message.headers.partition;
    const offset = Number(message.headers.offset);
    const last = lastShown.get(partition);
    if (last === undefined || offset > last) {
      lastShown.set(partition, offset);
      received++;
      messages.prepend(messageCard(message));
      while (messages.childElementCount > SHOWN_MESSAGES) messages.lastElementChild.remove();
      count.textContent = `${received} received${received > SHOWN_MESSAGES ? `, the newest ${SHOWN_MESSAGES} shown` : ''}`;
    }
    message.ack();
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
      stop = await subscribe(`/topic/${topic}`, onMessage, { from: from.value, ack: 'client', 'prefetch-count': String(PREFETCH) });
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

/** The "publish a test message" form: the message is stored as typed, with the key and headers given. */
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
    h('label', {}, 'body', h('textarea', { name: 'body', rows: 4, class: 'code', value: '{"hello": "world"}' })),
    h('button', { type: 'submit' }, 'Publish'),
    status,
  );
  /** Acknowledgments awaited, by messageID: the broker says where each message went, or why it failed. */
  const awaited = new Map();
  let acknowledgments = null;
  const onAcknowledgment = (message) => {
    const answer = JSON.parse(message.body);
    awaited.get(answer.messageID)?.(answer);
    awaited.delete(answer.messageID);
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    const key = String(fields.get('key')).trim();
    const body = String(fields.get('body'));
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      // A failed publish is then reported to this page and the connection goes on (without it, STOMP's rule: an ERROR, and the connection closes).
      acknowledgments ??= subscribe(`/topic/acknowledgment/${topic}`, onAcknowledgment);
      await acknowledgments;
      const messageId = newMessageId();
      let isJson = true;
      try {
        JSON.parse(body);
      } catch {
        isJson = false;
      }
      const headers = {
        ...parseHeaders(String(fields.get('headers'))),
        // A message-id header has the body stored as it is, not read as the canonical {"messageID", "key", "message"} envelope.
        'message-id': messageId,
        'content-type': isJson ? 'application/json' : 'text/plain',
        ...(key === '' ? {} : { key }),
      };
      const answer = await new Promise((resolve, reject) => {
        awaited.set(messageId, resolve);
        setTimeout(() => reject(new Error('no acknowledgment from the broker yet: is the connection up?')), ACK_TIMEOUT_MS);
        publish(`/topic/${topic}`, body, headers).catch(reject);
      });
      if (answer.status === 'ACK')
        showStatus(status, `Stored in partition ${answer.partition} at offset ${answer.offset}${answer.duplicate ? ' (a duplicate)' : ''}.`);
      else showStatus(status, new Error(`Not stored: ${answer.reason} (${answer.code})`));
    } catch (error) {
      showStatus(status, error);
    } finally {
      button.disabled = false;
    }
  });
  return {
    element: form,
    stop: () => {
      acknowledgments = null;
      awaited.clear();
    },
  };
}

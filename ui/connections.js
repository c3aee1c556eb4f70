// STOMP connections: who, from where, what they subscribe to and how much they moved; an operator closes one.

import { api, encodeName } from './api.js';
import { confirmAction, every, formatBytes, h, showStatus, table } from './dom.js';
import { currentSession } from './stomp.js';

const REFRESH_MS = 5000;

export function render(view) {
  const list = h('div', {});
  const status = h('p', { class: 'status', id: 'connections-status', role: 'status' });

  const close = async (connection) => {
    const confirmed = await confirmAction(
      `Close connection ${connection.session} (${connection.principal ?? 'not signed in'} from ${connection.remote})? Its client gets an ERROR saying an operator closed it.`,
      'Close connection',
    );
    if (!confirmed) return;
    try {
      await api('DELETE', `/v1/connections/${encodeName(connection.session)}`);
      showStatus(status, `Closed ${connection.session}.`);
    } catch (error) {
      showStatus(status, error);
    }
    await refresh();
  };

  const refresh = async () => {
    let connections;
    try {
      ({ connections } = await api('GET', '/v1/connections'));
    } catch (error) {
      showStatus(status, error);
      return;
    }
    list.replaceChildren(
      table(
        [
          ['session', (c) => (c.session === currentSession() ? `${c.session} (this page)` : c.session)],
          ['remote', (c) => c.remote],
          ['principal', (c) => c.principal ?? '–'],
          ['transport', (c) => c.transport],
          ['state', (c) => (c.readingPausedFor.length > 0 ? `${c.state}, paused: ${c.readingPausedFor.join(', ')}` : c.state)],
          ['since', (c) => new Date(c.connectedAt).toLocaleTimeString()],
          ['subscriptions', (c) => (c.subscriptions.length === 0 ? 'none' : c.subscriptions.join(', '))],
          ['bytes in', (c) => formatBytes(c.bytesIn)],
          ['bytes out', (c) => formatBytes(c.bytesOut)],
          ['', (c) => h('button', { type: 'button', class: 'danger small', 'data-close': c.session, onclick: () => close(c) }, 'Close')],
        ],
        connections.sort((a, b) => a.connectedAt.localeCompare(b.connectedAt)),
        { id: 'connections-table', empty: 'No STOMP connections.', rowProps: (c) => ({ 'data-session': c.session }) },
      ),
    );
  };

  view.append(h('h1', {}, 'Connections'), h('section', { class: 'card' }, h('div', { class: 'scroll' }, list), status));
  return every(REFRESH_MS, refresh);
}

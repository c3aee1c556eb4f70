// Consumer groups: the list.

import { api } from './api.js';
import { every, formatNumber, h, pageLink, showStatus, table } from './dom.js';

const REFRESH_MS = 5000;

export function render(view) {
  const list = h('div', {});
  const error = h('p', { class: 'status error' });
  const refresh = async () => {
    try {
      const { groups } = await api('GET', '/v1/groups');
      error.textContent = '';
      list.replaceChildren(
        table(
          [
            ['group', (group) => pageLink('groups', group.group)],
            ['members', (group) => formatNumber(group.members)],
            ['generation', (group) => formatNumber(group.generation)],
          ],
          groups.sort((a, b) => a.group.localeCompare(b.group)),
          { id: 'groups-table', empty: 'No consumer groups yet.', rowProps: (group) => ({ 'data-group': group.group }) },
        ),
      );
    } catch (failure) {
      showStatus(error, failure);
    }
  };
  view.append(h('h1', {}, 'Consumer groups'), h('section', { class: 'card' }, list, error));
  return every(REFRESH_MS, refresh);
}

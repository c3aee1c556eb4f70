// The dashboard's shell: hash routes (#/topics/orders) to page modules, the navigation, the sign-in state.

import { currentCredentials, onSignIn, signOut } from './api.js';
import * as connections from './connections.js';
import { h } from './dom.js';
import * as group from './group.js';
import * as groups from './groups.js';
import * as overview from './overview.js';
import * as topic from './topic.js';
import * as topics from './topics.js';

/** Path patterns to pages; a page's `render(view, names)` draws it and returns what stops its timers and subscriptions. */
const ROUTES = [
  [/^\/?$/, overview, 'overview'],
  [/^\/topics\/?$/, topics, 'topics'],
  [/^\/topics\/([^/]+)$/, topic, 'topics'],
  [/^\/groups\/?$/, groups, 'groups'],
  [/^\/groups\/([^/]+)$/, group, 'groups'],
  [/^\/connections\/?$/, connections, 'connections'],
];

const view = document.getElementById('view');

/** A name from the address bar; one typed by hand with a stray % is taken as it is. */
function decodeName(encoded) {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}
let leavePage = () => {};

function show() {
  leavePage();
  const path = location.hash.replace(/^#/, '');
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  view.replaceChildren();
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('current', link.dataset.nav === route?.[2]);
  if (route === undefined) {
    view.append(h('h1', {}, 'Not found'), h('p', {}, 'Nothing here. ', h('a', { href: '#/' }, 'Back to the overview.')));
    leavePage = () => {};
    return;
  }
  const [pattern, page] = route;
  const names = pattern.exec(path).slice(1).map(decodeName);
  document.title = names.length > 0 ? `${names[0]} · Rill` : 'Rill';
  leavePage = page.render(view, names) ?? (() => {});
}

function showSession(credentials) {
  const session = document.getElementById('session');
  session.replaceChildren(
    ...(credentials === null
      ? []
      : [`signed in as ${credentials.user} `, h('button', { type: 'button', class: 'secondary small', onclick: signOut }, 'Sign out')]),
  );
}

window.addEventListener('hashchange', show);
onSignIn(showSession);
showSession(currentCredentials());
show();

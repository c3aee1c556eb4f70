// The dashboard's one connection to the broker's STOMP endpoint, through rill/client (the package's
// typed client: the page's import map resolves 'rill/client' to /ui/vendor/rill-client/index.js).
// Opened when a page needs it (the live tail, publishing) and closed when that page is left.

import { askForCredentials, currentCredentials, onSignIn } from './api.js';

const BROKER_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/stomp`;
/** Wait between two attempts to connect again: rill/client's own after a drop, the page's while the broker cannot be reached at all. */
const RETRY_MS = 3000;
/** How often a dropped client is checked on: rill/client stops reconnecting by itself after a refusal no reconnect gets past. */
const GIVE_UP_CHECK_MS = 1000;

let library = null;
/**
 * The current client: `{ client, ready, ended }`, `ready` resolving to it once connected. Made on
 * first use; made anew when the last one stopped for good or the user signed in again.
 */
let current = null;
/** The tails the pages asked for: `{ topic, options, client, started, subscription }`, taken up again on a new client. */
const wanted = new Set();
let session = null;
const statusListeners = new Set();

/** The STOMP session id of this page's connection (the connections page marks it), or null. */
export const currentSession = () => session;

/** Called with 'connecting', 'connected' or 'closed'. */
export function onStatus(listener) {
  statusListeners.add(listener);
  return () => statusListeners.delete(listener);
}

function setStatus(status) {
  for (const listener of statusListeners) listener(status);
}

/** rill/client (and @stomp/stompjs under it), loaded only when a page first needs STOMP. */
function loadLibrary() {
  library ??= import('rill/client').catch((error) => {
    library = null;
    throw new Error(`could not load the STOMP client (/ui/vendor/rill-client/index.js): ${error.message}`);
  });
  return library;
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const left = () => new Error('the page has left its STOMP connection');

/** A client signed in with what the user gave last (rill/client sends login and passcode at every reconnect). */
function makeClient(RillClient, attempt) {
  const signedIn = currentCredentials();
  const client = new RillClient({
    url: BROKER_URL,
    ...(signedIn === null ? {} : { login: signedIn.user, passcode: signedIn.password }),
    reconnectDelayMs: RETRY_MS,
    onConnected: (info) => {
      if (current !== attempt || attempt.client !== client) return;
      session = info.session;
      setStatus('connected');
    },
    onDisconnected: (reason) => {
      if (current !== attempt || attempt.client !== client) return;
      session = null;
      setStatus('connecting');
      // The broker no longer takes the credentials (the password changed): reconnecting with them is refused. A new client asks for them.
      if (reason.code === 'unauthenticated') renew();
      else watchForGivingUp(attempt, client);
    },
    onError: (error) => console.warn('STOMP:', error.message),
  });
  return client;
}

/**
 * Connects, again and again while the broker cannot be reached (rill/client gives up on a first
 * connection that fails), after a sign-in when the broker refuses the credentials.
 */
function start() {
  const attempt = { client: null, ready: null, ended: false };
  attempt.ready = (async () => {
    const { RillClient } = await loadLibrary();
    for (;;) {
      if (attempt.ended) throw left();
      setStatus('connecting');
      const client = makeClient(RillClient, attempt);
      attempt.client = client;
      try {
        await client.connect();
        if (attempt.ended) throw left();
        return client;
      } catch (error) {
        if (attempt.ended) throw error;
        if (error.code === 'unauthenticated') await askForCredentials('The broker refused the credentials for its STOMP connection.');
        else if (error.retriable) await delay(RETRY_MS);
        else {
          setStatus('closed');
          throw error;
        }
      }
    }
  })();
  attempt.ready.catch(() => {
    if (current === attempt) current = null;
  });
  return attempt;
}

/** The connected client; waits for the one replacing it when it is replaced meanwhile. */
async function ready() {
  for (;;) {
    const attempt = (current ??= start());
    try {
      const client = await attempt.ready;
      if (current === attempt) return client;
    } catch (error) {
      if (current === attempt || current === null) throw error;
    }
  }
}

/** Replaces the client with a new one (new credentials) and takes the tails up again on it. */
function renew() {
  const old = current;
  if (old === null) return;
  old.ended = true;
  session = null;
  void old.client?.disconnect();
  const attempt = start();
  current = attempt;
  attempt.ready.then(
    (client) => {
      for (const entry of wanted)
        follow(entry, client).catch((error) => console.warn('STOMP: the tail of', entry.topic, 'did not start again:', error.message));
    },
    () => {},
  );
}

/** If rill/client stops reconnecting (refused for good), a new client takes over, after a sign-in if need be. */
function watchForGivingUp(attempt, client) {
  const timer = setInterval(() => {
    if (client.state === 'connected' || current !== attempt || attempt.client !== client) clearInterval(timer);
    else if (client.state === 'closed') {
      clearInterval(timer);
      renew();
    }
  }, GIVE_UP_CHECK_MS);
}

onSignIn(() => {
  // Reconnect with the new credentials; the tails are taken up again on the new connection.
  if (current?.client?.state === 'connected') renew();
});

/** Tails `entry` on `client`, once per client. */
function follow(entry, client) {
  if (entry.client === client) return entry.started;
  entry.client = client;
  entry.subscription = null;
  entry.started = client.tail(entry.topic, entry.options).then((subscription) => {
    if (wanted.has(entry) && entry.client === client) entry.subscription = subscription;
    else void subscription.unsubscribe();
  });
  return entry.started;
}

/**
 * Tails `topic` with rill/client (`options`: from, partition, onMessage). Resolves once the broker
 * confirms the subscription (its start offsets are then fixed, so nothing published after that is
 * missed). rill/client takes it up again after each reconnect, each partition right after the
 * last message it handed on; a new client (after a sign-in) starts it over from `from`.
 * Resolves to the function that ends it.
 */
export async function tail(topic, options) {
  const entry = { topic, options, client: null, started: null, subscription: null };
  wanted.add(entry);
  try {
    for (;;) {
      const client = await ready();
      try {
        await follow(entry, client);
      } catch (error) {
        if (current?.client === client) throw error;
      }
      if (!wanted.has(entry)) throw left();
      // Replaced while it started: renew() takes it up on the new client, which is awaited next.
      if (current?.client === client) break;
    }
  } catch (error) {
    wanted.delete(entry);
    throw error;
  }
  return () => {
    if (!wanted.delete(entry)) return;
    void entry.subscription?.unsubscribe();
  };
}

/** Publishes `value` with rill/client; resolves to where the broker stored it (its acknowledgment), or rejects with its refusal (a RillError). */
export async function publish(topic, value, options) {
  const client = await ready();
  return client.publish(topic, value, options);
}

/** Closes the connection (the page that needed it is gone). */
export async function release() {
  wanted.clear();
  const attempt = current;
  current = null;
  session = null;
  if (attempt !== null) {
    attempt.ended = true;
    await attempt.client?.disconnect();
  }
  setStatus('closed');
}

// The dashboard's one STOMP connection (the broker's own WebSocket front door), opened when a page
// needs it (the live tail, publishing) and closed when that page is left.

import { askForCredentials, currentCredentials, onSignIn } from './api.js';

let library = null;
let connecting = null;
/** The subscriptions the pages asked for; taken up again after every reconnect. */
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

/** @stomp/stompjs' browser bundle (22 KB), loaded only when a page first needs STOMP. */
function loadLibrary() {
  library ??= new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = '/ui/vendor/stomp.umd.min.js';
    script.onload = () => resolve(globalThis.StompJs);
    script.onerror = () => reject(new Error('could not load the STOMP client (/ui/vendor/stomp.umd.min.js)'));
    document.head.append(script);
  });
  return library;
}

/** The client, made and activated on first use; one however many pages ask at once. */
function connection() {
  connecting ??= loadLibrary().then(({ Client }) => {
    const stomp = new Client({
      brokerURL: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/stomp`,
      reconnectDelay: 3000,
      // Read on every (re)connect, so a sign-in in the meantime is used.
      beforeConnect: () => {
        const signedIn = currentCredentials();
        stomp.connectHeaders = signedIn === null ? {} : { login: signedIn.user, passcode: signedIn.password };
        setStatus('connecting');
      },
      onConnect: (frame) => {
        session = frame.headers.session ?? null;
        // Subscriptions first: whoever waits for 'connected' (a publish) then finds them in place on the broker.
        for (const subscription of wanted) subscription.start();
        setStatus('connected');
      },
      onWebSocketClose: () => {
        session = null;
        setStatus(stomp.active ? 'connecting' : 'closed');
      },
      onStompError: (frame) => {
        // The broker closes the connection after an ERROR; the client reconnects by itself, after a sign-in if that was the reason.
        if (frame.headers.code === 'unauthenticated') askForCredentials('The broker refused the credentials for its STOMP connection.');
        else console.warn('STOMP error', frame.headers.message);
      },
    });
    stomp.activate();
    return stomp;
  });
  return connecting;
}

onSignIn(() => {
  // Reconnect with the new credentials (an active client reconnects by itself after the close).
  connecting?.then((stomp) => stomp.connected && stomp.forceDisconnect());
});

/**
 * Subscribes to `destination` with `headers`; `onMessage` gets each MESSAGE. Resolves once the
 * broker confirms the subscription (its RECEIPT: for a tail, once its start offsets are fixed, so
 * nothing published after that is missed). After a reconnect the subscription is made again with
 * the same headers. Resolves to the function that ends it.
 */
export async function subscribe(destination, onMessage, headers = {}) {
  const stomp = await connection();
  let confirmed;
  const started = new Promise((resolve) => {
    confirmed = resolve;
  });
  const subscription = {
    current: null,
    start() {
      const receipt = `subscribed-${Date.now()}-${Math.random().toString(36).slice(2)}`;
      stomp.watchForReceipt(receipt, confirmed);
      this.current = stomp.subscribe(destination, onMessage, { ...headers, receipt });
    },
  };
  wanted.add(subscription);
  if (stomp.connected) subscription.start();
  await started;
  return () => {
    wanted.delete(subscription);
    if (stomp.connected) subscription.current?.unsubscribe();
  };
}

/** Sends a message and resolves once the broker has stored it (its RECEIPT). */
export async function publish(destination, body, headers) {
  const stomp = await connection();
  if (!stomp.connected) await new Promise((resolve) => onceConnected(resolve));
  const receipt = `publish-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  return new Promise((resolve) => {
    stomp.watchForReceipt(receipt, () => resolve());
    stomp.publish({ destination, body, headers: { ...headers, receipt } });
  });
}

function onceConnected(callback) {
  const stop = onStatus((status) => {
    if (status !== 'connected') return;
    stop();
    callback();
  });
}

/** Closes the connection (the page that needed it is gone). */
export async function release() {
  wanted.clear();
  const closing = connecting;
  connecting = null;
  session = null;
  await (await closing)?.deactivate();
  setStatus('closed');
}

// The broker's HTTP API, with the credentials the user gave when the broker asked for them.

const CREDENTIALS_KEY = 'rill.credentials';

/** `{ user, password }` once the user signed in; only for this tab (sessionStorage), never on disk. */
let credentials = JSON.parse(sessionStorage.getItem(CREDENTIALS_KEY) ?? 'null');
/** While the sign-in form is open, every request refused for lack of credentials waits for it. */
let signingIn = null;
const signInListeners = new Set();

export const currentCredentials = () => credentials;

/** Called with the new credentials after each sign-in (the STOMP connection reconnects with them). */
export function onSignIn(listener) {
  signInListeners.add(listener);
}

export function signOut() {
  credentials = null;
  sessionStorage.removeItem(CREDENTIALS_KEY);
  location.reload();
}

/** An answer other than 2xx, with the broker's error code and message. */
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function authorization() {
  if (credentials === null) return {};
  // btoa takes Latin-1 only: encode to UTF-8 first, as the broker reads Basic credentials (charset="UTF-8").
  const bytes = new TextEncoder().encode(`${credentials.user}:${credentials.password}`);
  return { authorization: `Basic ${btoa(String.fromCharCode(...bytes))}` };
}

/**
 * Sends a request and returns the parsed JSON answer (or the text, for /metrics). A 401 opens the
 * sign-in form and sends the request again with what the user typed.
 */
export async function api(method, path, body) {
  for (;;) {
    const response = await fetch(path, {
      method,
      // 'omit': the browser then never shows its own Basic prompt for the broker's 401 (the fetch standard prompts only for requests that include credentials).
      credentials: 'omit',
      headers: { ...authorization(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      await askForCredentials(credentials === null ? '' : 'Those credentials were refused.');
      continue;
    }
    const text = await response.text();
    const isJson = (response.headers.get('content-type') ?? '').startsWith('application/json');
    const answer = isJson && text.length > 0 ? JSON.parse(text) : text;
    if (!response.ok) {
      const error = isJson ? answer?.error : undefined;
      throw new ApiError(response.status, error?.code ?? 'unknown', error?.message ?? `${method} ${path} answered ${response.status}`);
    }
    return answer;
  }
}

/** Shows the sign-in form (once, however many requests wait) and resolves when the user has signed in. */
export function askForCredentials(reason) {
  if (signingIn !== null) return signingIn;
  const dialog = document.getElementById('login');
  const form = document.getElementById('login-form');
  document.getElementById('login-error').textContent = reason;
  signingIn = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const fields = new FormData(form);
      credentials = { user: String(fields.get('user')), password: String(fields.get('password')) };
      sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(credentials));
      form.reset();
      dialog.close();
      signingIn = null;
      for (const listener of signInListeners) listener(credentials);
      resolve(credentials);
    };
  });
  // Without credentials nothing on the page works: Escape does not close the form.
  dialog.oncancel = (event) => event.preventDefault();
  dialog.showModal();
  return signingIn;
}

export const encodeName = encodeURIComponent;

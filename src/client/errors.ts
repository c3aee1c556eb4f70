/**
 * The codes the broker answers with (docs/protocol.md#errors). Copied, not imported: the client
 * ships to browsers and imports nothing of the broker; a test checks that the two lists agree.
 */
export type BrokerErrorCode =
  | 'invalid-frame'
  | 'invalid-request'
  | 'invalid-json'
  | 'invalid-message'
  | 'invalid-destination'
  | 'unexpected-frame'
  | 'unsupported-version'
  | 'unknown-command'
  | 'unknown-topic'
  | 'unknown-group'
  | 'unknown-member'
  | 'unknown-message'
  | 'unknown-subscription'
  | 'unknown-transaction'
  | 'unknown-operation'
  | 'unauthenticated'
  | 'forbidden'
  | 'not-found'
  | 'method-not-allowed'
  | 'timeout'
  | 'name-taken'
  | 'stale-generation'
  | 'not-owner'
  | 'group-not-empty'
  | 'limit-reached'
  | 'rate-limited'
  | 'quota-exceeded'
  | 'too-large'
  | 'storage-error'
  | 'internal'
  | 'closed-by-operator'
  | 'unavailable'
  | 'disk-full'
  | 'too-many-connections';

/** The codes the client gives itself, for what happens on its side of the connection. */
export type ClientErrorCode =
  /** The connection dropped (or never came up) before the answer came: trying again may succeed. */
  | 'connection-lost'
  /** disconnect() was called, or the client stopped for good after a refusal no reconnect gets past. */
  | 'client-closed'
  /** The broker answered with something the client cannot read (not the JSON it documents). */
  | 'invalid-answer'
  /** The call itself is wrong: a reserved header, a messageID already in flight, no WebSocket to connect with. */
  | 'invalid-argument'
  /** A message handler threw or rejected (its `cause`); a group message it had not settled is NACKed. */
  | 'handler-failed';

export type RillErrorCode = BrokerErrorCode | ClientErrorCode;

/**
 * What every failed call of the client rejects with. `retriable` says whether doing the same again
 * may succeed (the broker's own verdict for its codes). A code a newer broker invents is passed on
 * as it is, hence the open string type beside the known codes.
 */
export class RillError extends Error {
  override readonly name = 'RillError';

  constructor(
    readonly code: RillErrorCode | (string & Record<never, never>),
    message: string,
    readonly retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A STOMP ERROR frame's verdict: its `code`, `message` and `retriable` headers. */
export function errorFromHeaders(headers: Record<string, string | undefined>, body: string): RillError {
  const message = headers.message ?? (body.length > 0 ? body : 'error from the broker');
  return new RillError(headers.code ?? 'internal', message, headers.retriable === 'true');
}

export function connectionLost(what: string): RillError {
  return new RillError('connection-lost', `the connection to the broker dropped ${what}`, true);
}

export function clientClosed(): RillError {
  return new RillError('client-closed', 'the client is disconnected', false);
}

export function invalidAnswer(what: string): RillError {
  return new RillError('invalid-answer', `the broker's answer is not what the client expects: ${what}`, false);
}

export function invalidArgument(message: string): RillError {
  return new RillError('invalid-argument', message, false);
}

export function handlerFailed(what: string, cause: unknown): RillError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new RillError('handler-failed', `the message handler of ${what} failed: ${reason}`, false, { cause });
}

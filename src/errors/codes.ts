/*
 * Every error Rill reports to a client, once: a stable code, whether sending the same thing again
 * may succeed, and the HTTP status it maps to. STOMP ERROR frames, FAILED acknowledgments, STOMP
 * request replies and HTTP answers are all derived from this table (see ./mapping.ts), so one
 * failure reads the same on every path. docs/protocol.md documents it.
 */

export interface ErrorCodeDefinition {
  /** The HTTP status of an answer with this code (STOMP request replies carry it as `status`). */
  readonly status: number;
  /** Sending the same request again may succeed. */
  readonly retriable: boolean;
  /** When it happens, for the documentation. */
  readonly meaning: string;
}

export const ERROR_CODES = {
  'invalid-frame': { status: 400, retriable: false, meaning: 'a STOMP frame breaks the framing rules or a size limit' },
  'invalid-request': { status: 400, retriable: false, meaning: 'a frame, header or request body does not match what the operation takes' },
  'invalid-json': { status: 400, retriable: false, meaning: 'a request body is not JSON' },
  'invalid-message': { status: 400, retriable: false, meaning: 'a published message cannot be stored as it is (body, topic name, partition, timestamp)' },
  'invalid-destination': { status: 400, retriable: false, meaning: 'a SEND or SUBSCRIBE to a destination that does not take it' },
  'unexpected-frame': { status: 400, retriable: false, meaning: 'a first frame other than CONNECT or STOMP, or a second CONNECT' },
  'unsupported-version': { status: 400, retriable: false, meaning: 'no STOMP version in common' },
  'unknown-command': { status: 400, retriable: false, meaning: 'a STOMP command that does not exist' },
  'unknown-topic': { status: 404, retriable: false, meaning: 'no such topic (and auto-create is off, or the name is reserved)' },
  'unknown-group': { status: 404, retriable: false, meaning: 'no such consumer group' },
  'unknown-member': { status: 404, retriable: false, meaning: 'no such consumer (a member removed after its session timed out is unknown)' },
  'unknown-message': { status: 404, retriable: false, meaning: 'an acknowledgement, ACK or NACK for a message that was not handed out' },
  'unknown-subscription': { status: 404, retriable: false, meaning: 'an UNSUBSCRIBE for a subscription id not in use' },
  'unknown-transaction': { status: 404, retriable: false, meaning: 'a SEND, COMMIT or ABORT naming a transaction that is not open' },
  'unknown-operation': { status: 404, retriable: false, meaning: 'a STOMP request to /request/<operation> for an operation that does not exist' },
  'unauthenticated': {
    status: 401,
    retriable: false,
    meaning: 'no credentials where the broker needs them, bad credentials (never said which part), or a token that is not valid or has expired',
  },
  'forbidden': { status: 403, retriable: false, meaning: "the principal's ACLs do not allow the operation on the resource (the message names both)" },
  'not-found': { status: 404, retriable: false, meaning: 'no HTTP endpoint at that path' },
  'method-not-allowed': { status: 405, retriable: false, meaning: 'an HTTP method the endpoint does not take' },
  'timeout': { status: 408, retriable: false, meaning: 'no CONNECT in time, or a client that missed its heart-beats' },
  'name-taken': {
    status: 409,
    retriable: false,
    meaning:
      'the name is in use: a topic that exists (POST /v1/topics), a consumer of another group, a consumer already bound to a live connection, a subscription id or transaction already open',
  },
  'stale-generation': {
    status: 409,
    retriable: false,
    meaning: "the request names a generation older than the group's: heartbeat to learn the new assignment",
  },
  'not-owner': { status: 409, retriable: false, meaning: 'a commit or seek for a partition the member does not own in this generation' },
  'group-not-empty': { status: 409, retriable: false, meaning: 'offsets can be reset only while the group has no members' },
  'limit-reached': { status: 409, retriable: false, meaning: 'creating or growing a topic would pass limits.maxTopics or limits.maxPartitions' },
  'rate-limited': {
    status: 429,
    retriable: true,
    meaning: 'a connection created topics faster than limits.autoCreatePerMinute, or an address failed to log in more than auth.failedLoginsPerMinute',
  },
  'quota-exceeded': {
    status: 429,
    retriable: true,
    meaning: 'a principal opened more connections or subscriptions than its quota (auth.quotas) allows: close some, or retry later',
  },
  'too-large': { status: 413, retriable: false, meaning: 'an HTTP body over 1 MiB, or a transaction over stomp.maxTransactionFrames' },
  'storage-error': { status: 500, retriable: false, meaning: 'the log could not store the message (a disk error)' },
  'internal': { status: 500, retriable: false, meaning: 'a bug in Rill: the log has the details' },
  'closed-by-operator': { status: 410, retriable: true, meaning: 'an operator closed the connection (DELETE /v1/connections/<session>): connect again' },
  'unavailable': { status: 503, retriable: true, meaning: 'a broker worker restarted, or the broker is shutting down, while the request was in flight: retry' },
  'disk-full': {
    status: 507,
    retriable: true,
    meaning: "the data directory's disk has less free space than storage.freeSpaceReserveBytes: writes resume by themselves when space returns",
  },
  'too-many-connections': { status: 503, retriable: true, meaning: 'the server is at server.maxConnections' },
} as const satisfies Record<string, ErrorCodeDefinition>;

export type ErrorCode = keyof typeof ERROR_CODES;

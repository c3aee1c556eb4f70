/**
 * Message time-to-live: a message stored with the record header `expires` (epoch milliseconds,
 * as JMS and STOMP brokers name it) is not delivered to readers once that time has passed. The
 * publish path sets it (from the SEND's `expires` or `ttl` header, or the topic's `ttlMs`); every
 * reader that hands messages on one by one checks it.
 */
export const EXPIRES_HEADER = 'expires';

/** When the message expires (epoch ms), or 0 if never: the first `expires` header. */
function expiryOf(headers: ReadonlyArray<readonly [string, string]>): number {
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    if (header[0] === EXPIRES_HEADER) {
      const at = Number(header[1]);
      return Number.isFinite(at) && at > 0 ? at : 0;
    }
  }
  return 0;
}

/** Whether a message with these headers has expired at `now`. */
export function hasExpired(headers: ReadonlyArray<readonly [string, string]>, now: number): boolean {
  if (headers.length === 0) return false;
  const at = expiryOf(headers);
  return at !== 0 && at <= now;
}

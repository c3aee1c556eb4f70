/**
 * The exit codes scripts can rely on (every admin command's --help lists them):
 * 0 success; 1 the broker refused or failed the request; 2 bad usage (a flag or argument);
 * 3 the broker cannot be reached.
 */
export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

/** The broker answered with an error: `{"error":{"code","message","retriable"}}` over HTTP, an ERROR frame over STOMP. */
export class BrokerRefusedError extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
    /** The HTTP status; null for a STOMP ERROR frame. */
    readonly status: number | null,
  ) {
    super(`${code}: ${detail}${code === 'unauthenticated' ? ' (the broker needs credentials: pass --user and set RILL_PASSWORD, or set RILL_TOKEN)' : ''}`);
  }
}

/** Nothing answers at the broker's address (or it stopped answering and did not come back). */
export class BrokerUnreachableError extends Error {
  constructor(url: string, why?: string) {
    super(`cannot reach the broker at ${url}${why === undefined ? '' : ` (${why})`}: is it running? pass --url or set RILL_URL`);
  }
}

/** The command cannot do what it was asked for; the message says why (exit code 1). */
export class CommandFailedError extends Error {}

/** The exit code for an error an action threw: unknown errors are bugs, and are thrown on. */
export function exitCodeOf(error: unknown): number | null {
  if (error instanceof BrokerUnreachableError) return EXIT.unreachable;
  if (error instanceof BrokerRefusedError || error instanceof CommandFailedError) return EXIT.refused;
  return null;
}

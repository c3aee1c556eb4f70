import { ERROR_CODES, type ErrorCode } from './codes.js';

/**
 * A failure Rill reports to a client: a code from the one table of codes, and a message for
 * people. Every layer throws this (or hands its code across the worker boundary); the front doors
 * turn it into an ERROR frame, a FAILED acknowledgment, a request reply or an HTTP answer.
 */
export class RillError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RillError';
  }

  get retriable(): boolean {
    return ERROR_CODES[this.code].retriable;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** Any thrown value as a RillError: unknown failures become `internal`, keeping their message. */
export function asRillError(error: unknown): RillError {
  if (error instanceof RillError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new RillError('internal', message, { cause: error });
}

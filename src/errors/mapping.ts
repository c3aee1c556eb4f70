import { ERROR_CODES, type ErrorCode } from './codes.js';
import type { RillError } from './rill-error.js';

/** The JSON body of every error answer: HTTP bodies, STOMP request replies. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; retriable: boolean };
}

function errorBody(error: RillError): ErrorBody {
  return { error: { code: error.code, message: error.message, retriable: error.retriable } };
}

/** What an HTTP client gets: the code's status and the error body. */
export function toHttp(error: RillError): { status: number; body: ErrorBody } {
  return { status: ERROR_CODES[error.code].status, body: errorBody(error) };
}

/**
 * The headers an ERROR frame carries besides `message` and `receipt-id`: the code, and
 * `retriable:true` when sending the same frames again may succeed.
 */
export function stompErrorHeaders(error: RillError): Record<string, string> {
  return error.retriable ? { code: error.code, retriable: 'true' } : { code: error.code };
}

import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, RillError, asRillError, stompErrorHeaders, toHttp, type ErrorCode } from '../../../src/errors/index.js';

const protocolDoc = fs.readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

describe('the error model', () => {
  it('is documented once, code by code, in docs/protocol.md with its status and retriability', () => {
    const rows = new Map<string, string>();
    for (const match of protocolDoc.matchAll(/^\| `([a-z-]+)` \| (\d{3}) \| (yes|no) \|/gm)) rows.set(match[1]!, `${match[2]} ${match[3]}`);
    const expected = new Map(Object.entries(ERROR_CODES).map(([code, d]) => [code, `${d.status} ${d.retriable ? 'yes' : 'no'}`]));
    expect(rows).toEqual(expected);
  });

  it('maps one failure the same way to HTTP and STOMP', () => {
    const unavailable = new RillError('unavailable', 'broker worker 0 stopped before answering; retry');
    expect(toHttp(unavailable)).toEqual({ status: 503, body: { error: { code: 'unavailable', message: unavailable.message, retriable: true } } });
    expect(stompErrorHeaders(unavailable)).toEqual({ code: 'unavailable', retriable: 'true' });
    const bad = new RillError('invalid-request', 'no');
    expect(toHttp(bad).status).toBe(400);
    expect(stompErrorHeaders(bad)).toEqual({ code: 'invalid-request' });
  });

  it('turns anything else thrown into internal, keeping its message and cause', () => {
    const cause = new TypeError('boom');
    const error = asRillError(cause);
    expect(error.code satisfies ErrorCode).toBe('internal');
    expect(error.message).toBe('boom');
    expect(error.cause).toBe(cause);
    expect(toHttp(error).status).toBe(500);
  });
});

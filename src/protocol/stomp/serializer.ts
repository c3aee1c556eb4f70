import { escapeHeader } from './escape.js';
import { isUnescapedCommand, type EscapeMode } from './frame.js';

export type HeaderInput = Record<string, string | number | undefined>;

/**
 * Serializes one frame. `content-length` is added for any non-empty body unless the caller set
 * it, so bodies may contain NUL. Header values are escaped for `mode` (never on CONNECT/CONNECTED).
 */
export function encodeFrame(command: string, headers: HeaderInput, body?: Buffer | string, mode: EscapeMode = '1.2'): Buffer {
  const bodyBytes = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
  const escapeMode: EscapeMode = isUnescapedCommand(command) ? '1.0' : mode;
  let head = command + '\n';
  let hasLength = false;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'content-length') hasLength = true;
    head += escapeHeader(name, escapeMode) + ':' + escapeHeader(String(value), escapeMode) + '\n';
  }
  if (!hasLength && bodyBytes !== undefined && bodyBytes.length > 0) {
    head += 'content-length:' + bodyBytes.length + '\n';
  }
  head += '\n';
  const headLength = Buffer.byteLength(head);
  const bodyLength = bodyBytes?.length ?? 0;
  const frame = Buffer.allocUnsafe(headLength + bodyLength + 1);
  frame.write(head, 0, 'utf8');
  if (bodyBytes !== undefined) bodyBytes.copy(frame, headLength);
  frame[headLength + bodyLength] = 0;
  return frame;
}

/**
 * Serializes a frame whose command and header lines the caller has already written (escaped) in
 * `head`, ending with the blank line: the fast path for MESSAGE frames whose fixed lines are
 * prepared once per subscription.
 */
export function encodeRawFrame(head: string, body: Buffer): Buffer {
  const headLength = Buffer.byteLength(head);
  const frame = Buffer.allocUnsafe(headLength + body.length + 1);
  frame.write(head, 0, 'utf8');
  body.copy(frame, headLength);
  frame[headLength + body.length] = 0;
  return frame;
}

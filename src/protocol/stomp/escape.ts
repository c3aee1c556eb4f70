import { StompProtocolError } from './errors.js';
import type { EscapeMode } from './frame.js';

const BACKSLASH = 92;

export function unescapeHeader(text: string, mode: EscapeMode): string {
  if (mode === '1.0' || text.indexOf('\\') === -1) return text;
  let out = '';
  let last = 0;
  for (let i = text.indexOf('\\'); i !== -1; i = text.indexOf('\\', last)) {
    out += text.slice(last, i);
    const next = text.charCodeAt(i + 1);
    if (next === 110 /* n */) out += '\n';
    else if (next === 99 /* c */) out += ':';
    else if (next === BACKSLASH) out += '\\';
    else if (next === 114 /* r */ && mode === '1.2') out += '\r';
    else {
      const shown = Number.isNaN(next) ? '\\ at the end' : `\\${String.fromCharCode(next)}`;
      throw new StompProtocolError(`undefined escape sequence ${shown} in header "${text}"`);
    }
    last = i + 2;
  }
  return out + text.slice(last);
}

const NEEDS_ESCAPE = /[\\\r\n:]/;

export function escapeHeader(text: string, mode: EscapeMode): string {
  if (mode === '1.0' || !NEEDS_ESCAPE.test(text)) return text;
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') out += '\\\\';
    else if (c === '\n') out += '\\n';
    else if (c === ':') out += '\\c';
    else if (c === '\r') out += mode === '1.2' ? '\\r' : '\r';
    else out += c;
  }
  return out;
}

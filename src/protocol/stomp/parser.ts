import { unescapeHeader } from './escape.js';
import { FrameTooLargeError, StompProtocolError } from './errors.js';
import { isUnescapedCommand, type EscapeMode, type Frame, type FrameHeaders } from './frame.js';

export interface ParserLimits {
  /** Largest whole frame (command, headers and body) accepted, in bytes. */
  maxFrameBytes: number;
  /** Most header lines in one frame. */
  maxHeaders: number;
  /** Longest single header line, in bytes. */
  maxHeaderBytes: number;
}

const DEFAULT_PARSER_LIMITS: ParserLimits = {
  maxFrameBytes: 1024 * 1024,
  maxHeaders: 64,
  maxHeaderBytes: 8 * 1024,
};

const LF = 10;
const CR = 13;
const NUL = 0;
const COLON = 58;

const INCOMPLETE = -1;
const UPPER_A = 65;
const UPPER_Z = 90;

/**
 * Header maps are objects whose prototype chain holds nothing, so a client header named
 * `constructor` or `__proto__` is an ordinary entry; unlike Object.create(null), instances made
 * with `new` stay in V8's fast mode, which matters for a map made per frame.
 */
const HeaderMap = function HeaderMap() {} as unknown as new () => FrameHeaders;
HeaderMap.prototype = Object.create(null);

/**
 * An incremental STOMP frame parser: feed it bytes as they arrive, in pieces of any size, and it
 * calls `onFrame` once per complete frame. It never touches a socket. Bodies are views into the
 * bytes that were pushed, so a frame that arrives in one piece is parsed without copying.
 *
 * A framing error throws StompProtocolError from `push`; the parser must not be used after that.
 */
export class FrameParser {
  /** How header escapes are read; set it to the negotiated version after CONNECT. */
  escapeMode: EscapeMode = '1.2';

  private pending: Buffer | null = null;
  private chunks: Buffer[] = [];
  private chunksLength = 0;
  /** Bytes (pending plus chunks) needed before parsing is worth trying again. */
  private needed = 0;
  /** Set while a body without content-length is waiting for its NUL. */
  private awaitingNul = false;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    private readonly limits: ParserLimits = DEFAULT_PARSER_LIMITS,
  ) {}

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return (this.pending?.length ?? 0) + this.chunksLength;
  }

  push(chunk: Buffer): void {
    let data: Buffer;
    if (this.pending === null) {
      data = chunk;
    } else {
      this.chunks.push(chunk);
      this.chunksLength += chunk.length;
      const total = this.pending.length + this.chunksLength;
      if (total < this.needed) return;
      if (this.awaitingNul && chunk.indexOf(NUL) === -1) {
        if (total > this.limits.maxFrameBytes) this.frameTooLarge(total);
        return;
      }
      data = Buffer.concat([this.pending, ...this.chunks], total);
      this.chunks = [];
      this.chunksLength = 0;
    }
    this.awaitingNul = false;
    let pos = 0;
    while (pos < data.length) {
      const next = this.parseOne(data, pos);
      if (next === INCOMPLETE) break;
      pos = next;
    }
    this.pending = pos < data.length ? data.subarray(pos) : null;
  }

  /** Parses one frame (or heart-beat EOLs) at `start`; returns where the next one begins. */
  private parseOne(data: Buffer, start: number): number {
    const length = data.length;
    let pos = start;
    // Heart-beats: EOLs between frames.
    while (pos < length) {
      const byte = data[pos];
      if (byte === LF) pos++;
      else if (byte === CR) {
        if (pos + 1 >= length) return this.incomplete(start, pos + 2);
        if (data[pos + 1] !== LF) throw new StompProtocolError('a lone CR between frames');
        pos += 2;
      } else break;
    }
    if (pos === length) return pos;
    const frameStart = pos;
    const { maxHeaderBytes, maxHeaders, maxFrameBytes } = this.limits;

    let lineEnd = data.indexOf(LF, pos);
    if (lineEnd === -1) return this.incompleteHeader(data, start, frameStart, pos);
    const commandEnd = lineEnd > pos && data[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
    if (commandEnd - pos > maxHeaderBytes) throw new StompProtocolError('command line too long');
    if (!isCommand(data, pos, commandEnd)) {
      throw new StompProtocolError(`malformed frame: "${readLine(data, pos, lineEnd).slice(0, 40)}" is not a command`);
    }
    const command = data.toString('latin1', pos, commandEnd);
    pos = lineEnd + 1;
    const mode: EscapeMode = isUnescapedCommand(command) ? '1.0' : this.escapeMode;
    const headers = new HeaderMap();
    let headerCount = 0;
    for (;;) {
      lineEnd = data.indexOf(LF, pos);
      if (lineEnd === -1) return this.incompleteHeader(data, start, frameStart, pos);
      if (lineEnd === pos || (lineEnd === pos + 1 && data[pos] === CR)) {
        pos = lineEnd + 1;
        break;
      }
      if (lineEnd - pos > maxHeaderBytes) {
        throw new StompProtocolError(`header line longer than ${maxHeaderBytes} bytes`, headers.receipt);
      }
      if (++headerCount > maxHeaders) {
        throw new StompProtocolError(`more than ${maxHeaders} headers`, headers.receipt);
      }
      const colon = data.indexOf(COLON, pos);
      if (colon === -1 || colon >= lineEnd) {
        throw new StompProtocolError(`malformed header "${readLine(data, pos, lineEnd).slice(0, 80)}": no colon`, headers.receipt);
      }
      const name = unescapeHeader(data.toString('utf8', pos, colon), mode);
      if (headers[name] === undefined) headers[name] = unescapeHeader(readLine(data, colon + 1, lineEnd), mode);
      pos = lineEnd + 1;
    }

    const bodyStart = pos;
    const declared = headers['content-length'];
    let bodyEnd: number;
    if (declared !== undefined) {
      const bodyLength = parseLength(declared);
      if (bodyLength < 0) throw new StompProtocolError(`invalid content-length "${declared}"`, headers.receipt);
      if (bodyStart - frameStart + bodyLength + 1 > maxFrameBytes) {
        throw new FrameTooLargeError(bodyStart - frameStart + bodyLength + 1, maxFrameBytes, true, headers.receipt);
      }
      bodyEnd = bodyStart + bodyLength;
      if (bodyEnd >= length) return this.incomplete(start, bodyEnd + 1);
      if (data[bodyEnd] !== NUL) {
        throw new StompProtocolError('frame body longer than its content-length (no NUL where it should end)', headers.receipt);
      }
    } else {
      bodyEnd = data.indexOf(NUL, bodyStart);
      if (bodyEnd === -1) {
        if (length - frameStart > maxFrameBytes) this.frameTooLarge(length - frameStart, headers.receipt);
        this.awaitingNul = true;
        return this.incomplete(start, length + 1);
      }
      if (bodyEnd + 1 - frameStart > maxFrameBytes) this.frameTooLarge(bodyEnd + 1 - frameStart, headers.receipt);
    }
    this.onFrame({ command, headers, body: data.subarray(bodyStart, bodyEnd) });
    return bodyEnd + 1;
  }

  private incompleteHeader(data: Buffer, start: number, frameStart: number, lineStart: number): number {
    const { maxHeaderBytes, maxHeaders } = this.limits;
    if (data.length - lineStart > maxHeaderBytes) {
      throw new StompProtocolError(`header line longer than ${maxHeaderBytes} bytes`);
    }
    if (data.length - frameStart > (maxHeaders + 1) * (maxHeaderBytes + 1) + 2) {
      throw new StompProtocolError('frame headers too large');
    }
    return this.incomplete(start, data.length + 1);
  }

  /** Records how many bytes (counted from `start`) are needed before trying again. */
  private incomplete(start: number, neededEnd: number): number {
    this.needed = neededEnd - start;
    return INCOMPLETE;
  }

  private frameTooLarge(size: number, receipt?: string): never {
    throw new FrameTooLargeError(size, this.limits.maxFrameBytes, false, receipt);
  }
}

function readLine(data: Buffer, start: number, lineEnd: number): string {
  const end = lineEnd > start && data[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
  return data.toString('utf8', start, end);
}

function isCommand(data: Buffer, start: number, end: number): boolean {
  if (end === start) return false;
  for (let i = start; i < end; i++) {
    const byte = data[i]!;
    if (byte < UPPER_A || byte > UPPER_Z) return false;
  }
  return true;
}

/** A content-length value: 1 to 10 decimal digits; -1 for anything else. */
function parseLength(text: string): number {
  if (text.length === 0 || text.length > 10) return -1;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

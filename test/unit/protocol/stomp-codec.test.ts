import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameParser, StompProtocolError, type Frame, type ParserLimits } from '../../../src/protocol/stomp/index.js';

/**
 * Parses pieces and keeps the frames exactly as the parser handed them out: bodies are not copied,
 * so the tests see the parser's own views (and would see it if the parser reused memory that an
 * earlier body still points into: every body is checked after every piece has been pushed).
 */
function parseAll(pieces: Buffer[], limits?: ParserLimits, escapeMode?: '1.0' | '1.1' | '1.2'): Frame[] {
  const frames: Frame[] = [];
  const parser = new FrameParser((f) => frames.push(f), limits);
  if (escapeMode) parser.escapeMode = escapeMode;
  for (const piece of pieces) parser.push(piece);
  return frames;
}

function parseError(bytes: Buffer | string, limits?: ParserLimits): StompProtocolError {
  try {
    parseAll([Buffer.from(bytes)], limits);
  } catch (error) {
    if (error instanceof StompProtocolError) return error;
    throw error;
  }
  throw new Error('expected a StompProtocolError');
}

function cutAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let last = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(last, p));
    last = p;
  }
  pieces.push(bytes.subarray(last));
  return pieces;
}

const headerText = fc.string({ unit: fc.constantFrom('a', 'b', 'é', ':', '\\', '\n', '\r', ' ', '0', '字'), maxLength: 12 });
const frameArb = fc.record({
  command: fc.constantFrom('SEND', 'MESSAGE', 'SUBSCRIBE', 'ACK', 'RECEIPT', 'ERROR'),
  headers: fc.dictionary(
    headerText.filter((n) => n.length > 0 && n !== 'content-length'),
    headerText,
    { maxKeys: 6 },
  ),
  body: fc.uint8Array({ maxLength: 300 }),
  heartbeats: fc.constantFrom('', '\n', '\r\n', '\n\n\r\n'),
});

describe('STOMP frame codec', () => {
  it('parses a simple frame and keeps its body as a view into the pushed chunk', () => {
    const chunk = Buffer.from('SEND\ndestination:/queue/a\n\nhello\0SEND\ncontent-length:5\n\nw\0rld\0');
    const [first, second] = parseAll([chunk]) as [Frame, Frame];
    expect(first.command).toBe('SEND');
    expect(first.headers.destination).toBe('/queue/a');
    expect(first.body.toString()).toBe('hello');
    expect(second.body.toString('latin1')).toBe('w\0rld');
    // Views, not copies: the same memory as the chunk, at the body's place in it.
    for (const [frame, text] of [
      [first, 'hello'],
      [second, 'w\0rld'],
    ] as Array<[Frame, string]>) {
      expect(frame.body.buffer).toBe(chunk.buffer);
      expect(frame.body.byteOffset).toBe(chunk.byteOffset + chunk.indexOf(text));
      expect(frame.body.byteLength).toBe(text.length);
    }
    chunk[chunk.indexOf('hello')] = 'j'.charCodeAt(0);
    expect(first.body.toString()).toBe('jello');
  });

  it('round-trips any sequence of frames cut at arbitrary points', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (frames, cuts) => {
        const wire = Buffer.concat(frames.map((f) => Buffer.concat([Buffer.from(f.heartbeats), encodeFrame(f.command, f.headers, Buffer.from(f.body))])));
        const parsed = parseAll(cutAt(wire, cuts));
        expect(parsed).toHaveLength(frames.length);
        parsed.forEach((p, i) => {
          const sent = frames[i]!;
          const expected: Record<string, string> = { ...sent.headers };
          if (sent.body.length > 0) expected['content-length'] = String(sent.body.length);
          expect(p.command).toBe(sent.command);
          expect({ ...p.headers }).toEqual(expected);
          expect(Buffer.compare(p.body, Buffer.from(sent.body))).toBe(0);
        });
      }),
      { numRuns: 300 },
    );
  });

  it('reads bodies without content-length up to the first NUL, across pieces', () => {
    const wire = Buffer.from('SEND\ndestination:/a\n\nabc\0\nSEND\ndestination:/b\n\n\0');
    for (let cut = 0; cut <= wire.length; cut++) {
      const frames = parseAll([wire.subarray(0, cut), wire.subarray(cut)]);
      expect(frames.map((f) => f.body.toString())).toEqual(['abc', '']);
    }
  });

  it('reads many frames from one piece, and a frame from one byte at a time', () => {
    const one = encodeFrame('SEND', { destination: '/x' }, 'body');
    const many = Buffer.concat([one, one, one]);
    expect(parseAll([many])).toHaveLength(3);
    expect(parseAll([...many].map((b) => Buffer.from([b])))).toHaveLength(3);
  });

  it('keeps NUL bytes inside a content-length body', () => {
    const body = Buffer.from([1, 0, 2, 0, 0, 3]);
    const [frame] = parseAll([encodeFrame('SEND', { destination: '/x' }, body)]) as [Frame];
    expect([...frame.body]).toEqual([1, 0, 2, 0, 0, 3]);
  });

  it('lets the first of repeated headers win', () => {
    const [frame] = parseAll([Buffer.from('MESSAGE\nfoo:first\nfoo:second\n\n\0')]) as [Frame];
    expect(frame.headers.foo).toBe('first');
  });

  it('accepts CRLF line endings', () => {
    const [frame] = parseAll([Buffer.from('SEND\r\ndestination:/x\r\n\r\nhi\0')]) as [Frame];
    expect(frame.headers.destination).toBe('/x');
    expect(frame.body.toString()).toBe('hi');
  });

  it('decodes 1.2 escapes, and does not decode them on CONNECT', () => {
    const [send] = parseAll([Buffer.from('SEND\na\\cb:x\\ny\\\\z\\r\n\n\0')]) as [Frame];
    expect(send.headers['a:b']).toBe('x\ny\\z\r');
    const [connect] = parseAll([Buffer.from('CONNECT\nlogin:a\\nb\n\n\0')]) as [Frame];
    expect(connect.headers.login).toBe('a\\nb');
  });

  it('escapes on the way out and leaves CONNECTED alone', () => {
    const frame = encodeFrame('MESSAGE', { 'k:1': 'a\nb\\c\r' }).toString();
    expect(frame).toContain('k\\c1:a\\nb\\\\c\\r\n');
    expect(encodeFrame('CONNECTED', { server: 'a:b' }).toString()).toContain('server:a:b\n');
  });

  it('does not decode escapes in 1.0 and refuses \\r in 1.1', () => {
    expect(parseAll([Buffer.from('SEND\na:\\n\n\n\0')], undefined, '1.0')[0]!.headers.a).toBe('\\n');
    expect(() => parseAll([Buffer.from('SEND\na:\\r\n\n\0')], undefined, '1.1')).toThrow(/undefined escape/);
  });

  describe('malformed frames', () => {
    it('refuses an undefined escape', () => {
      expect(parseError('SEND\na:\\t\n\n\0').message).toMatch(/undefined escape sequence \\t/);
      expect(parseError('SEND\na:x\\\n\n\0').message).toMatch(/undefined escape/);
    });
    it('refuses a header without a colon, and names the receipt when it was read', () => {
      const error = parseError('SEND\nreceipt:r-1\nnocolon\n\n\0');
      expect(error.message).toMatch(/no colon/);
      expect(error.receipt).toBe('r-1');
    });
    it('refuses a line that is not a command', () => {
      expect(parseError('hello world\n\n\0').message).toMatch(/not a command/);
      expect(parseError('{"json":1}\n\n\0').message).toMatch(/not a command/);
    });
    it('refuses a bad content-length', () => {
      expect(parseError('SEND\ncontent-length:abc\n\n\0').message).toMatch(/invalid content-length/);
      expect(parseError('SEND\ncontent-length:-1\n\n\0').message).toMatch(/invalid content-length/);
    });
    it('refuses a body longer than its content-length', () => {
      expect(parseError('SEND\ncontent-length:2\n\nabc\0').message).toMatch(/longer than its content-length/);
    });
    it('refuses a lone CR between frames', () => {
      expect(parseError('\rSEND\n\n\0').message).toMatch(/lone CR/);
    });
  });

  describe('limits', () => {
    const limits: ParserLimits = { maxFrameBytes: 100, maxHeaders: 3, maxHeaderBytes: 20 };
    it('refuses a declared body over the frame limit before it arrives', () => {
      const parser = new FrameParser(() => {}, limits);
      expect(() => parser.push(Buffer.from('SEND\ncontent-length:1000\n\n'))).toThrow(/exceeds the limit of 100/);
    });
    it('refuses an undelimited body over the frame limit as it grows', () => {
      const parser = new FrameParser(() => {}, limits);
      parser.push(Buffer.from('SEND\n\n'));
      expect(() => {
        for (let i = 0; i < 20; i++) parser.push(Buffer.alloc(10, 97));
      }).toThrow(/exceeds the limit/);
    });
    it('refuses too many headers and too long a header', () => {
      expect(parseError('SEND\na:1\nb:2\nc:3\nd:4\n\n\0', limits).message).toMatch(/more than 3 headers/);
      expect(parseError(`SEND\na:${'x'.repeat(30)}\n\n\0`, limits).message).toMatch(/longer than 20 bytes/);
      const parser = new FrameParser(() => {}, limits);
      expect(() => parser.push(Buffer.from(`SEND\na:${'x'.repeat(30)}`))).toThrow(/longer than 20 bytes/);
    });
  });
});

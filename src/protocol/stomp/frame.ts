/** Header names map to the first value seen for them (STOMP 1.2: repeated headers, first wins). */
export type FrameHeaders = Record<string, string>;

export interface Frame {
  command: string;
  headers: FrameHeaders;
  /** The frame body. For parsed frames this is a view into the received bytes, not a copy. */
  body: Buffer;
}

/**
 * How header names and values are escaped on the wire. STOMP 1.0 has no escaping, 1.1 defines
 * `\n \c \\`, 1.2 adds `\r`. CONNECT and CONNECTED frames are never escaped, whatever the version.
 */
export type EscapeMode = '1.0' | '1.1' | '1.2';

/** Frames whose headers are sent and read without escaping (STOMP 1.2, "Value Encoding"). */
export function isUnescapedCommand(command: string): boolean {
  return command === 'CONNECT' || command === 'CONNECTED' || command === 'STOMP';
}

export const HEARTBEAT_EOL = Buffer.from('\n');

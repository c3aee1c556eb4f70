export { FrameParser, type ParserLimits } from './parser.js';
export { encodeFrame, encodeRawFrame, type HeaderInput } from './serializer.js';
export { escapeHeader } from './escape.js';
export { FrameTooLargeError, StompProtocolError } from './errors.js';
export {
  HEARTBEAT_EOL,
  type EscapeMode,
  type Frame,
  type FrameHeaders,
} from './frame.js';

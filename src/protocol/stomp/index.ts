export { FrameParser, DEFAULT_PARSER_LIMITS, type ParserLimits } from './parser.js';
export { encodeFrame, encodeRawFrame, type HeaderInput } from './serializer.js';
export { escapeHeader, unescapeHeader } from './escape.js';
export { StompProtocolError } from './errors.js';
export {
  HEARTBEAT_EOL,
  isUnescapedCommand,
  type EscapeMode,
  type Frame,
  type FrameHeaders,
} from './frame.js';

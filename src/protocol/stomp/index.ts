export { FrameParser, DEFAULT_PARSER_LIMITS, type ParserLimits } from './parser.js';
export { encodeFrame, encodeRawFrame, type HeaderInput } from './serializer.js';
export { escapeHeader, unescapeHeader } from './escape.js';
export { StompProtocolError } from './errors.js';
export {
  CLIENT_COMMANDS,
  SERVER_COMMANDS,
  HEARTBEAT_EOL,
  isUnescapedCommand,
  type EscapeMode,
  type Frame,
  type FrameHeaders,
} from './frame.js';

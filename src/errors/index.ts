export { ERROR_CODES, type ErrorCode } from './codes.js';
export { RillError, asRillError } from './rill-error.js';
export { stompErrorHeaders, toHttp } from './mapping.js';

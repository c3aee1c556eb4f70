export { ERROR_CODES, isErrorCode, type ErrorCode, type ErrorCodeDefinition } from './codes.js';
export { RillError, asRillError } from './rill-error.js';
export { errorBody, stompErrorHeaders, toHttp, type ErrorBody } from './mapping.js';

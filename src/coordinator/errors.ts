export type CoordinatorErrorCode =
  | 'invalid-request'
  | 'unknown-group'
  | 'unknown-member'
  | 'unknown-topic'
  | 'name-taken'
  | 'stale-generation'
  | 'not-owner'
  | 'unknown-message'
  | 'group-not-empty'
  | 'unavailable';

const HTTP_STATUS: Record<CoordinatorErrorCode, number> = {
  'invalid-request': 400,
  'unknown-group': 404,
  'unknown-member': 404,
  'unknown-topic': 404,
  'name-taken': 409,
  'stale-generation': 409,
  'not-owner': 409,
  'unknown-message': 404,
  'group-not-empty': 409,
  unavailable: 503,
};

/** A request the coordinator refuses; `code` is stable and documented, `message` is for people. */
export class CoordinatorError extends Error {
  constructor(
    readonly code: CoordinatorErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CoordinatorError';
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }
}

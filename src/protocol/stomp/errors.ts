/** A violation of the STOMP framing rules: the connection that sent it cannot go on. */
export class StompProtocolError extends Error {
  constructor(
    message: string,
    /** The `receipt` header of the offending frame, when it could be read. */
    readonly receipt?: string,
  ) {
    super(message);
    this.name = 'StompProtocolError';
  }
}

/** A frame over the parser's size limit (the front door names the setting that sets it). */
export class FrameTooLargeError extends StompProtocolError {
  constructor(
    readonly size: number,
    readonly limit: number,
    exact: boolean,
    receipt?: string,
  ) {
    super(`frame of ${exact ? '' : 'at least '}${size} bytes exceeds the limit of ${limit}`, receipt);
    this.name = 'FrameTooLargeError';
  }
}

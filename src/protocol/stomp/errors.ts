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

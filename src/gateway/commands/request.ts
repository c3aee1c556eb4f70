import { operations, type MemberView, type OperationName } from '../../coordinator/index.js';
import { asRillError, RillError, toHttp } from '../../errors/index.js';
import type { Frame } from '../../protocol/stomp/index.js';
import { DEFAULT_REPLY_DESTINATION } from '../destinations.js';
import type { StompSession } from '../session.js';

/**
 * A SEND to `/request/<operation>`: the body is the operation's JSON request (the same schema as
 * the HTTP API), the answer is a MESSAGE on the session's subscription to `reply-to` (default
 * `/user/replies`) carrying the request's `correlation-id` and a `status` (200, or the HTTP status
 * of the error). A malformed request is answered, not fatal; only a missing reply subscription is.
 */
export function handleRequest(session: StompSession, frame: Frame, operation: string): void {
  const replyTo = frame.headers['reply-to'] ?? DEFAULT_REPLY_DESTINATION;
  const replies = session.replySubscriptions.get(replyTo);
  if (replies === undefined) {
    session.fail(`subscribe to ${replyTo} before sending requests: the answers are delivered there`, frame.headers.receipt);
    return;
  }
  const headers = { 'correlation-id': frame.headers['correlation-id'], operation };
  const answer = (status: number, body: unknown): void => {
    replies.send({ ...headers, status }, body);
    session.sendReceipt(frame.headers.receipt);
  };
  const fail = (error: RillError): void => {
    const { status, body } = toHttp(error);
    answer(status, body);
  };
  if (!Object.hasOwn(operations, operation)) {
    fail(new RillError('unknown-operation', `no operation "${operation}"; one of ${Object.keys(operations).join(', ')}`));
    return;
  }
  let input: unknown;
  try {
    input = frame.body.length === 0 ? {} : JSON.parse(frame.body.toString('utf8'));
  } catch (error) {
    fail(new RillError('invalid-json', `request body is not JSON: ${(error as Error).message}`));
    return;
  }
  const definition = operations[operation as OperationName];
  const parsed = definition.input.safeParse(input);
  if (!parsed.success) {
    fail(new RillError('invalid-request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')));
    return;
  }
  const coordinator = session.context.coordinator;
  Promise.resolve((definition.run as (c: typeof coordinator, r: unknown) => unknown)(coordinator, parsed.data)).then(
    (result) => {
      if (operation === 'join') bindMember(session, replyTo, result as MemberView);
      if (operation === 'leave') session.members.delete((parsed.data as { member: string }).member);
      answer(200, result);
    },
    (error: Error) => {
      const failure = asRillError(error);
      if (failure.code === 'internal') session.logger.error({ err: error, operation }, 'request failed');
      fail(failure);
    },
  );
}

/** A member registered over STOMP lives as long as the connection, and hears of its assignments at once. */
function bindMember(session: StompSession, replyTo: string, view: MemberView): void {
  if (session.members.has(view.member)) return;
  const member = session.context.coordinator.member(view.member);
  member.bound = true;
  const listener = (generation: number, assignment: unknown): void => {
    session.replySubscriptions.get(replyTo)?.send({ event: 'assignment' }, { event: 'assignment', group: member.group.name, member: member.name, generation, assignment });
  };
  member.listeners.add(listener);
  session.members.set(view.member, () => {
    member.listeners.delete(listener);
    session.context.coordinator.connectionLost(member);
  });
}

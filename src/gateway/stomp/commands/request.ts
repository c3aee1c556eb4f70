import { operations, type GroupCoordinator, type MemberView, type OperationName } from '../../../coordinator/index.js';
import { asRillError, RillError, toHttp } from '../../../errors/index.js';
import type { Frame } from '../../../protocol/stomp/index.js';
import { transact, transactInput, type TransactInput } from '../../publishing/index.js';
import type { AccessNeed } from '../../../security/index.js';
import { operationNeeds, requireAll, visibleGroups, type GroupList } from '../../access.js';
import type { CommandContext } from '../command-context.js';
import { DEFAULT_REPLY_DESTINATION } from '../destinations.js';

/** Members registered over each connection, with what forgets their close handler. */
const boundMembers = new WeakMap<CommandContext, Map<string, () => void>>();

/**
 * A SEND to `/request/<operation>`: the body is the operation's JSON request (the same schema as
 * the HTTP API), the answer is a MESSAGE on the connection's subscription to `reply-to` (default
 * `/user/replies`) carrying the request's `correlation-id` and a `status` (200, or the HTTP status
 * of the error). A malformed request is answered, not fatal; only a missing reply subscription is.
 */
export function handleRequest(context: CommandContext, frame: Frame, operation: string): void {
  const replyTo = frame.headers['reply-to'] ?? DEFAULT_REPLY_DESTINATION;
  const replies = context.subscriptions.replies(replyTo);
  if (replies === undefined) {
    context.fail(new RillError('invalid-request', `subscribe to ${replyTo} before sending requests: the answers are delivered there`), frame.headers.receipt);
    return;
  }
  const headers = { 'correlation-id': frame.headers['correlation-id'], operation };
  // The RECEIPT follows the reply, in the frame's turn among the connection's answers.
  const later = context.later(frame.headers.receipt);
  const answer = (status: number, body: unknown): void => {
    replies.send({ ...headers, status }, body);
    later.receipt();
  };
  const fail = (error: RillError): void => {
    const { status, body } = toHttp(error);
    answer(status, body);
  };
  if (!Object.hasOwn(operations, operation) && operation !== 'transact') {
    fail(new RillError('unknown-operation', `no operation "${operation}"; one of ${[...Object.keys(operations), 'transact'].join(', ')}`));
    return;
  }
  let input: unknown;
  try {
    input = frame.body.length === 0 ? {} : JSON.parse(frame.body.toString('utf8'));
  } catch (error) {
    fail(new RillError('invalid-json', `request body is not JSON: ${(error as Error).message}`));
    return;
  }
  const { coordinator, publisher, logger } = context.services;
  // Publishing and committing together is the gateway's; every other operation is the coordinator's.
  const definition =
    operation === 'transact'
      ? { input: transactInput, run: (c: GroupCoordinator, r: TransactInput) => transact(publisher, c, r, context.authorizePublish) }
      : operations[operation as OperationName];
  const parsed = definition.input.safeParse(input);
  if (!parsed.success) {
    fail(new RillError('invalid-request', parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')));
    return;
  }
  let needs: AccessNeed[] = [];
  // Run inside a promise, so that an operation that refuses at once (an unknown member, a right it lacks) is answered, not fatal.
  Promise.resolve()
    .then(() => {
      needs = operationNeeds({ coordinator, topics: context.services.topics }, operation as OperationName | 'transact', parsed.data as Record<string, unknown>);
      requireAll(context.rights, needs);
      return (definition.run as (c: GroupCoordinator, r: unknown) => unknown)(coordinator, parsed.data);
    })
    .then(
      (result) => {
        context.rights.audit(needs);
        if (operation === 'list-groups') result = visibleGroups(context.rights, result as GroupList);
        if (operation === 'join') bindMember(context, replyTo, result as MemberView);
        if (operation === 'leave') forgetMember(context, (parsed.data as { member: string }).member);
        answer(200, result);
      },
      (error: unknown) => {
        const failure = asRillError(error);
        if (failure.code === 'internal') logger.error({ err: error, operation }, 'request failed');
        fail(failure);
      },
    );
}

/** A member registered over STOMP lives as long as the connection, and hears of its assignments at once. */
function bindMember(context: CommandContext, replyTo: string, view: MemberView): void {
  // The connection closed while the join was answered: nothing would ever release the member.
  if (!context.isConnected) return;
  let members = boundMembers.get(context);
  if (members === undefined) boundMembers.set(context, (members = new Map()));
  if (members.has(view.member)) return;
  const binding = context.services.coordinator.bind(view.member, (generation, assignment) => {
    const replies = context.subscriptions.replies(replyTo);
    replies?.send({ event: 'assignment' }, { event: 'assignment', group: binding.group, member: binding.member, generation, assignment });
  });
  // After DISCONNECT the member leaves at once; a dropped connection leaves it to time out.
  const forget = context.onClose((clean) => binding.release(clean));
  members.set(view.member, () => {
    forget();
    binding.release(false);
  });
}

/** The member left (a `leave` request): the connection no longer holds it. */
function forgetMember(context: CommandContext, member: string): void {
  const members = boundMembers.get(context);
  const release = members?.get(member);
  if (release === undefined) return;
  members!.delete(member);
  release();
}

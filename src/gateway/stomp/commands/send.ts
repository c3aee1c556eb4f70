import { RillError } from '../../../errors/index.js';
import type { Frame } from '../../../protocol/stomp/index.js';
import { PublishError, type PublishRequest } from '../../publishing/index.js';
import type { CommandContext } from '../command-context.js';
import { parseDestination } from '../destinations.js';
import { handleRequest } from './request.js';
import { handleTokenRefresh } from './token-refresh.js';

/** SEND: publishes at once, holds the frame when it belongs to a transaction, or runs a request. */
export function handleSend(context: CommandContext, frame: Frame): void {
  const transaction = frame.headers.transaction;
  if (transaction !== undefined) {
    context.transactions.hold(transaction, frame);
    context.receipt(frame.headers.receipt);
    return;
  }
  const target = frame.headers.destination === undefined ? null : parseDestination(frame.headers.destination);
  if (target?.kind === 'request') {
    handleRequest(context, frame, target.operation);
    return;
  }
  if (target?.kind === 'session-token') {
    handleTokenRefresh(context, frame);
    return;
  }
  let request: PublishRequest;
  try {
    request = prepareSend(context, frame);
  } catch (error) {
    if (!(error instanceof PublishError)) throw error;
    rejectSend(context, frame, error);
    return;
  }
  context.publish(request, frame.headers.receipt ?? null);
}

/** Validates a SEND and works out its record; throws PublishError. */
export function prepareSend(context: CommandContext, frame: Frame): PublishRequest {
  const destination = frame.headers.destination;
  if (destination === undefined) throw new PublishError('invalid-request', 'SEND needs a destination header', null);
  const parsed = parseDestination(destination);
  if (parsed === null || (parsed.kind !== 'publish' && parsed.kind !== 'topic')) {
    throw new PublishError('invalid-destination', `cannot publish to "${destination}": publish to /producer/publish/<topic> or /topic/<topic>`, null);
  }
  return context.services.publisher.prepare(
    parsed.topic,
    frame.headers,
    frame.body,
    () => context.nextMessageId(),
    context.topicQuota,
    context.authorizePublish,
  );
}

/**
 * A SEND that cannot be published. With an acknowledgment subscription for its topic the
 * producer gets a FAILED acknowledgment and goes on (a receipt then only says the frame was
 * handled); without one, STOMP's rule applies: an ERROR frame, and the connection closes.
 */
function rejectSend(context: CommandContext, frame: Frame, error: PublishError): void {
  const parsed = frame.headers.destination === undefined ? null : parseDestination(frame.headers.destination);
  const topic = parsed?.kind === 'publish' || parsed?.kind === 'topic' ? parsed.topic : undefined;
  const acknowledgments = topic === undefined ? undefined : context.subscriptions.acknowledgments(topic);
  if (acknowledgments !== undefined) {
    acknowledgments.failed(error.messageId, null, error);
    context.receipt(frame.headers.receipt);
    return;
  }
  const subject = error.messageId === null ? 'message' : `message "${error.messageId}"`;
  context.fail(new RillError(error.code, `${subject} was not published: ${error.message}`), frame.headers.receipt);
}

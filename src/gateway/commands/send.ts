import type { Frame } from '../../protocol/stomp/index.js';
import { parseDestination } from '../destinations.js';
import { preparePublish, PublishError, type PublishRequest } from '../publish-request.js';
import { handleRequest } from './request.js';
import { PublishTicket, type ReceiptCountdown } from '../publish-outcome.js';
import type { StompSession } from '../session.js';

/** SEND: publishes at once, or holds the frame when it belongs to a transaction. */
export function handleSend(session: StompSession, frame: Frame): void {
  const transaction = frame.headers.transaction;
  if (transaction !== undefined) {
    const frames = session.transactions.get(transaction);
    if (frames === undefined) {
      session.fail(`transaction "${transaction}" is not open (BEGIN it first)`, frame.headers.receipt);
      return;
    }
    if (frames.length >= session.context.config.stomp.maxTransactionFrames) {
      session.fail(`transaction "${transaction}" holds more than ${session.context.config.stomp.maxTransactionFrames} frames`, frame.headers.receipt);
      return;
    }
    // The body is a view into the socket's buffer; a held frame keeps its own copy.
    frames.push({ command: frame.command, headers: frame.headers, body: Buffer.from(frame.body) });
    session.sendReceipt(frame.headers.receipt);
    return;
  }
  const target = frame.headers.destination === undefined ? null : parseDestination(frame.headers.destination);
  if (target?.kind === 'request') {
    handleRequest(session, frame, target.operation);
    return;
  }
  let request: PublishRequest;
  try {
    request = prepareSend(session, frame);
  } catch (error) {
    if (!(error instanceof PublishError)) throw error;
    rejectSend(session, frame, error);
    return;
  }
  publish(session, request, frame.headers.receipt ?? null, null);
}

/** Validates a SEND and works out its record; throws PublishError. */
export function prepareSend(session: StompSession, frame: Frame): PublishRequest {
  const destination = frame.headers.destination;
  if (destination === undefined) throw new PublishError('invalid-request', 'SEND needs a destination header', null);
  const parsed = parseDestination(destination);
  if (parsed === null || (parsed.kind !== 'publish' && parsed.kind !== 'topic')) {
    throw new PublishError('invalid-destination', `cannot publish to "${destination}": publish to /producer/publish/<topic> or /topic/<topic>`, null);
  }
  return preparePublish(session.context, parsed.topic, frame.headers, frame.body, () => session.nextMessageId());
}

export function publish(session: StompSession, request: PublishRequest, receipt: string | null, countdown: ReceiptCountdown | null): void {
  session.inflightPublishes++;
  session.broker.append(
    request.topic,
    request.partition,
    request.timestamp,
    request.key,
    request.messageId,
    request.headers,
    request.value,
    new PublishTicket(session, request.topic.name, request.partition, request.messageId, request.timestamp, receipt, countdown),
  );
}

/**
 * A SEND that cannot be published. With an acknowledgment subscription for its topic the
 * producer gets a FAILED acknowledgment and goes on (a receipt then only says the frame was
 * handled); without one, STOMP's rule applies: an ERROR frame, and the connection closes.
 */
function rejectSend(session: StompSession, frame: Frame, error: PublishError): void {
  const parsed = frame.headers.destination === undefined ? null : parseDestination(frame.headers.destination);
  const topic = parsed?.kind === 'publish' || parsed?.kind === 'topic' ? parsed.topic : undefined;
  const acknowledgments = topic === undefined ? undefined : session.acknowledgmentSubscriptions.get(topic);
  if (acknowledgments !== undefined) {
    acknowledgments.failed(error.messageId, null, error.message, false);
    session.sendReceipt(frame.headers.receipt);
    return;
  }
  const subject = error.messageId === null ? 'message' : `message "${error.messageId}"`;
  session.fail(`${subject} was not published: ${error.message}`, frame.headers.receipt);
}

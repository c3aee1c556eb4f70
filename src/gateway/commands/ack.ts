import type { Frame } from '../../protocol/stomp/index.js';
import type { StompSession } from '../session.js';
import { parseAckHeader } from '../subscriptions/subscription.js';

/** ACK and NACK name a MESSAGE by its `ack` header (`id` in 1.2, `message-id` before). */
function settle(session: StompSession, frame: Frame, accepted: boolean): void {
  const id = session.version === '1.2' ? frame.headers.id : (frame.headers['message-id'] ?? frame.headers.id);
  if (id === undefined) {
    session.fail(`${frame.command} needs an ${session.version === '1.2' ? 'id' : 'message-id'} header`, frame.headers.receipt);
    return;
  }
  const parsed = parseAckHeader(id);
  const subscription = parsed === null ? undefined : session.subscriptionsByNumber.get(parsed.subscription);
  if (parsed === null || subscription === undefined || !subscription.settle(parsed.sequence, accepted)) {
    session.fail(`${frame.command} for unknown message "${id}"`, frame.headers.receipt);
    return;
  }
  session.sendReceipt(frame.headers.receipt);
}

export function handleAck(session: StompSession, frame: Frame): void {
  settle(session, frame, true);
}

export function handleNack(session: StompSession, frame: Frame): void {
  settle(session, frame, false);
}

import { RillError } from '../../../errors/index.js';
import type { Frame } from '../../../protocol/stomp/index.js';
import type { CommandContext } from '../command-context.js';
import { parseAckHeader } from '../subscriptions/subscription.js';

/** ACK and NACK name a MESSAGE by its `ack` header (`id` in 1.2, `message-id` before). */
function settle(context: CommandContext, frame: Frame, accepted: boolean): void {
  const id = context.version === '1.2' ? frame.headers.id : (frame.headers['message-id'] ?? frame.headers.id);
  if (id === undefined) {
    context.fail(
      new RillError('invalid-request', `${frame.command} needs an ${context.version === '1.2' ? 'id' : 'message-id'} header`),
      frame.headers.receipt,
    );
    return;
  }
  const parsed = parseAckHeader(id);
  const subscription = parsed === null ? undefined : context.subscriptions.byAckNumber(parsed.subscription);
  const transaction = frame.headers.transaction;
  if (parsed !== null && subscription !== undefined && transaction !== undefined && subscription.handedOut(parsed.sequence)) {
    // Applied at COMMIT: with a group subscription, its offset commit is part of the transaction.
    context.transactions.holdSettle(transaction, { subscription, sequence: parsed.sequence, accepted });
    context.receipt(frame.headers.receipt);
    return;
  }
  if (parsed === null || subscription === undefined || transaction !== undefined || !subscription.settle(parsed.sequence, accepted)) {
    context.fail(new RillError('unknown-message', `${frame.command} for unknown message "${id}"`), frame.headers.receipt);
    return;
  }
  context.receipt(frame.headers.receipt);
}

export function handleAck(context: CommandContext, frame: Frame): void {
  settle(context, frame, true);
}

export function handleNack(context: CommandContext, frame: Frame): void {
  settle(context, frame, false);
}

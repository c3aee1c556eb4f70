import type { AppendOutcome } from '../broker/index.js';
import { PublishTicket } from './session.js';

/**
 * Tells each producer what became of its messages once storage has answered: an acknowledgment
 * on its acknowledgment subscription, the RECEIPT it asked for, or, for a failure it has no
 * other way to hear of, an ERROR frame.
 */
export function settleOutcome(outcome: AppendOutcome<unknown>): void {
  const { tickets, topic, partition, baseOffset, failure } = outcome;
  for (let i = 0; i < tickets.length; i++) {
    const ticket = tickets[i];
    // The broker's own appends (offsets, dead letters) settle themselves.
    if (!(ticket instanceof PublishTicket)) continue;
    const session = ticket.session;
    if (session.state === 'connected') {
      const acknowledgments = session.acknowledgmentSubscriptions.size === 0 ? undefined : session.acknowledgmentSubscriptions.get(topic.name);
      if (failure === null) {
        acknowledgments?.stored(ticket.messageId, partition, baseOffset + i, ticket.timestamp);
        if (ticket.countdown !== null) {
          if (--ticket.countdown.remaining === 0) session.sendReceipt(ticket.countdown.receipt);
        } else if (ticket.receipt !== null) session.sendReceipt(ticket.receipt);
      } else {
        acknowledgments?.failed(ticket.messageId, partition, failure.message, failure.retriable);
        const receipt = ticket.countdown?.receipt ?? ticket.receipt;
        const reason = `message "${ticket.messageId}" was not stored: ${failure.message}`;
        if (ticket.countdown !== null) session.fail(`transaction partly failed: ${reason}`, receipt);
        else if (acknowledgments !== undefined) session.sendReceipt(receipt);
        else session.fail(reason, receipt, undefined, failure.retriable ? { retriable: 'true' } : undefined);
      }
    }
    session.publishSettled();
  }
}

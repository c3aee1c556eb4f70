import type { AppendTicket } from '../broker/index.js';
import type { RillError } from '../errors/index.js';
import type { StompSession } from './session.js';

/** Counts down the SENDs of one COMMIT; its RECEIPT goes out when all are stored. */
export class ReceiptCountdown {
  constructor(
    public remaining: number,
    readonly receipt: string | null,
  ) {}
}

/**
 * What the gateway remembers of one published message until storage answers, and what it tells
 * the producer then: an acknowledgment on its acknowledgment subscription, the RECEIPT it asked
 * for, or, for a failure it has no other way to hear of, an ERROR frame.
 */
export class PublishTicket implements AppendTicket {
  constructor(
    readonly session: StompSession,
    readonly topic: string,
    readonly partition: number,
    readonly messageId: string,
    readonly timestamp: number,
    readonly receipt: string | null,
    readonly countdown: ReceiptCountdown | null,
  ) {}

  settle(offset: number, failure: RillError | null): void {
    const session = this.session;
    if (session.state === 'connected') {
      const acknowledgments = session.acknowledgmentSubscriptions.size === 0 ? undefined : session.acknowledgmentSubscriptions.get(this.topic);
      if (failure === null) {
        acknowledgments?.stored(this.messageId, this.partition, offset, this.timestamp);
        if (this.countdown !== null) {
          if (--this.countdown.remaining === 0) session.sendReceipt(this.countdown.receipt);
        } else if (this.receipt !== null) session.sendReceipt(this.receipt);
      } else {
        acknowledgments?.failed(this.messageId, this.partition, failure.message, failure.retriable);
        const receipt = this.countdown?.receipt ?? this.receipt;
        const reason = `message "${this.messageId}" was not stored: ${failure.message}`;
        if (this.countdown !== null) session.fail(`transaction partly failed: ${reason}`, receipt);
        else if (acknowledgments !== undefined) session.sendReceipt(receipt);
        else session.fail(reason, receipt, undefined, failure.retriable ? { retriable: 'true' } : undefined);
      }
    }
    session.publishSettled();
  }
}

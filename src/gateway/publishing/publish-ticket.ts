import type { AppendTicket } from '../../broker/index.js';
import { RillError } from '../../errors/index.js';
import type { Producer } from './producer.js';

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
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly partition: number,
    private readonly messageId: string,
    private readonly timestamp: number,
    private readonly receipt: string | null,
    private readonly countdown: ReceiptCountdown | null,
  ) {}

  settle(offset: number, failure: RillError | null): void {
    const producer = this.producer;
    if (producer.open) {
      const acknowledgments = producer.acknowledgments(this.topic);
      if (failure === null) {
        acknowledgments?.stored(this.messageId, this.partition, offset, this.timestamp);
        if (this.countdown !== null) {
          if (--this.countdown.remaining === 0) producer.receipt(this.countdown.receipt);
        } else if (this.receipt !== null) producer.receipt(this.receipt);
      } else {
        acknowledgments?.failed(this.messageId, this.partition, failure);
        const receipt = this.countdown?.receipt ?? this.receipt;
        const reason = `message "${this.messageId}" was not stored: ${failure.message}`;
        if (this.countdown !== null) producer.fail(new RillError(failure.code, `transaction partly failed: ${reason}`), receipt);
        else if (acknowledgments !== undefined) producer.receipt(receipt);
        else producer.fail(new RillError(failure.code, reason), receipt);
      }
    }
    producer.settled();
  }
}

import type { DeduplicatedTicket } from '../../broker/index.js';
import { RillError } from '../../errors/index.js';
import type { Producer } from './producer.js';

/** Counts down the SENDs of one COMMIT; its RECEIPT goes out when all are stored. */
export class ReceiptCountdown {
  constructor(
    public remaining: number,
    /** The COMMIT's receipt header, null when it asked for none. */
    readonly receipt: string | null,
    /** The COMMIT's place in its connection's order of answers. */
    readonly place: number,
  ) {}
}

/**
 * What the gateway remembers of one published message until storage answers, and what it tells
 * the producer then: an acknowledgment on its acknowledgment subscription, the RECEIPT it asked
 * for, or, for a failure it has no other way to hear of, an ERROR frame.
 */
export class PublishTicket implements DeduplicatedTicket {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly partition: number,
    private readonly messageId: string,
    private readonly timestamp: number,
    /** The SEND's place in its connection's order of answers. */
    private readonly place: number,
    /** The SEND asked for a RECEIPT. */
    private readonly receipt: boolean,
    private readonly countdown: ReceiptCountdown | null,
    /** About how many bytes its answers take (RECEIPT, acknowledgment): handed back when it settles. */
    private readonly owedBytes: number,
  ) {}

  settle(offset: number, failure: RillError | null): void {
    this.answer(this.partition, offset, failure, false);
  }

  /** Nothing was stored: the message already was (a resend), at `offset` of `partition`. Answered as stored, marked a duplicate. */
  duplicate(partition: number, offset: number): void {
    this.answer(partition, offset, null, true);
  }

  private answer(partition: number, offset: number, failure: RillError | null, duplicate: boolean): void {
    const producer = this.producer;
    if (producer.open) {
      const acknowledgments = producer.acknowledgments(this.topic);
      const countdown = this.countdown;
      if (failure === null) {
        acknowledgments?.stored(this.messageId, partition, offset, this.timestamp, duplicate);
        if (countdown !== null) {
          if (--countdown.remaining === 0 && countdown.receipt !== null) producer.answered(countdown.place);
        } else if (this.receipt) producer.answered(this.place);
      } else {
        acknowledgments?.failed(this.messageId, this.partition, failure);
        const reason = `message "${this.messageId}" was not stored: ${failure.message}`;
        if (countdown !== null) producer.failed(countdown.place, new RillError(failure.code, `transaction not committed: ${reason}`));
        else if (acknowledgments === undefined) producer.failed(this.place, new RillError(failure.code, reason));
        else if (this.receipt) producer.answered(this.place);
      }
    }
    producer.settled(this.owedBytes);
  }
}

import { acknowledgmentDestination } from '../destinations.js';
import type { StompSession } from '../session.js';
import { ackHeader, type AckMode, type Subscription } from './subscription.js';

/**
 * A producer's subscription to `/topic/acknowledgment/<topic>`: one MESSAGE per message this
 * session published to the topic, in publish order per partition. It carries only this session's
 * acknowledgments and is not flow-controlled: its traffic is bounded by the session's own sends.
 */
export class AcknowledgmentSubscription implements Subscription {
  private sequence = 0;
  private readonly destination: string;

  constructor(
    private readonly session: StompSession,
    readonly id: string,
    readonly number: number,
    readonly ackMode: AckMode,
    readonly topic: string,
  ) {
    this.destination = acknowledgmentDestination(topic);
  }

  stored(messageId: string, partition: number, offset: number, timestamp: number): void {
    this.send({ messageID: messageId, status: 'ACK', topic: this.topic, partition, offset, timestamp });
  }

  failed(messageId: string | null, partition: number | null, reason: string, retriable: boolean): void {
    this.send({ messageID: messageId, status: 'FAILED', topic: this.topic, partition, reason, retriable, timestamp: Date.now() });
  }

  private send(body: object): void {
    const sequence = ++this.sequence;
    this.session.sendFrame(
      'MESSAGE',
      {
        subscription: this.id,
        'message-id': `${this.session.id}-ack-${sequence}`,
        destination: this.destination,
        'content-type': 'application/json',
        ack: this.ackMode === 'auto' ? undefined : ackHeader(this.number, sequence),
      },
      JSON.stringify(body),
    );
  }

  resume(): void {}

  settle(sequence: number): boolean {
    return sequence <= this.sequence;
  }

  close(): void {}
}

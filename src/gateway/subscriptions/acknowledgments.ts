import { acknowledgmentDestination } from '../destinations.js';
import type { StompSession } from '../session.js';
import { JsonMessageSubscription } from './json-messages.js';
import type { AckMode } from './subscription.js';

/**
 * A producer's subscription to `/topic/acknowledgment/<topic>`: one MESSAGE per message this
 * session published to the topic, in publish order per partition, and only this session's.
 */
export class AcknowledgmentSubscription extends JsonMessageSubscription {
  constructor(
    session: StompSession,
    id: string,
    number: number,
    ackMode: AckMode,
    readonly topic: string,
  ) {
    super(session, id, number, ackMode, acknowledgmentDestination(topic), 'ack');
  }

  stored(messageId: string, partition: number, offset: number, timestamp: number): void {
    this.send({}, { messageID: messageId, status: 'ACK', topic: this.topic, partition, offset, timestamp });
  }

  failed(messageId: string | null, partition: number | null, reason: string, retriable: boolean): void {
    this.send({}, { messageID: messageId, status: 'FAILED', topic: this.topic, partition, reason, retriable, timestamp: Date.now() });
  }
}

import type { RillError } from '../../../errors/index.js';
import type { AcknowledgmentSink } from '../../publishing/index.js';
import type { DeliveryChannel } from '../delivery-channel.js';
import { acknowledgmentDestination } from '../destinations.js';
import { JsonMessageSubscription } from './json-messages.js';
import type { AckMode } from './subscription.js';

/**
 * A producer's subscription to `/topic/acknowledgment/<topic>`: one MESSAGE per message this
 * connection published to the topic, in publish order per partition, and only this connection's.
 */
export class AcknowledgmentSubscription extends JsonMessageSubscription implements AcknowledgmentSink {
  constructor(
    channel: DeliveryChannel,
    id: string,
    number: number,
    ackMode: AckMode,
    readonly topic: string,
  ) {
    super(channel, id, number, ackMode, acknowledgmentDestination(topic), 'ack');
  }

  stored(messageId: string, partition: number, offset: number, timestamp: number, duplicate: boolean): void {
    const body = { messageID: messageId, status: 'ACK', topic: this.topic, partition, offset, timestamp };
    this.send({}, duplicate ? { ...body, duplicate: true } : body);
  }

  failed(messageId: string | null, partition: number | null, error: RillError): void {
    this.send(
      {},
      {
        messageID: messageId,
        status: 'FAILED',
        topic: this.topic,
        partition,
        code: error.code,
        reason: error.message,
        retriable: error.retriable,
        timestamp: Date.now(),
      },
    );
  }
}

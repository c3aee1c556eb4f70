import { RoundRobin, type Broker } from '../../broker/index.js';
import type { FrameHeaders } from '../../protocol/stomp/index.js';
import type { Producer } from './producer.js';
import { preparePublish, type PublishRequest } from './publish-request.js';
import { PublishTicket, type ReceiptCountdown } from './publish-ticket.js';

/**
 * The publish path's router stage: a SEND's topic, key, messageID and partition are worked out
 * (validated, auto-creating the topic by the registry's policy), then the record goes to the
 * broker with a ticket that answers the producer once storage has.
 */
export class Publisher {
  private readonly roundRobin = new RoundRobin();

  constructor(private readonly broker: Pick<Broker, 'topics' | 'append'>) {}

  /** Throws PublishError with a reason the client can act on. */
  prepare(topic: string, headers: FrameHeaders, body: Buffer, fallbackMessageId: () => string): PublishRequest {
    return preparePublish(this.broker.topics, this.roundRobin, topic, headers, body, fallbackMessageId);
  }

  publish(producer: Producer, request: PublishRequest, receipt: string | null, countdown: ReceiptCountdown | null): void {
    const ticket = new PublishTicket(producer, request.topic.name, request.partition, request.messageId, request.timestamp, receipt, countdown);
    this.broker.append(request.topic, request.partition, request.timestamp, request.key, request.messageId, request.headers, request.value, ticket);
  }
}

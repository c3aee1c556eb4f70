import type { DeliveryChannel } from '../delivery-channel.js';
import { JsonMessageSubscription } from './json-messages.js';
import type { AckMode } from './subscription.js';

/**
 * A subscription to a connection's own reply destination (`/user/<anything>`, by default
 * `/user/replies`): answers to the requests it SENDs to `/request/<operation>`, matched by
 * `correlation-id`, and assignment events for the members it registered.
 */
export class ReplySubscription extends JsonMessageSubscription {
  constructor(channel: DeliveryChannel, id: string, number: number, ackMode: AckMode, destination: string) {
    super(channel, id, number, ackMode, destination, 'reply');
  }
}

import type { StompSession } from '../session.js';
import { JsonMessageSubscription } from './json-messages.js';
import type { AckMode } from './subscription.js';

/**
 * A subscription to a session's own reply destination (`/user/<anything>`, by default
 * `/user/replies`): answers to the requests the session SENDs to `/request/<operation>`, matched by
 * `correlation-id`, and assignment events for the members it registered.
 */
export class ReplySubscription extends JsonMessageSubscription {
  constructor(session: StompSession, id: string, number: number, ackMode: AckMode, destination: string) {
    super(session, id, number, ackMode, destination, 'reply');
  }
}

import type { StompSession } from '../session.js';
import type { AckMode, Subscription } from './subscription.js';
import { ackHeader } from './subscription.js';

/**
 * A subscription to a session's own reply destination (`/user/<anything>`, by default
 * `/user/replies`): answers to the requests the session SENDs to `/request/<operation>`, matched by
 * `correlation-id`, and assignment events for the members it registered. Not flow-controlled:
 * replies are bounded by the session's own requests.
 */
export class ReplySubscription implements Subscription {
  private sequence = 0;

  constructor(
    private readonly session: StompSession,
    readonly id: string,
    readonly number: number,
    readonly ackMode: AckMode,
    readonly destination: string,
  ) {}

  send(headers: Record<string, string | number | undefined>, body: unknown): void {
    const sequence = ++this.sequence;
    this.session.sendFrame(
      'MESSAGE',
      {
        ...headers,
        subscription: this.id,
        'message-id': `${this.session.id}-reply-${sequence}`,
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

import type { HeaderInput } from '../../../protocol/stomp/index.js';
import type { DeliveryChannel } from '../delivery-channel.js';
import { ackHeader, type AckMode, type Subscription } from './subscription.js';

/**
 * A subscription to messages Rill itself writes for this connection (acknowledgments, replies):
 * JSON bodies, not flow-controlled, since their traffic is bounded by the connection's own requests.
 */
export class JsonMessageSubscription implements Subscription {
  private sequence = 0;

  constructor(
    protected readonly channel: DeliveryChannel,
    readonly id: string,
    readonly number: number,
    readonly ackMode: AckMode,
    readonly destination: string,
    private readonly idPrefix: string,
  ) {}

  send(headers: HeaderInput, body: unknown): void {
    const sequence = ++this.sequence;
    this.channel.sendFrame(
      'MESSAGE',
      {
        ...headers,
        subscription: this.id,
        'message-id': `${this.channel.sessionId}-${this.idPrefix}-${sequence}`,
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

  handedOut(sequence: number): boolean {
    return sequence >= 1 && sequence <= this.sequence;
  }

  close(): void {}
}

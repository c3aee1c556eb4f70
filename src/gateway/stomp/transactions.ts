import { RillError } from '../../errors/index.js';
import type { Frame } from '../../protocol/stomp/index.js';
import type { Subscription } from './subscriptions/subscription.js';

/** An ACK or NACK sent inside a transaction: applied at COMMIT, dropped (the message redelivered) at ABORT. */
export interface HeldSettle {
  subscription: Subscription;
  sequence: number;
  accepted: boolean;
}

/** What a transaction holds until COMMIT or ABORT. */
export interface HeldTransaction {
  sends: Frame[];
  settles: HeldSettle[];
}

/** A connection's open transactions: the SENDs, ACKs and NACKs each holds until COMMIT or ABORT. */
export class Transactions {
  private readonly open = new Map<string, HeldTransaction>();

  constructor(private readonly maxFrames: number) {}

  begin(id: string): void {
    if (this.open.has(id)) throw new RillError('name-taken', `transaction "${id}" is already open`);
    this.open.set(id, { sends: [], settles: [] });
  }

  /** Holds a SEND; its body is copied, since the parser's body is a view into the socket's buffer. */
  hold(id: string, frame: Frame): void {
    const held = this.opened(id);
    held.sends.push({ command: frame.command, headers: frame.headers, body: Buffer.from(frame.body) });
  }

  /** Holds an ACK or NACK of a message the subscription handed out. */
  holdSettle(id: string, settle: HeldSettle): void {
    this.opened(id).settles.push(settle);
  }

  /** Ends a transaction (COMMIT or ABORT) and hands back what it held. */
  end(id: string): HeldTransaction {
    const held = this.open.get(id);
    if (held === undefined) throw new RillError('unknown-transaction', `transaction "${id}" is not open`);
    this.open.delete(id);
    return held;
  }

  clear(): void {
    this.open.clear();
  }

  private opened(id: string): HeldTransaction {
    const held = this.open.get(id);
    if (held === undefined) throw new RillError('unknown-transaction', `transaction "${id}" is not open (BEGIN it first)`);
    if (held.sends.length + held.settles.length >= this.maxFrames)
      throw new RillError('too-large', `transaction "${id}" holds more than ${this.maxFrames} frames`);
    return held;
  }
}

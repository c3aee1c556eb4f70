import { RillError } from '../../errors/index.js';
import type { AccessNeed, PrincipalQuota } from '../../security/index.js';
import type { AcknowledgmentSink } from '../publishing/index.js';
import type { CloseReason, Subscription } from './subscriptions/subscription.js';

/** What a reply destination (`/user/...`) subscription can be sent. */
export interface ReplySink {
  send(headers: Record<string, string | number | undefined>, body: unknown): void;
}

/**
 * A connection's subscriptions: by the client's id, by the session-local number that prefixes
 * their `ack` headers, and the two kinds the session itself writes to (acknowledgments by topic,
 * reply destinations by name).
 */
export class SubscriptionRegistry {
  private readonly byId = new Map<string, Subscription>();
  private readonly byNumber = new Map<number, Subscription>();
  private readonly acknowledgmentsByTopic = new Map<string, { subscription: Subscription; sink: AcknowledgmentSink }>();
  private readonly repliesByDestination = new Map<string, { subscription: Subscription; sink: ReplySink }>();
  /** Ids of SUBSCRIBEs still being set up (a group join waits for the coordinator). */
  private readonly reserved = new Set<string>();
  /** What each subscription needs its principal to be allowed, checked again when the rules are reloaded. */
  private readonly needs = new Map<string, readonly AccessNeed[]>();
  private counter = 0;
  /** The principal's subscription quota, once the connection is authenticated (none: no limit). */
  quota: Pick<PrincipalQuota, 'openSubscription' | 'closeSubscriptions'> | undefined;

  /**
   * Refuses an id in use, or taken by a SUBSCRIBE still being set up; returns the number for the
   * new subscription's `ack` headers. The id stays taken until add() (or the connection closes).
   */
  reserve(id: string): number {
    if (this.byId.has(id) || this.reserved.has(id)) throw new RillError('name-taken', `subscription id "${id}" is already in use on this connection`);
    this.quota?.openSubscription();
    this.reserved.add(id);
    return ++this.counter;
  }

  add(subscription: Subscription, needs: readonly AccessNeed[] = []): void {
    this.reserved.delete(subscription.id);
    if (needs.length > 0) this.needs.set(subscription.id, needs);
    this.byId.set(subscription.id, subscription);
    this.byNumber.set(subscription.number, subscription);
  }

  addAcknowledgments(topic: string, subscription: Subscription, sink: AcknowledgmentSink, needs: readonly AccessNeed[]): void {
    this.add(subscription, needs);
    this.acknowledgmentsByTopic.set(topic, { subscription, sink });
  }

  addReplies(destination: string, subscription: Subscription, sink: ReplySink): void {
    this.add(subscription);
    this.repliesByDestination.set(destination, { subscription, sink });
  }

  /** What the open subscriptions need, all together. */
  requirements(): AccessNeed[] {
    return [...this.needs.values()].flat();
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  byAckNumber(number: number): Subscription | undefined {
    return this.byNumber.get(number);
  }

  acknowledgments(topic: string): AcknowledgmentSink | undefined {
    return this.acknowledgmentsByTopic.size === 0 ? undefined : this.acknowledgmentsByTopic.get(topic)?.sink;
  }

  replies(destination: string): ReplySink | undefined {
    return this.repliesByDestination.get(destination)?.sink;
  }

  /** Ends one subscription (UNSUBSCRIBE); throws `unknown-subscription` for an id not in use. */
  remove(id: string): void {
    const subscription = this.byId.get(id);
    if (subscription === undefined) throw new RillError('unknown-subscription', `no subscription with id "${id}" on this connection`);
    subscription.close('client-left');
    this.forget(subscription);
    this.quota?.closeSubscriptions(1);
  }

  /** Every subscription delivery may go on: the socket drained. */
  resumeAll(): void {
    for (const subscription of this.byId.values()) subscription.resume();
  }

  /** Ends every subscription, for `reason`. */
  closeAll(reason: CloseReason): void {
    for (const subscription of this.byId.values()) subscription.close(reason);
    this.quota?.closeSubscriptions(this.byId.size + this.reserved.size);
    this.quota = undefined;
    this.byId.clear();
    this.needs.clear();
    this.reserved.clear();
    this.byNumber.clear();
    this.acknowledgmentsByTopic.clear();
    this.repliesByDestination.clear();
  }

  private forget(subscription: Subscription): void {
    this.byId.delete(subscription.id);
    this.needs.delete(subscription.id);
    this.byNumber.delete(subscription.number);
    for (const [topic, entry] of this.acknowledgmentsByTopic) if (entry.subscription === subscription) this.acknowledgmentsByTopic.delete(topic);
    for (const [destination, entry] of this.repliesByDestination) if (entry.subscription === subscription) this.repliesByDestination.delete(destination);
  }
}

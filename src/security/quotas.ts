import type { AuthConfig } from '../config/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { Principal } from './principal.js';

type QuotaConfig = AuthConfig['quotas'];
type Limits = Omit<QuotaConfig, 'principals'>;

/** A throttled principal is logged at most this often. */
const LOG_INTERVAL_MS = 10_000;

/**
 * One principal's use of the broker, shared by all its connections: connections and subscriptions
 * open, and publish rates as token buckets (one second of burst). Over a rate, its connections are
 * told how long to stop reading (the read gate's `quota` pause, as backpressure): nothing is
 * dropped, the client's socket simply drains more slowly.
 */
export class PrincipalQuota {
  private connectionsOpen = 0;
  private subscriptionsOpen = 0;
  private bytes: number;
  private messages: number;
  private refilledAt: number;
  private loggedAt = -Infinity;

  constructor(
    readonly principal: string,
    private readonly limits: Limits,
    private readonly logger: Logger,
    private readonly onIdle: () => void,
    private readonly now: () => number = Date.now,
  ) {
    this.bytes = limits.publishBytesPerSecond;
    this.messages = limits.publishMessagesPerSecond;
    this.refilledAt = now();
  }

  /** Whether publishing is limited at all (else the session need not count). */
  get limitsRate(): boolean {
    return this.limits.publishBytesPerSecond >= 0 || this.limits.publishMessagesPerSecond >= 0;
  }

  /** A connection opens; throws `quota-exceeded` past the limit. */
  openConnection(): void {
    const limit = this.limits.connections;
    if (limit >= 0 && this.connectionsOpen >= limit) {
      this.note('connections', limit);
      throw new RillError('quota-exceeded', `user "${this.principal}" has ${limit} connections open, its quota (auth.quotas.connections)`);
    }
    this.connectionsOpen++;
  }

  closeConnection(): void {
    this.connectionsOpen--;
    if (this.connectionsOpen === 0 && this.subscriptionsOpen === 0) this.onIdle();
  }

  /** A subscription opens; throws `quota-exceeded` past the limit. */
  openSubscription(): void {
    const limit = this.limits.subscriptions;
    if (limit >= 0 && this.subscriptionsOpen >= limit) {
      this.note('subscriptions', limit);
      throw new RillError('quota-exceeded', `user "${this.principal}" has ${limit} subscriptions open, its quota (auth.quotas.subscriptions)`);
    }
    this.subscriptionsOpen++;
  }

  closeSubscriptions(count: number): void {
    this.subscriptionsOpen -= count;
  }

  /**
   * What a connection read (bytes, and SENDs among them) is charged; returns how long it should
   * stop reading for the buckets to be back at zero (0: it may go on).
   */
  charge(bytes: number, messages: number): number {
    const now = this.now();
    const elapsed = Math.max(0, now - this.refilledAt) / 1000;
    this.refilledAt = now;
    let waitMs = 0;
    const { publishBytesPerSecond: byteRate, publishMessagesPerSecond: messageRate } = this.limits;
    if (byteRate >= 0) {
      this.bytes = Math.min(byteRate, this.bytes + elapsed * byteRate) - bytes;
      if (this.bytes < 0) waitMs = Math.max(waitMs, byteRate === 0 ? 1000 : (-this.bytes / byteRate) * 1000);
    }
    if (messageRate >= 0) {
      this.messages = Math.min(messageRate, this.messages + elapsed * messageRate) - messages;
      if (this.messages < 0) waitMs = Math.max(waitMs, messageRate === 0 ? 1000 : (-this.messages / messageRate) * 1000);
    }
    if (waitMs > 0) this.note('publish rate', byteRate >= 0 ? byteRate : messageRate);
    return Math.ceil(waitMs);
  }

  /** Once per interval per principal, not once per message. */
  private note(what: string, limit: number): void {
    const now = this.now();
    if (now - this.loggedAt < LOG_INTERVAL_MS) return;
    this.loggedAt = now;
    this.logger.warn({ principal: this.principal, quota: what, limit }, 'principal at its quota');
  }
}

/**
 * The quotas of `auth.quotas`, one PrincipalQuota per principal with connections open (forgotten
 * when its last closes). A principal's limits are the defaults, overridden by the first entry of
 * `principals` that names the user or one of its roles.
 */
export class Quotas {
  private readonly byPrincipal = new Map<string, PrincipalQuota>();

  constructor(
    private config: QuotaConfig,
    private readonly logger: Logger,
  ) {}

  /** New limits apply to principals from their next connection on. */
  reload(config: QuotaConfig): void {
    this.config = config;
  }

  /** Whether any limit is set: without one, sessions skip every count. */
  get active(): boolean {
    const { principals, ...defaults } = this.config;
    return Object.values(defaults).some((limit) => limit >= 0) || principals.length > 0;
  }

  of(principal: Principal): PrincipalQuota {
    let quota = this.byPrincipal.get(principal.name);
    if (quota === undefined) {
      quota = new PrincipalQuota(principal.name, this.limitsOf(principal), this.logger, () => this.byPrincipal.delete(principal.name));
      this.byPrincipal.set(principal.name, quota);
    }
    return quota;
  }

  private limitsOf(principal: Principal): Limits {
    const { principals, ...defaults } = this.config;
    const override = principals.find(
      (entry) => entry.principal === `user:${principal.name}` || (entry.principal.startsWith('role:') && principal.roles.has(entry.principal.slice(5))),
    );
    if (override === undefined) return defaults;
    const { principal: _named, ...limits } = override;
    return { ...defaults, ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) };
  }
}

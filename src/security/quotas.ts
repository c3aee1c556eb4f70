import type { AuthConfig } from '../config/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { Principal } from './principal.js';

type QuotaConfig = AuthConfig['quotas'];
type Limits = Omit<QuotaConfig, 'principals'>;

/** A throttled principal is logged at most this often. */
const LOG_INTERVAL_MS = 10_000;

/** The longest a connection is told to stop reading at once (it is told again if still over). */
const MAX_PAUSE_MS = 60_000;

/**
 * One principal's use of the broker, shared by all its connections: connections and subscriptions
 * open, and publish rates as token buckets (one second of burst). Over a rate, its connections are
 * told how long to stop reading (the read gate's `quota` pause, as backpressure): nothing is
 * dropped, the client's socket simply drains more slowly. The limits are looked up at every check,
 * so that a reload applies to connections already open.
 */
export class PrincipalQuota {
  private connectionsOpen = 0;
  private subscriptionsOpen = 0;
  /** The buckets' contents, as a debt below the burst: 0 is a full bucket. */
  private bytesUsed = 0;
  private messagesUsed = 0;
  private refilledAt: number;
  private loggedAt = -Infinity;

  constructor(
    readonly principal: string,
    private readonly limitsNow: () => Limits,
    private readonly logger: Logger,
    private readonly onIdle: () => void,
    private readonly now: () => number = Date.now,
  ) {
    this.refilledAt = now();
  }

  private get limits(): Limits {
    return this.limitsNow();
  }

  /** Whether publishing is limited at all (else the session need not count). */
  get limitsRate(): boolean {
    const limits = this.limits;
    return limits.publishBytesPerSecond >= 0 || limits.publishMessagesPerSecond >= 0;
  }

  /** A connection opens; throws `quota-exceeded` past the limit. */
  openConnection(): void {
    const limit = this.limits.connections;
    if (limit >= 0 && this.connectionsOpen >= limit) {
      this.note('connections', limit);
      if (this.connectionsOpen === 0 && this.subscriptionsOpen === 0) this.onIdle();
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
    const { publishBytesPerSecond: byteRate, publishMessagesPerSecond: messageRate } = this.limits;
    // Used beyond a full bucket (the rate's one second of burst) is debt: the wait it takes to refill.
    this.bytesUsed = byteRate < 0 ? 0 : Math.max(0, this.bytesUsed - elapsed * byteRate) + bytes;
    this.messagesUsed = messageRate < 0 ? 0 : Math.max(0, this.messagesUsed - elapsed * messageRate) + messages;
    const waitMs = Math.max(debtMs(this.bytesUsed, byteRate), debtMs(this.messagesUsed, messageRate));
    if (waitMs > 0) this.note('publish rate', byteRate >= 0 ? byteRate : messageRate);
    return Math.min(MAX_PAUSE_MS, Math.ceil(waitMs));
  }

  /** Once per interval per principal, not once per message. */
  private note(what: string, limit: number): void {
    const now = this.now();
    if (now - this.loggedAt < LOG_INTERVAL_MS) return;
    this.loggedAt = now;
    this.logger.warn({ principal: this.principal, quota: what, limit }, 'principal at its quota');
  }
}

/** How long until `used` is back within a bucket of one second at `rate` (-1: no limit). */
function debtMs(used: number, rate: number): number {
  if (rate < 0 || used <= rate) return 0;
  return rate === 0 ? MAX_PAUSE_MS : ((used - rate) / rate) * 1000;
}

/**
 * The quotas of `auth.quotas`, one PrincipalQuota per principal with connections open (forgotten
 * when its last closes). A principal's limits are the defaults, overridden by the first entry of
 * `principals` that names the user or one of its roles.
 */
export class Quotas {
  private readonly byPrincipal = new Map<string, PrincipalQuota>();
  /** Counts reloads: each principal's limits are worked out again once after one. */
  private version = 0;

  constructor(
    private config: QuotaConfig,
    private readonly logger: Logger,
  ) {}

  /**
   * New limits apply at once, to connections already open too. (Counting starts with a
   * connection: switching quotas on by a reload counts only the connections made since.)
   */
  reload(config: QuotaConfig): void {
    this.config = config;
    this.version++;
  }

  /** Whether any limit is set: without one, sessions skip every count. */
  get active(): boolean {
    const { principals, ...defaults } = this.config;
    return Object.values(defaults).some((limit) => limit >= 0) || principals.length > 0;
  }

  of(principal: Principal): PrincipalQuota {
    let quota = this.byPrincipal.get(principal.name);
    if (quota === undefined) {
      let limits = this.limitsOf(principal);
      let limitsVersion = this.version;
      const limitsNow = (): Limits => {
        if (limitsVersion !== this.version) {
          limits = this.limitsOf(principal);
          limitsVersion = this.version;
        }
        return limits;
      };
      quota = new PrincipalQuota(principal.name, limitsNow, this.logger, () => this.byPrincipal.delete(principal.name));
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

import { RillError } from '../../errors/index.js';

const MINUTE_MS = 60_000;

/**
 * How many topics one connection may create by naming them (`limits.autoCreatePerMinute`): a token
 * bucket that holds at most `perMinute` creations and refills at `perMinute` a minute, so a
 * connection may create a burst of `perMinute` topics at once, then one every 60 s / `perMinute`.
 * One per connection; `TopicRegistry.resolve` takes a token only when it really creates a topic.
 */
export class CreationQuota {
  private tokens: number;
  private refilledAt: number;

  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(perMinute >= 1)) throw new RangeError(`a creation quota needs at least 1 a minute, not ${perMinute}`);
    this.tokens = perMinute;
    this.refilledAt = now();
  }

  /** Creations this connection may make right now. */
  get available(): number {
    this.refill();
    return Math.floor(this.tokens);
  }

  /** Takes one creation for `topic`; throws `rate-limited` when the connection has none left. */
  take(topic: string): void {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return;
    }
    const waitMs = Math.ceil(((1 - this.tokens) * MINUTE_MS) / this.perMinute);
    throw new RillError(
      'rate-limited',
      `topic "${topic}" was not created: this connection creates topics faster than limits.autoCreatePerMinute (${this.perMinute} a minute); ` +
        `retry in ${Math.ceil(waitMs / 1000)} s, or create topics in advance (topics.definitions)`,
    );
  }

  private refill(): void {
    const now = this.now();
    const elapsed = now - this.refilledAt;
    // A clock that steps back refills nothing (and is not held against the connection).
    if (elapsed > 0) this.tokens = Math.min(this.perMinute, this.tokens + (elapsed * this.perMinute) / MINUTE_MS);
    this.refilledAt = now;
  }
}

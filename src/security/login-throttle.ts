import { RillError } from '../errors/index.js';

const MINUTE_MS = 60_000;
/** Addresses remembered at most; the fullest buckets (those that failed least lately) are forgotten first. */
const MAX_ADDRESSES = 100_000;

/**
 * Failed logins per remote address (`auth.failedLoginsPerMinute`): a token bucket per address
 * that refills over a minute. Each login being checked holds a token, given back if it succeeds,
 * so that failures and logins still being checked count alike: an address with none left is
 * refused at once, before any password is hashed, however many it sends at the same time. So
 * guessing is slow, and a flood of bad logins does not take the CPU from other clients.
 */
export class LoginThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A login from `remote` begins: takes a token; throws `rate-limited` when `remote` has none left. */
  attempt(remote: string): void {
    const bucket = this.refilled(remote) ?? { tokens: this.perMinute, at: this.now() };
    if (bucket.tokens < 1) {
      const waitS = Math.ceil(((1 - bucket.tokens) * MINUTE_MS) / this.perMinute / 1000);
      throw new RillError('rate-limited', `too many failed logins from this address; try again in ${waitS} s`);
    }
    bucket.tokens -= 1;
    // Most recently failing last: the first in the map is the one to forget when there are too many.
    this.buckets.delete(remote);
    this.buckets.set(remote, bucket);
    if (this.buckets.size > MAX_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!);
  }

  /** The login succeeded: its token goes back. */
  succeeded(remote: string): void {
    const bucket = this.refilled(remote);
    if (bucket !== undefined) bucket.tokens = Math.min(this.perMinute, bucket.tokens + 1);
  }

  /** Whether `remote` has no login left (after a failure: worth one log line). */
  exhausted(remote: string): boolean {
    return (this.refilled(remote)?.tokens ?? this.perMinute) < 1;
  }

  private refilled(remote: string): { tokens: number; at: number } | undefined {
    const bucket = this.buckets.get(remote);
    if (bucket === undefined) return undefined;
    const now = this.now();
    if (now > bucket.at) bucket.tokens = Math.min(this.perMinute, bucket.tokens + ((now - bucket.at) * this.perMinute) / MINUTE_MS);
    bucket.at = now;
    if (bucket.tokens >= this.perMinute) {
      this.buckets.delete(remote);
      return undefined;
    }
    return bucket;
  }
}

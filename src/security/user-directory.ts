import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { AuthConfig } from '../config/index.js';
import { isPasswordHash, verifyPassword } from './password-hash.js';
import { SecuritySettingError } from './security-setting-error.js';
import type { Principal } from './principal.js';

/** A hash no password matches, checked for unknown users so that they take as long as known ones. */
const UNKNOWN_USER_HASH = `scrypt$32768$8$3$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;
const VERIFIED_TTL_MS = 5 * 60_000;

/**
 * The users of `auth.users` and their password hashes. A successful check is remembered for a
 * while (by a digest of the name and password, never the password), so that HTTP clients sending
 * Basic credentials on every request cost one scrypt, not one per request.
 */
export class UserDirectory {
  private readonly users: Map<string, AuthConfig['users'][number]>;
  private readonly verified = new LRUCache<string, true>({ max: 10_000, ttl: VERIFIED_TTL_MS });

  /** Throws when a hash cannot be read (not made by `rill passwd`). */
  constructor(users: AuthConfig['users']) {
    for (const user of users) {
      if (!isPasswordHash(user.passwordHash))
        throw new SecuritySettingError(`user "${user.name}" has a password hash Rill cannot read: make one with \`rill passwd\``, 'auth.users');
    }
    this.users = new Map(users.map((user) => [user.name, user]));
  }

  get size(): number {
    return this.users.size;
  }

  has(name: string): boolean {
    return this.users.has(name);
  }

  /** A digest of the user's password hash as configured now (undefined: no such user). */
  credentialOf(name: string): string | undefined {
    const user = this.users.get(name);
    return user === undefined ? undefined : credentialDigest(user.passwordHash);
  }

  /** The user's roles as configured now. */
  roles(name: string): ReadonlySet<string> | undefined {
    const user = this.users.get(name);
    return user === undefined ? undefined : new Set(user.roles);
  }

  /** The principal for a name and password that were verified lately (no hashing), else null. */
  remembered(name: string, password: string): Principal | null {
    const user = this.users.get(name);
    if (user === undefined || !this.verified.has(digestOf(name, password, user.passwordHash))) return null;
    return principalOf(user);
  }

  /** The principal for a right name and password, null for wrong ones. */
  async verify(name: string, password: string): Promise<Principal | null> {
    const user = this.users.get(name);
    const matches = await verifyPassword(password, user?.passwordHash ?? UNKNOWN_USER_HASH);
    if (!matches || user === undefined) return null;
    this.verified.set(digestOf(name, password, user.passwordHash), true);
    return principalOf(user);
  }
}

function digestOf(name: string, password: string, passwordHash: string): string {
  return createHash('sha256').update(name).update('\0').update(password).update('\0').update(passwordHash).digest('base64');
}

function principalOf(user: AuthConfig['users'][number]): Principal {
  return { name: user.name, roles: new Set(user.roles), anonymous: false, via: 'password', expiresAt: null, credential: credentialDigest(user.passwordHash) };
}

function credentialDigest(passwordHash: string): string {
  return createHash('sha256').update(passwordHash).digest('base64');
}

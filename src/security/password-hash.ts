import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/*
 * Passwords are stored as scrypt hashes: `scrypt$<N>$<r>$<p>$<salt>$<key>` (salt and key in
 * base64). The defaults are one of OWASP's equivalent scrypt settings (N = 2^15, r = 8, p = 3:
 * 32 MiB, about a tenth of a second here); the settings travel with each hash, so raising them
 * later leaves old hashes valid.
 */

const PREFIX = 'scrypt';
const DEFAULT_COST = { N: 2 ** 15, r: 8, p: 3 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;

interface ParsedHash {
  options: ScryptOptions & { N: number; r: number; p: number };
  salt: Buffer;
  key: Buffer;
}

/** The hash `rill passwd` prints, with a fresh random salt. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, DEFAULT_COST);
  return [PREFIX, DEFAULT_COST.N, DEFAULT_COST.r, DEFAULT_COST.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Whether `password` matches `hash`, compared in constant time. A hash that cannot be read matches nothing. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parsed = parseHash(hash);
  if (parsed === null) return false;
  const key = await derive(password, parsed.salt, parsed.key.length, parsed.options);
  return timingSafeEqual(key, parsed.key);
}

/** Whether the config's hash is one `verifyPassword` can read (checked when the config is loaded). */
export function isPasswordHash(hash: string): boolean {
  return parseHash(hash) !== null;
}

function parseHash(hash: string): ParsedHash | null {
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== PREFIX) return null;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const salt = Buffer.from(parts[4]!, 'base64');
  const key = Buffer.from(parts[5]!, 'base64');
  const powerOfTwo = Number.isInteger(N) && N >= 2 && (N & (N - 1)) === 0;
  if (!powerOfTwo || N > 2 ** 20 || !Number.isInteger(r) || r < 1 || r > 32 || !Number.isInteger(p) || p < 1 || p > 16) return null;
  if (salt.length < 8 || key.length < 16) return null;
  return { options: { N, r, p }, salt, key };
}

function derive(password: string, salt: Buffer, length: number, cost: { N: number; r: number; p: number }): Promise<Buffer> {
  // scrypt needs 128 * N * r bytes; Node refuses above maxmem (32 MiB by default), so allow what the cost needs.
  const maxmem = 128 * cost.N * cost.r + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, length, { ...cost, maxmem }, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

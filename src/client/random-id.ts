interface RandomSource {
  getRandomValues<T extends ArrayBufferView>(array: T): T;
}

/** Web Crypto where there is one (browsers on any origin, Node 20). Not crypto.randomUUID: pages on insecure origins lack it. */
function webCrypto(): RandomSource | undefined {
  const crypto = (globalThis as { crypto?: Partial<RandomSource> }).crypto;
  return typeof crypto?.getRandomValues === 'function' ? (crypto as RandomSource) : undefined;
}

let fallbackCounter = 0;

/** Without Web Crypto: Math.random, with a counter mixed in so that two IDs of one page never coincide. */
function weakRandomBytes(bytes: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  const count = fallbackCounter++;
  for (let i = 0; i < 4; i++) bytes[12 + i] = (count >>> (8 * i)) & 0xff;
}

/**
 * A random (version 4) UUID: a fresh messageID (the broker recognises a resend by its messageID, so
 * every message gets its own and keeps it through every resend), or a consumer name's suffix.
 */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  const random = webCrypto();
  if (random !== undefined) random.getRandomValues(bytes);
  else weakRandomBytes(bytes);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

import { describe, expect, it } from 'vitest';
import { hashKey, partitionForKey, RoundRobin } from '../../../src/broker/index.js';

describe('partitioner', () => {
  it('is murmur3 x86 32-bit with seed 0 (published test vectors)', () => {
    expect(hashKey('')).toBe(0);
    expect(hashKey('hello')).toBe(0x248bfa47);
    expect(hashKey('Hello, world!')).toBe(0xc0363e43);
    expect(hashKey('The quick brown fox jumps over the lazy dog')).toBe(0x2e4ff723);
  });

  it('hashes the UTF-8 bytes of non-ASCII keys', () => {
    // "héllo" is 68 c3 a9 6c 6c 6f in UTF-8
    expect(hashKey('héllo')).toBe(0xbc9fa068);
    expect(hashKey('héllo')).not.toBe(hashKey('hello'));
  });

  it('maps a key to hash modulo the partition count, the same every time', () => {
    expect(partitionForKey('hello', 4)).toBe(0x248bfa47 % 4);
    expect(partitionForKey('customer-42', 6)).toBe(partitionForKey('customer-42', 6));
    const spread = new Set(Array.from({ length: 200 }, (_, i) => partitionForKey(`key-${i}`, 8)));
    expect(spread.size).toBe(8);
  });

  it('spreads keyless messages round-robin per topic', () => {
    const roundRobin = new RoundRobin();
    expect([0, 1, 2, 3].map(() => roundRobin.next('a', 3))).toEqual([0, 1, 2, 0]);
    expect(roundRobin.next('b', 3)).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { hashKey, partitionForKey, KeylessPartitioner } from '../../../src/broker/index.js';

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

  it('spreads keyless messages round-robin per topic, when so configured', () => {
    const roundRobin = new KeylessPartitioner('round-robin');
    expect([0, 1, 2, 3].map(() => roundRobin.next('a', 3, 100))).toEqual([0, 1, 2, 0]);
    expect(roundRobin.next('b', 3, 100)).toBe(0);
  });

  it('keeps the keyless messages of one event-loop turn on one partition (sticky, the default), and moves on at the next turn or past 64 KiB', async () => {
    const sticky = new KeylessPartitioner();
    const turn = (count: number, bytes = 100): number[] => Array.from({ length: count }, () => sticky.next('a', 3, bytes));
    const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    expect(turn(50)).toEqual(Array(50).fill(0));
    await nextTurn();
    expect(turn(50)).toEqual(Array(50).fill(1));
    expect(sticky.next('b', 3, 100)).toBe(0);
    await nextTurn();
    // 64 KiB in 1 KiB messages fill one partition; the 65th message goes to the next.
    const big = turn(70, 1024);
    expect(big.slice(0, 64)).toEqual(Array(64).fill(2));
    expect(big.slice(64)).toEqual(Array(6).fill(0));
    // Over many turns, every partition gets its share.
    const counts = [0, 0, 0];
    for (let i = 0; i < 30; i++) {
      await nextTurn();
      for (const partition of turn(10)) counts[partition]!++;
    }
    expect(counts).toEqual([100, 100, 100]);
  });
});

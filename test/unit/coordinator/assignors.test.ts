import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assign, tpKey, type AssignableMember, type Assignment, type AssignorName } from '../../../src/coordinator/assignors.js';

const members = (...ids: string[]): AssignableMember[] => ids.map((id) => ({ id, topics: new Set(['t']) }));
const partitionsOf = (assignment: Assignment, id: string) => assignment.get(id)!.map((tp) => tp.partition);

describe('assignors', () => {
  it('range gives contiguous ranges, the first members one more', () => {
    const result = assign('range', members('c', 'a', 'b'), new Map([['t', 7]]), new Map());
    expect(partitionsOf(result, 'a')).toEqual([0, 1, 2]);
    expect(partitionsOf(result, 'b')).toEqual([3, 4]);
    expect(partitionsOf(result, 'c')).toEqual([5, 6]);
  });

  it('roundrobin deals partitions in turn', () => {
    const result = assign('roundrobin', members('a', 'b'), new Map([['t', 5]]), new Map());
    expect(partitionsOf(result, 'a')).toEqual([0, 2, 4]);
    expect(partitionsOf(result, 'b')).toEqual([1, 3]);
  });

  it('only gives members the topics they subscribe to', () => {
    const group: AssignableMember[] = [
      { id: 'x', topics: new Set(['t']) },
      { id: 'y', topics: new Set(['u']) },
    ];
    for (const name of ['range', 'roundrobin', 'sticky'] as AssignorName[]) {
      const result = assign(
        name,
        group,
        new Map([
          ['t', 2],
          ['u', 2],
        ]),
        new Map(),
      );
      expect(result.get('x')!.every((tp) => tp.topic === 't')).toBe(true);
      expect(result.get('y')!.every((tp) => tp.topic === 'u')).toBe(true);
    }
  });

  it('sticky keeps what it can when a member leaves or joins', () => {
    const first = assign('sticky', members('a', 'b', 'c'), new Map([['t', 6]]), new Map());
    const withoutC = assign('sticky', members('a', 'b'), new Map([['t', 6]]), first);
    for (const id of ['a', 'b']) for (const p of partitionsOf(first, id)) expect(partitionsOf(withoutC, id)).toContain(p);
    const withD = assign('sticky', members('a', 'b', 'd'), new Map([['t', 6]]), withoutC);
    expect(partitionsOf(withD, 'd').length).toBe(2);
    for (const id of ['a', 'b']) for (const p of partitionsOf(withD, id)) expect(partitionsOf(withoutC, id)).toContain(p);
  });

  it('every assignor gives each partition to exactly one member, with loads within one', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<AssignorName>('range', 'roundrobin', 'sticky'),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 1, max: 8 }),
        (assignor, memberCount, partitionCount, previousCount) => {
          const ids = Array.from({ length: memberCount }, (_, i) => `m${i}`);
          const previous = assign('sticky', members(...ids.slice(0, previousCount)), new Map([['t', partitionCount]]), new Map());
          const result = assign(assignor, members(...ids), new Map([['t', partitionCount]]), previous);
          const all = [...result.values()].flat().map(tpKey);
          expect(new Set(all).size).toBe(all.length);
          expect(all.length).toBe(partitionCount);
          const loads = [...result.values()].map((l) => l.length);
          expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(1);
        },
      ),
      { numRuns: 300 },
    );
  });
});

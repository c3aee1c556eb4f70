import { describe, expect, it } from 'vitest';
import { assignWithLanes } from '../../../src/coordinator/lane-assignment.js';

const members = (ids: string[], subscribed = ['jobs', 'plain']) => ids.map((id) => ({ id, topics: new Set(subscribed) }));
const topics = new Map([
  ['jobs', { partitions: 6, lanes: 2 }],
  ['plain', { partitions: 2, lanes: 1 }],
]);
const partitionsOf = (assignment: ReadonlyMap<string, Array<{ topic: string; partition: number }>>, member: string, topic: string) =>
  (assignment.get(member) ?? [])
    .filter((tp) => tp.topic === topic)
    .map((tp) => tp.partition)
    .sort((a, b) => a - b);

describe('assignment with priority lanes', () => {
  it('gives each member whole key slots, every lane of each, and plain topics as usual', () => {
    const assignment = assignWithLanes('range', members(['a', 'b']), topics, new Map());
    // Three slots (6 partitions / 2 lanes): slot s is partitions s and s + 3.
    expect(partitionsOf(assignment, 'a', 'jobs')).toEqual([0, 1, 3, 4]);
    expect(partitionsOf(assignment, 'b', 'jobs')).toEqual([2, 5]);
    expect([...partitionsOf(assignment, 'a', 'plain'), ...partitionsOf(assignment, 'b', 'plain')].sort()).toEqual([0, 1]);
  });

  it('keeps a sticky member’s slots, every lane of them, when another joins', () => {
    const first = assignWithLanes('sticky', members(['a'], ['jobs']), topics, new Map());
    expect(partitionsOf(first, 'a', 'jobs')).toEqual([0, 1, 2, 3, 4, 5]);
    const second = assignWithLanes('sticky', members(['a', 'b'], ['jobs']), topics, first);
    const kept = partitionsOf(second, 'a', 'jobs');
    const moved = partitionsOf(second, 'b', 'jobs');
    expect([...kept, ...moved].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5]);
    // Whole slots moved: a partition and its other lane are always with the same member.
    for (const owned of [kept, moved]) for (const partition of owned) expect(owned).toContain((partition + 3) % 6);
    expect(moved.length).toBeGreaterThan(0);
  });
});

import { describe, expect, it } from 'vitest';
import { startCoordinator } from './fakes.js';

const partitionsOf = (assignment: ReadonlyArray<{ partition: number }>) => assignment.map((tp) => tp.partition);

describe('membership on fake time', () => {
  it('expires a silent member after its session timeout and gives its partitions to the others, not before', async () => {
    const { clock, log, coordinator } = await startCoordinator({ sessionTimeoutMs: 1000 });
    log.createTopic('t', 4);
    await coordinator.join('g', 'a', { topics: ['t'] });
    await coordinator.join('g', 'b', { topics: ['t'] });
    expect(partitionsOf((await coordinator.heartbeat('b')).assignment)).toEqual([2, 3]);

    await clock.advance(900);
    coordinator.heartbeat('a');
    await clock.advance(100); // b has been silent for exactly its session timeout: not yet over it
    expect([...coordinator.group('g').members.keys()]).toEqual(['a', 'b']);

    await clock.advance(200);
    expect([...coordinator.group('g').members.keys()]).toEqual(['a']);
    expect(partitionsOf((await coordinator.heartbeat('a')).assignment)).toEqual([0, 1, 2, 3]);
    await expect(coordinator.heartbeat('b')).rejects.toMatchObject({ code: 'unknown-member' });
  });

  it('keeps a member that heartbeats just before each timeout', async () => {
    const { clock, log, coordinator } = await startCoordinator({ sessionTimeoutMs: 1000 });
    log.createTopic('t', 2);
    await coordinator.join('g', 'steady', { topics: ['t'] });
    for (let beat = 0; beat < 5; beat++) {
      await clock.advance(950);
      coordinator.heartbeat('steady');
    }
    await clock.advance(950);
    expect(coordinator.group('g').members.has('steady')).toBe(true);
    await clock.advance(250);
    expect(coordinator.group('g').members.has('steady')).toBe(false);
  });

  it('never expires a member held by a live connection; once released, it times out', async () => {
    const { clock, log, coordinator } = await startCoordinator({ sessionTimeoutMs: 1000 });
    log.createTopic('t', 2);
    const binding = await coordinator.connect('g', 'held', { topics: ['t'] }, () => {});
    await clock.advance(10_000);
    expect(coordinator.group('g').members.has('held')).toBe(true);
    expect(binding.assignment).toHaveLength(2);

    binding.release(false);
    await clock.advance(1000);
    expect(coordinator.group('g').members.has('held')).toBe(true);
    await clock.advance(200);
    expect(coordinator.group('g').members.has('held')).toBe(false);
  });

  it('tells a held member of each new assignment, and a clean release leaves at once', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 2);
    const heard: Array<[number, number[]]> = [];
    const binding = await coordinator.connect('g', 'first', { topics: ['t'] }, (generation, assignment) => heard.push([generation, partitionsOf(assignment)]));
    const second = await coordinator.join('g', 'second', { topics: ['t'] });
    expect(heard).toEqual([[second.generation, [0]]]);
    binding.release(true);
    expect(coordinator.group('g').members.has('first')).toBe(false);
    expect((await coordinator.heartbeat('second')).assignment).toHaveLength(2);
  });

  it('refuses a second connection for a member already held, by name or by instance id', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    await coordinator.connect('g', 'same', { topics: ['t'], instanceId: 'box-1' }, () => {});
    await expect(coordinator.connect('g', 'same', { topics: ['t'] }, () => {})).rejects.toMatchObject({ code: 'name-taken' });
    await expect(coordinator.connect('g', 'other', { topics: ['t'], instanceId: 'box-1' }, () => {})).rejects.toMatchObject({ code: 'name-taken' });
  });

  it('removes a dropped dynamic member at once with removeOnDisconnect, but lets a static one come back', async () => {
    const { log, coordinator } = await startCoordinator({}, { removeOnDisconnect: true });
    log.createTopic('t', 2);
    (await coordinator.connect('g', 'dynamic', { topics: ['t'] }, () => {})).release(false);
    expect(coordinator.group('g').members.has('dynamic')).toBe(false);
    (await coordinator.connect('g', 'static', { topics: ['t'], instanceId: 'box' }, () => {})).release(false);
    expect(coordinator.group('g').members.has('static')).toBe(true);
  });

  it('gives a static member that rejoins under a new name its partitions back, without a rebalance', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 4);
    await coordinator.join('g', 'a-1', { topics: ['t'], instanceId: 'instance-a' });
    const b = await coordinator.join('g', 'b-1', { topics: ['t'], instanceId: 'instance-b' });
    const before = coordinator.describe('g');
    const owned = before.members.find((m) => m.member === 'b-1')!.assignment;

    const rejoined = await coordinator.join('g', 'b-2', { topics: ['t'], instanceId: 'instance-b' });
    expect(rejoined.generation).toBe(b.generation);
    expect(rejoined.assignment).toEqual(owned);
    const after = coordinator.describe('g');
    expect(after.generation).toBe(before.generation);
    expect(after.members.map((m) => m.member).sort()).toEqual(['a-1', 'b-2']);
    await expect(coordinator.heartbeat('b-1')).rejects.toMatchObject({ code: 'unknown-member' });
  });

  it('keeps a renamed static member whole: it leaves, heartbeats and is described under its new name only', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 4);
    await coordinator.join('g', 'a-1', { topics: ['t'], instanceId: 'instance-a' });
    await coordinator.join('g', 'b-1', { topics: ['t'] });
    await coordinator.join('g', 'a-2', { topics: ['t'], instanceId: 'instance-a' });
    expect([...coordinator.group('g').members.keys()].sort()).toEqual(['a-2', 'b-1']);
    coordinator.leave('a-2');
    expect([...coordinator.group('g').members.keys()]).toEqual(['b-1']);
    expect(partitionsOf((await coordinator.heartbeat('b-1')).assignment)).toEqual([0, 1, 2, 3]);
  });

  it('refuses a join that would take over a static member held by a live connection', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 2);
    const binding = await coordinator.connect('g', 'live', { instanceId: 'box', topics: ['t'] }, () => {});
    await expect(coordinator.join('g', 'intruder', { instanceId: 'box', topics: ['t'] })).rejects.toMatchObject({ code: 'name-taken' });
    expect(binding.member).toBe('live');
    expect([...coordinator.group('g').members.keys()]).toEqual(['live']);
  });
});

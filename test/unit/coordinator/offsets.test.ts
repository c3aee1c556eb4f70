import { describe, expect, it } from 'vitest';
import { startCoordinator } from './fakes.js';

describe('commits and offsets', () => {
  it('refuses a commit from a stale generation, and one for a partition the member does not own', async () => {
    const { log, store, coordinator } = await startCoordinator();
    log.createTopic('t', 2);
    const first = await coordinator.join('g', 'a', { topics: ['t'] });
    await coordinator.commit('a', [{ topic: 't', partition: 1, offset: 3 }], first.generation);
    expect(store.committed('g', { topic: 't', partition: 1 })).toBe(3);

    const second = await coordinator.join('g', 'b', { topics: ['t'] });
    expect(second.generation).toBe(first.generation + 1);
    await expect(coordinator.commit('a', [{ topic: 't', partition: 0, offset: 4 }], first.generation)).rejects.toMatchObject({ code: 'stale-generation' });
    // Partition 1 went to b in the rebalance.
    await expect(coordinator.commit('a', [{ topic: 't', partition: 1, offset: 4 }], second.generation)).rejects.toMatchObject({ code: 'not-owner' });
    await expect(coordinator.commit('a', [{ topic: 't', partition: 1, offset: 4 }])).rejects.toMatchObject({ code: 'not-owner' });
    expect(store.committed('g', { topic: 't', partition: 1 })).toBe(3);
    await coordinator.commit('b', [{ topic: 't', partition: 1, offset: 4 }], second.generation);
    expect(store.committed('g', { topic: 't', partition: 1 })).toBe(4);
  });

  it('refuses a pull from a stale generation', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 2);
    const first = await coordinator.join('g', 'a', { topics: ['t'] });
    await coordinator.join('g', 'b', { topics: ['t'] });
    await expect(coordinator.pull('a', { generation: first.generation })).rejects.toMatchObject({ code: 'stale-generation' });
  });

  it('commits a polled message by its id, once', async () => {
    const { log, store, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    log.append('t', 0, { value: 'x', messageId: 'm-1' });
    await coordinator.join('g', 'seed', { topics: ['t'] });
    const record = (await coordinator.pull('seed', { maxMessages: 1 })).records[0]!;
    coordinator.rememberPolled('seed', 'm-1', { topic: record.topic, partition: record.partition, offset: record.offset });
    expect(await coordinator.acknowledge('seed', 'm-1')).toEqual({ topic: 't', partition: 0, offset: 0 });
    expect(store.committed('g', { topic: 't', partition: 0 })).toBe(1);
    await expect(coordinator.acknowledge('seed', 'm-1')).rejects.toMatchObject({ code: 'unknown-message' });
  });

  it('auto-commits positions on pull once the interval has passed on the clock', async () => {
    const { clock, log, store, coordinator } = await startCoordinator({ autoCommitIntervalMs: 5000 });
    log.createTopic('t', 1);
    for (let i = 0; i < 3; i++) log.append('t', 0, { value: `v${i}` });
    await coordinator.join('g', 'm', { topics: ['t'] });
    await coordinator.pull('m');
    await clock.advance(4999);
    await coordinator.pull('m');
    expect(store.committed('g', { topic: 't', partition: 0 })).toBeUndefined();
    await clock.advance(1);
    await coordinator.pull('m');
    expect(store.committed('g', { topic: 't', partition: 0 })).toBe(3);
  });

  it('seeks only in owned partitions, and the next pull starts there', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 2);
    for (let i = 0; i < 4; i++) log.append('t', 0, { value: `v${i}` });
    await coordinator.join('g', 'a', { topics: ['t'] });
    await coordinator.join('g', 'b', { topics: ['t'] });
    await expect(coordinator.seek('a', { topic: 't', partition: 1 }, { to: 'earliest' })).rejects.toMatchObject({ code: 'not-owner' });
    expect(await coordinator.seek('a', { topic: 't', partition: 0 }, { to: 'offset', offset: 3 })).toBe(3);
    expect((await coordinator.pull('a')).records.map((r) => r.offset)).toEqual([3]);
  });

  it('resets offsets only for a group without members, and reports lag', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    for (let i = 0; i < 4; i++) log.append('t', 0, { value: `v${i}` });
    await coordinator.join('g', 'a', { topics: ['t'] });
    await expect(coordinator.resetOffsets('g', { to: 'latest' }, 't')).rejects.toMatchObject({ code: 'group-not-empty' });
    coordinator.leave('a');
    expect(await coordinator.resetOffsets('g', { to: 'offset', offset: 1 }, 't')).toEqual([{ topic: 't', partition: 0, offset: 1 }]);
    expect(await coordinator.lag('g')).toEqual([{ topic: 't', partition: 0, offset: 1, committedOffset: 1, logEndOffset: 4, lag: 3 }]);
  });
});

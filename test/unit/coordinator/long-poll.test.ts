import { describe, expect, it } from 'vitest';
import { startCoordinator, track } from './fakes.js';

describe('long polls on fake time', () => {
  it('returns an empty batch once maxWaitMs have passed, not before', async () => {
    const { clock, log, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    await coordinator.join('g', 'm', { topics: ['t'] });
    const pull = track(coordinator.pull('m', { maxWaitMs: 5000 }));
    await clock.advance(4999);
    expect(pull.done).toBe(false);
    await clock.advance(1);
    expect(pull.done).toBe(true);
    expect(pull.value?.records).toEqual([]);
  });

  it('returns as soon as data arrives in an assigned partition', async () => {
    const { clock, log, coordinator } = await startCoordinator();
    log.createTopic('t', 2);
    await coordinator.join('g', 'm', { topics: ['t'] });
    const pull = track(coordinator.pull('m', { maxWaitMs: 5000 }));
    await clock.advance(1000);
    expect(pull.done).toBe(false);
    log.append('t', 1, { value: 'hello', key: 'k', messageId: 'id-1' });
    await clock.flush();
    expect(pull.done).toBe(true);
    expect(clock.now()).toBe(1000);
    expect(pull.value?.records.map((r) => [r.partition, r.offset, r.messageId, r.value.toString()])).toEqual([[1, 0, 'id-1', 'hello']]);
  });

  it('returns as soon as the group rebalances, with the new generation', async () => {
    const { clock, log, coordinator } = await startCoordinator();
    log.createTopic('t', 2);
    const joined = await coordinator.join('g', 'm', { topics: ['t'] });
    const pull = track(coordinator.pull('m', { maxWaitMs: 5000 }));
    await clock.advance(10);
    expect(pull.done).toBe(false);
    await coordinator.join('g', 'n', { topics: ['t'] });
    await clock.flush();
    expect(pull.done).toBe(true);
    expect(pull.value?.generation).toBe(joined.generation + 1);
    expect(pull.value?.assignment).toHaveLength(1);
    expect(pull.value?.records).toEqual([]);
  });

  it('returns what is there at once, from the committed offset, and goes on from where it stopped', async () => {
    const { log, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    for (let i = 0; i < 5; i++) log.append('t', 0, { value: `v${i}` });
    const joined = await coordinator.join('g', 'm', { topics: ['t'] });
    await coordinator.commit('m', [{ topic: 't', partition: 0, offset: 2 }], joined.generation);
    const first = await coordinator.pull('m', { maxMessages: 2, maxWaitMs: 60_000 });
    expect(first.records.map((r) => r.offset)).toEqual([2, 3]);
    const second = await coordinator.pull('m', { maxWaitMs: 60_000 });
    expect(second.records.map((r) => r.offset)).toEqual([4]);
  });

  it('makes a new owner wait for offsets a transaction is committing, then start from them', async () => {
    const { log, store, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    for (let i = 0; i < 5; i++) log.append('t', 0, { value: `v${i}` });
    await coordinator.join('g', 'm', { topics: ['t'] });
    const tp = { topic: 't', partition: 0 };
    // The previous owner's transaction is being decided: its offset is pending.
    const release = store.hold('g', [tp]);
    const pull = track(coordinator.pull('m', { maxWaitMs: 0 }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(pull.done).toBe(false);
    await store.commitForward('g', [{ ...tp, offset: 3 }]);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(pull.done).toBe(true);
    expect(pull.value!.records.map((r) => r.offset)).toEqual([3, 4]);
  });

  it('steps over transaction markers: never pulled as messages, and the position moves past them', async () => {
    const { clock, log, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    log.append('t', 0, { value: 'v0' });
    log.appendMarker('t', 0, 'commit');
    // Auto-commit shows the member's position: it commits it before each pull once 10 ms have passed.
    await coordinator.createGroup('g', { autoCommitIntervalMs: 10 });
    await coordinator.join('g', 'm', { topics: ['t'] });
    const first = await coordinator.pull('m', { maxWaitMs: 0 });
    expect(first.records.map((r) => [r.offset, r.value.toString()])).toEqual([[0, 'v0']]);
    log.append('t', 0, { value: 'v2' });
    log.appendMarker('t', 0, 'abort');
    const second = await coordinator.pull('m', { maxWaitMs: 0 });
    expect(second.records.map((r) => [r.offset, r.value.toString()])).toEqual([[2, 'v2']]);
    // Nothing but a marker left: the pull is empty, and the position is past the marker (a reader
    // that stopped before it would read it again and again, and lag would never reach 0).
    const third = await coordinator.pull('m', { maxWaitMs: 0 });
    expect(third.records).toEqual([]);
    await clock.advance(10);
    await coordinator.pull('m', { maxWaitMs: 0 });
    expect((await coordinator.lag('g'))[0]).toMatchObject({ offset: 4, logEndOffset: 4, lag: 0 });
  });

  it('answers a waiting long poll at once when the coordinator stops (the broker shuts down)', async () => {
    const { clock, log, coordinator } = await startCoordinator();
    log.createTopic('t', 1);
    await coordinator.join('g', 'm', { topics: ['t'] });
    const pull = track(coordinator.pull('m', { maxWaitMs: 60_000 }));
    await clock.advance(10);
    expect(pull.done).toBe(false);
    coordinator.stop();
    await clock.flush();
    expect(pull.done).toBe(true);
    expect(clock.now()).toBe(10);
    expect(pull.value?.records).toEqual([]);
  });
});

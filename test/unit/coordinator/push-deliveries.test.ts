import { describe, expect, it } from 'vitest';
import { OffsetStore, type PushDeliveries } from '../../../src/coordinator/index.js';
import { startCoordinator } from './fakes.js';

/** A coordinator with one push member owning partition 0 of `jobs`, which holds `count` messages. */
async function pushSetup(count: number, options: { autoAck?: boolean; maxDeliveries?: number } = {}) {
  const setup = await startCoordinator({ maxDeliveries: options.maxDeliveries ?? 3 });
  setup.log.createTopic('jobs', 1);
  for (let i = 0; i < count; i++) {
    setup.log.append('jobs', 0, { value: `body ${i}`, key: `k${i}`, messageId: `m${i}`, timestamp: 100 + i, headers: [['trace', `t${i}`]] });
  }
  const binding = await setup.coordinator.connect('workers', 'w', { topics: ['jobs'] }, () => {});
  const deliveries = setup.coordinator.pushDeliveries(binding, 'jobs', options.autoAck ?? false);
  deliveries.partitionAssigned(0);
  const records = setup.log.records('jobs', 0);
  const committed = () => setup.store.committed('workers', { topic: 'jobs', partition: 0 });
  /** Delivers a message as the subscription would; returns its delivery count (failures before, plus this one). */
  const deliver = (offset: number, to: PushDeliveries = deliveries): number => {
    const verdict = to.verdict(0, offset);
    if (verdict.action !== 'deliver') throw new Error(`offset ${offset} is not to be delivered: ${verdict.action}`);
    to.delivered(0, offset);
    return verdict.failures + 1;
  };
  /** Another member's subscription to the same partition (after a rebalance or a reconnect). */
  const nextMember = async (name: string): Promise<PushDeliveries> => {
    const memberBinding = await setup.coordinator.connect('workers', name, { topics: ['jobs'] }, () => {});
    const next = setup.coordinator.pushDeliveries(memberBinding, 'jobs', false);
    next.partitionAssigned(0);
    bindings.set(next, memberBinding);
    return next;
  };
  const bindings = new Map([[deliveries, binding]]);
  /** The member's connection drops, and the member is gone (its session timed out): the next one owns the partition. */
  const drop = (member: PushDeliveries): void => {
    member.close(false);
    bindings.get(member)!.release(true);
  };
  return { ...setup, deliveries, records, committed, deliver, nextMember, drop };
}

describe('push delivery bookkeeping', () => {
  it('commits the lowest unacknowledged offset, else the highest delivered plus one', async () => {
    const { clock, deliveries, committed, deliver } = await pushSetup(4);
    for (let offset = 0; offset < 4; offset++) deliver(offset);
    deliveries.acknowledged(0, 2);
    await clock.flush();
    expect(committed()).toBe(0);
    deliveries.acknowledged(0, 0);
    await clock.flush();
    expect(committed()).toBe(1);
    deliveries.acknowledged(0, 1);
    await clock.flush();
    expect(committed()).toBe(3);
    deliveries.acknowledged(0, 3);
    await clock.flush();
    expect(committed()).toBe(4);
  });

  it('batches the commits of one event-loop turn into one', async () => {
    const { clock, store, deliveries, deliver } = await pushSetup(3);
    const writes: number[] = [];
    const commit = store.commit.bind(store);
    store.commit = async (group, entries) => {
      writes.push(...entries.map((e) => e.offset));
      await commit(group, entries);
    };
    for (let offset = 0; offset < 3; offset++) deliver(offset);
    for (let offset = 0; offset < 3; offset++) deliveries.acknowledged(0, offset);
    await clock.flush();
    expect(writes).toEqual([3]);
  });

  it('commits what was delivered in auto ack mode, without counting deliveries', async () => {
    const { clock, committed, deliver } = await pushSetup(2, { autoAck: true });
    expect(deliver(0)).toBe(1);
    expect(deliver(0)).toBe(1);
    deliver(1);
    await clock.flush();
    expect(committed()).toBe(2);
  });

  it('redelivers a NACKed message until maxDeliveries, then dead-letters it with the reason and origin in headers', async () => {
    const { clock, log, deliveries, records, committed, deliver } = await pushSetup(3, { maxDeliveries: 3 });
    deliver(0);
    deliver(1);
    deliver(2);
    deliveries.acknowledged(0, 0);
    deliveries.acknowledged(0, 2);
    let redeliveries = 0;
    for (let attempt = 1; attempt <= 2; attempt++) {
      deliveries.rejected(0, records[1]!, () => redeliveries++);
      await clock.flush();
      expect(redeliveries).toBe(attempt);
      expect(deliver(1)).toBe(attempt + 1);
    }
    await clock.flush();
    expect(committed()).toBe(1);
    expect(log.records('jobs.DLQ', 0)).toEqual([]);

    deliveries.rejected(0, records[1]!, () => redeliveries++);
    await clock.flush();
    expect(redeliveries).toBe(2);
    const dead = log.records('jobs.DLQ', 0)[0]!;
    expect(dead).toMatchObject({ key: 'k1', messageId: 'm1' });
    expect(dead.value.toString()).toBe('body 1');
    expect(dead.headers).toEqual([
      ['trace', 't1'],
      ['x-dead-letter-reason', 'delivered 3 times to group workers without being acknowledged (NACKed, or its consumer gone)'],
      ['x-delivery-count', '3'],
      ['x-original-topic', 'jobs'],
      ['x-original-partition', '0'],
      ['x-original-offset', '1'],
      ['x-consumer-group', 'workers'],
    ]);
    // The dead letter counts as handled: the group moves past it.
    expect(committed()).toBe(3);
  });

  it('counts the unsettled messages of a dropped connection as failed deliveries, for the group: after maxDeliveries drops the next member dead-letters the message', async () => {
    const { clock, log, offsetLog, deliveries, records, deliver, nextMember, committed, drop } = await pushSetup(2, { maxDeliveries: 2 });
    expect(deliver(0)).toBe(1);
    expect(deliver(1)).toBe(1);
    deliveries.acknowledged(0, 1);
    // The consumer crashed on offset 0: its connection dropped with it unsettled.
    drop(deliveries);
    await clock.flush();
    const second = await nextMember('w2');
    expect(deliver(0, second)).toBe(2);
    drop(second);
    await clock.flush();
    const third = await nextMember('w3');
    expect(third.verdict(0, 0)).toEqual({ action: 'dead-letter', failures: 2 });
    third.delivered(0, 0);
    third.deadLetter(0, records[0]!, 2, () => {});
    await clock.flush();
    expect(log.records('jobs.DLQ', 0).map((r) => r.messageId)).toEqual(['m0']);
    // Past the dead letter (offset 1 is this member's to deliver next).
    expect(committed()).toBe(1);

    // Once the group committed past it, its count is done with, after a restart too.
    const reloaded = new OffsetStore(offsetLog);
    await reloaded.load();
    expect(reloaded.deliveries.partition('workers', { topic: 'jobs', partition: 0 }).size).toBe(0);
  });

  it('never delivers a dead-lettered message again, and a reload keeps the counts above the committed offset', async () => {
    const { clock, offsetLog, deliveries, records, deliver, nextMember, drop } = await pushSetup(3, { maxDeliveries: 1 });
    deliver(0);
    deliver(1);
    deliveries.rejected(0, records[1]!, () => {});
    await clock.flush();
    // Offset 1 is dead-lettered, offset 0 still unacknowledged: the committed offset stays at 0.
    drop(deliveries);
    await clock.flush();
    const reloaded = new OffsetStore(offsetLog);
    await reloaded.load();
    const counts = reloaded.deliveries.partition('workers', { topic: 'jobs', partition: 0 });
    expect([...counts].sort()).toEqual([
      [0, 1],
      [1, -1],
    ]);
    const next = await nextMember('w2');
    expect(next.verdict(0, 1)).toEqual({ action: 'skip' });
    expect(next.verdict(0, 0)).toEqual({ action: 'dead-letter', failures: 1 });
    expect(next.verdict(0, 2)).toEqual({ action: 'deliver', failures: 0 });
  });

  it('replaces the dead-letter headers of a message that was dead-lettered before', async () => {
    const { clock, log, deliveries, deliver } = await pushSetup(0, { maxDeliveries: 1 });
    log.append('jobs', 0, {
      value: 'again',
      headers: [
        ['x-original-topic', 'older'],
        ['x-dead-letter-reason', 'old'],
        ['keep', 'yes'],
      ],
    });
    deliver(0);
    deliveries.rejected(0, log.records('jobs', 0)[0]!, () => {});
    await clock.flush();
    const dead = log.records('jobs.DLQ', 0)[0]!;
    expect(dead.headers.filter(([name]) => name === 'x-original-topic')).toEqual([['x-original-topic', 'jobs']]);
    expect(dead.headers[0]).toEqual(['keep', 'yes']);
  });

  it('counts a NACKed message once when the connection drops before it goes out again, and a fenced return not at all', async () => {
    const { clock, store, deliveries, records, deliver } = await pushSetup(2, { maxDeliveries: 5 });
    deliver(0);
    deliver(1);
    deliveries.rejected(0, records[0]!, () => {});
    // Returned by a fenced transaction: delivered again, not the consumer's failure.
    deliveries.rejected(0, records[1]!, () => {}, false);
    await clock.flush();
    deliveries.close(false);
    await clock.flush();
    const counts = store.deliveries.partition('workers', { topic: 'jobs', partition: 0 });
    // Offset 0 counted by its NACK only; offset 1, the oldest not counted yet, by the drop.
    expect([...counts].sort()).toEqual([
      [0, 1],
      [1, 1],
    ]);
  });

  it('counts, on a drop, the oldest message no COMMIT being stored settles: the one the processor was on', async () => {
    const { clock, store, deliveries, deliver } = await pushSetup(2, { maxDeliveries: 5 });
    deliver(0);
    deliver(1);
    // The processor sent COMMIT for offset 0, then crashed on offset 1 while the COMMIT was stored.
    const plan = deliveries.inTransaction([{ partition: 0, offset: 0 }]);
    deliveries.close(false);
    await clock.flush();
    plan.ended(true);
    expect([...store.deliveries.partition('workers', { topic: 'jobs', partition: 0 })]).toEqual([[1, 1]]);
  });

  it('drops commits still waiting when the subscription closes', async () => {
    const { clock, deliveries, committed, deliver } = await pushSetup(1);
    deliver(0);
    deliveries.acknowledged(0, 0);
    deliveries.close(true);
    await clock.flush();
    expect(committed()).toBeUndefined();
  });
});

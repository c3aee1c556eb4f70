import { describe, expect, it } from 'vitest';
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
  /** Delivers a message as the subscription would: counted, then sent. */
  const deliver = (offset: number): number => {
    const count = deliveries.delivering(0, offset);
    deliveries.delivered(0, offset);
    return count;
  };
  return { ...setup, deliveries, records, committed, deliver };
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
      ['x-dead-letter-reason', 'rejected (NACK) 3 times by group workers'],
      ['x-delivery-count', '3'],
      ['x-original-topic', 'jobs'],
      ['x-original-partition', '0'],
      ['x-original-offset', '1'],
      ['x-consumer-group', 'workers'],
    ]);
    // The dead letter counts as handled: the group moves past it.
    expect(committed()).toBe(3);
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

  it('drops commits still waiting when the subscription closes', async () => {
    const { clock, deliveries, committed, deliver } = await pushSetup(1);
    deliver(0);
    deliveries.acknowledged(0, 0);
    deliveries.close();
    await clock.flush();
    expect(committed()).toBeUndefined();
  });
});

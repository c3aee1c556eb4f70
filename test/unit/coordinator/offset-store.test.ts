import { describe, expect, it, vi } from 'vitest';
import { OffsetStore, type OffsetLog } from '../../../src/coordinator/index.js';
import { RillError } from '../../../src/errors/index.js';
import { FakeClock, memoryOffsetLog } from './fakes.js';

describe('OffsetStore', () => {
  it('replays the last entry per key, groups and offsets alike', async () => {
    const log = memoryOffsetLog();
    const store = new OffsetStore(log);
    await store.saveGroup('g', { assignor: 'range' });
    await store.commit('g', [{ topic: 't', partition: 0, offset: 5 }]);
    await store.commit('g', [
      { topic: 't', partition: 0, offset: 9 },
      { topic: 't', partition: 1, offset: 2 },
    ]);
    const replayed = new OffsetStore(log);
    await replayed.load();
    expect(replayed.committed('g', { topic: 't', partition: 0 })).toBe(9);
    expect(replayed.groupOffsets('g')).toEqual([
      { topic: 't', partition: 0, offset: 9 },
      { topic: 't', partition: 1, offset: 2 },
    ]);
    expect(replayed.savedGroups().get('g')).toEqual({ assignor: 'range' });
  });

  it('commits transactional offsets only forward, in the order they are issued, whatever order the writes finish in', async () => {
    const log = memoryOffsetLog();
    const store = new OffsetStore(log);
    // Two transactions decided one after the other write their offsets, the later one's first.
    const later = store.commitForward('g', [{ topic: 't', partition: 0, offset: 10 }]);
    const earlier = store.commitForward('g', [{ topic: 't', partition: 0, offset: 8 }]);
    await Promise.all([later, earlier]);
    expect(store.committed('g', { topic: 't', partition: 0 })).toBe(10);
    const replayed = new OffsetStore(log);
    await replayed.load();
    expect(replayed.committed('g', { topic: 't', partition: 0 })).toBe(10);
  });

  it('makes readers of a partition a transaction is committing wait until it is over', async () => {
    const store = new OffsetStore(memoryOffsetLog());
    const tp = { topic: 't', partition: 0 };
    expect(store.whenSettled('g', tp)).toBeUndefined();
    const release = store.hold('g', [tp]);
    const releaseAgain = store.hold('g', [tp]);
    let settled = false;
    void store.whenSettled('g', tp)!.then(() => (settled = true));
    release();
    await Promise.resolve();
    expect(settled).toBe(false);
    releaseAgain();
    await vi.waitFor(() => expect(settled).toBe(true));
    expect(store.whenSettled('g', tp)).toBeUndefined();
    expect(store.whenSettled('other', tp)).toBeUndefined();
  });

  it('writes versioned records, stamped by its clock', async () => {
    const log = memoryOffsetLog();
    const clock = new FakeClock();
    await clock.advance(1234);
    const store = new OffsetStore(log, { clock });
    await store.saveGroup('g', { assignor: 'sticky', maxDeliveries: 4 });
    await store.commit('g', [{ topic: 't', partition: 0, offset: 7 }]);
    expect(log.entries).toEqual([
      ['group/g', JSON.stringify({ v: 1, assignor: 'sticky', maxDeliveries: 4 })],
      ['offset/g/t/0', JSON.stringify({ v: 1, offset: 7, committedAt: 1234 })],
    ]);
  });

  it('loads the records written before versions existed', async () => {
    const log = memoryOffsetLog();
    log.entries.push(
      [
        'group/old',
        JSON.stringify({
          assignor: 'roundrobin',
          sessionTimeoutMs: 10_000,
          resetPolicy: 'earliest',
          autoCommitIntervalMs: 0,
          maxDeliveries: 5,
          deadLetterSuffix: '.dead',
        }),
      ],
      ['offset/old/t/1', JSON.stringify({ offset: 12, committedAt: 1_700_000_000_000 })],
    );
    const store = new OffsetStore(log);
    await store.load();
    expect(store.committed('old', { topic: 't', partition: 1 })).toBe(12);
    expect(store.savedGroups().get('old')).toEqual({
      assignor: 'roundrobin',
      sessionTimeoutMs: 10_000,
      resetPolicy: 'earliest',
      autoCommitIntervalMs: 0,
      maxDeliveries: 5,
      deadLetterSuffix: '.dead',
    });
  });

  it('skips a record that fails its schema with a warning, keeping the value before it', async () => {
    const log = memoryOffsetLog();
    log.entries.push(
      ['offset/g/t/0', JSON.stringify({ v: 1, offset: 3 })],
      ['offset/g/t/0', JSON.stringify({ v: 1, offset: -1 })],
      ['offset/g/t/0', '{not json'],
      ['offset/g/t/0', JSON.stringify({ v: 99, offset: 8 })],
      ['group/g', JSON.stringify({ v: 1, assignor: 'range' })],
      ['group/g', JSON.stringify({ v: 1, assignor: 'fastest' })],
      ['offset/g/t/1', JSON.stringify({ v: 1, offset: 4 })],
    );
    const warn = vi.fn();
    const store = new OffsetStore(log, { logger: { warn, error: vi.fn() } });
    await store.load();
    expect(store.committed('g', { topic: 't', partition: 0 })).toBe(3);
    expect(store.committed('g', { topic: 't', partition: 1 })).toBe(4);
    expect(store.savedGroups().get('g')).toEqual({ assignor: 'range' });
    expect(warn).toHaveBeenCalledTimes(4);
    expect(warn.mock.calls.map(([fields]) => fields.key)).toEqual(['offset/g/t/0', 'offset/g/t/0', 'offset/g/t/0', 'group/g']);
  });

  it('keeps what it read before a damaged batch of the log, says so, and lets the broker start', async () => {
    const damaged: OffsetLog = {
      write: async () => 0,
      replay: async (visit) => {
        visit('offset/g/t/0', JSON.stringify({ v: 1, offset: 7 }), 0);
        throw new RillError('storage-error', 'the stored batch at offset 1 is damaged');
      },
    };
    const error = vi.fn();
    const store = new OffsetStore(damaged, { logger: { warn: vi.fn(), error } });
    await store.load();
    expect(store.committed('g', { topic: 't', partition: 0 })).toBe(7);
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0]![1])).toMatch(/damaged batch of __consumer_offsets/);
  });

  it('forgets a key at its tombstone', async () => {
    const log = memoryOffsetLog();
    const store = new OffsetStore(log);
    await store.commit('g', [{ topic: 't', partition: 0, offset: 1 }]);
    await log.write('offset/g/t/0', null);
    const reloaded = new OffsetStore(log);
    await reloaded.load();
    expect(reloaded.committed('g', { topic: 't', partition: 0 })).toBeUndefined();
  });

  describe('shared by the nodes of a cluster (catchUp)', () => {
    /** A log two nodes write: this node's writes take their place when issued and are answered when `answer` is called. */
    function sharedLog() {
      const log = memoryOffsetLog();
      const answers: Array<() => void> = [];
      const slow: OffsetLog = {
        write: (key, value) =>
          new Promise((resolve) => {
            const at = log.entries.push([key, value]) - 1;
            answers.push(() => resolve(at));
          }),
        replay: log.replay,
      };
      const otherNode = (group: string, offset: number) => log.entries.push([`offset/${group}/t/0`, JSON.stringify({ v: 1, offset, committedAt: 0 })]);
      return { slow, answers, otherNode };
    }
    const tp = { topic: 't', partition: 0 };

    it("takes another node's commit made after its own was issued, even when its own is answered last", async () => {
      const { slow, answers, otherNode } = sharedLog();
      const store = new OffsetStore(slow, { shared: true });
      await store.load();
      const mine = store.commit('g', [{ ...tp, offset: 5 }]);
      // The partition moved: its new owner, on another node, commits after.
      otherNode('g', 9);
      await store.catchUp();
      answers.shift()!();
      await mine;
      expect(store.committed('g', tp)).toBe(9);
    });

    it("keeps its own commit over another node's made before it", async () => {
      const { slow, answers, otherNode } = sharedLog();
      const store = new OffsetStore(slow, { shared: true });
      await store.load();
      otherNode('g', 3);
      const mine = store.commit('g', [{ ...tp, offset: 5 }]);
      await store.catchUp();
      answers.shift()!();
      await mine;
      await store.catchUp();
      expect(store.committed('g', tp)).toBe(5);
    });

    it('keeps the newest of its own two commits over an older one of another node, whichever of its own is answered first', async () => {
      const { slow, answers, otherNode } = sharedLog();
      const store = new OffsetStore(slow, { shared: true });
      await store.load();
      const older = store.commit('g', [{ ...tp, offset: 5 }]);
      otherNode('g', 7);
      const newer = store.commit('g', [{ ...tp, offset: 11 }]);
      await store.catchUp();
      answers[1]!();
      await newer;
      answers[0]!();
      await older;
      expect(store.committed('g', tp)).toBe(11);
    });

    it('reads nothing more when not shared', async () => {
      const { slow, otherNode } = sharedLog();
      const store = new OffsetStore(slow);
      await store.load();
      otherNode('g', 9);
      await store.catchUp();
      expect(store.committed('g', tp)).toBeUndefined();
    });
  });
});

import { describe, expect, it } from 'vitest';
import { OffsetStore, type OffsetLog } from '../../src/coordinator/index.js';

function memoryLog(): OffsetLog & { entries: Array<[string, string | null]> } {
  const entries: Array<[string, string | null]> = [];
  return {
    entries,
    write: async (key, value) => void entries.push([key, value]),
    replay: async (visit) => {
      for (const [key, value] of entries) visit(key, value);
    },
  };
}

describe('OffsetStore', () => {
  it('replays the last entry per key, groups and offsets alike', async () => {
    const log = memoryLog();
    const store = new OffsetStore(log);
    await store.saveGroup('g', { assignor: 'range' });
    await store.commit('g', [{ topic: 't', partition: 0, offset: 5 }]);
    await store.commit('g', [{ topic: 't', partition: 0, offset: 9 }, { topic: 't', partition: 1, offset: 2 }]);
    const replayed = new OffsetStore(log);
    await replayed.load();
    expect(replayed.committed('g', { topic: 't', partition: 0 })).toBe(9);
    expect(replayed.groupOffsets('g')).toEqual([{ topic: 't', partition: 0, offset: 9 }, { topic: 't', partition: 1, offset: 2 }]);
    expect(JSON.parse(replayed.savedGroups().get('g')!)).toEqual({ assignor: 'range' });
  });

  it('checkpoints every live entry, so that retention of old records loses nothing', async () => {
    const log = memoryLog();
    const store = new OffsetStore(log);
    await store.saveGroup('g', {});
    await store.commit('g', [{ topic: 'idle', partition: 3, offset: 42 }]);
    expect(await store.checkpoint()).toBe(2);
    const afterRetention = memoryLog();
    afterRetention.entries.push(...log.entries.slice(2));
    const reloaded = new OffsetStore(afterRetention);
    await reloaded.load();
    expect(reloaded.committed('g', { topic: 'idle', partition: 3 })).toBe(42);
    expect(reloaded.savedGroups().has('g')).toBe(true);
  });
});

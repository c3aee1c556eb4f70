import { describe, expect, it } from 'vitest';
import { RestartBackoff } from '../../../src/broker/front/restart-backoff.js';

function fakeClock() {
  const clock = { at: 5_000_000, now: () => clock.at };
  return clock;
}

describe('RestartBackoff', () => {
  it('doubles the wait with each restart in a row, up to the maximum', () => {
    const clock = fakeClock();
    const backoff = new RestartBackoff({ restartBackoffMs: 100, restartBackoffMaxMs: 1000 }, clock.now);
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      waits.push(backoff.died());
      clock.at += waits.at(-1)!;
      backoff.up();
      clock.at += 50; // dies again soon after each restart
    }
    expect(waits).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoff.restartsInARow).toBe(6);
    expect(backoff.lastBackoffMs).toBe(1000);
  });

  it('starts again from the first wait once the worker has stayed up for 10 times its last wait', () => {
    const clock = fakeClock();
    const backoff = new RestartBackoff({ restartBackoffMs: 100, restartBackoffMaxMs: 30_000 }, clock.now);
    expect(backoff.died()).toBe(100);
    backoff.up();
    expect(backoff.died()).toBe(200);
    backoff.up();
    clock.at += 1_999; // stable after 10 x 200 ms
    expect(backoff.died()).toBe(400);
    backoff.up();
    clock.at += 4_000;
    expect(backoff.died()).toBe(100);
    expect(backoff.restartsInARow).toBe(1);
  });

  it('needs a minute at most to count as stable, and a dead worker is never stable', () => {
    const clock = fakeClock();
    const backoff = new RestartBackoff({ restartBackoffMs: 10_000, restartBackoffMaxMs: 30_000 }, clock.now);
    backoff.died();
    backoff.up();
    backoff.died();
    backoff.up();
    expect(backoff.died()).toBe(30_000);
    // Down for longer than any stable period: still a restart in a row.
    clock.at += 120_000;
    expect(backoff.died()).toBe(30_000);
    backoff.up();
    clock.at += 60_000; // 10 x 30 s would be 5 minutes; a minute is enough
    expect(backoff.died()).toBe(10_000);
  });

  it('is crash-looping from the third restart in a row until the worker has been stable', () => {
    const clock = fakeClock();
    const backoff = new RestartBackoff({ restartBackoffMs: 100, restartBackoffMaxMs: 400 }, clock.now);
    expect(backoff.crashLooping).toBe(false);
    backoff.died();
    backoff.up();
    backoff.died();
    backoff.up();
    expect(backoff.crashLooping).toBe(false);
    backoff.died();
    expect(backoff.crashLooping).toBe(true);
    backoff.up();
    clock.at += 3_999;
    expect(backoff.crashLooping).toBe(true);
    clock.at += 1;
    expect(backoff.crashLooping).toBe(false);
  });

  it('is crash-looping after 10 restarts within a minute, even when each came after a stable period', () => {
    const clock = fakeClock();
    const backoff = new RestartBackoff({ restartBackoffMs: 100, restartBackoffMaxMs: 400 }, clock.now);
    for (let i = 0; i < 10; i++) {
      expect(backoff.crashLooping, `after ${i} restarts`).toBe(false);
      expect(backoff.died()).toBe(100);
      backoff.up();
      clock.at += 1_000 + 1; // stable (10 x 100 ms) each time
    }
    expect(backoff.crashLooping).toBe(true);
    clock.at += 60_000;
    expect(backoff.crashLooping).toBe(false);
  });
});

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Heartbeats } from '../../../src/gateway/stomp/heartbeats.js';

/**
 * Heartbeats over a recorded socket, on vitest's fake timers (performance.now() is faked too).
 *
 * A disconnect is decided by a timer and confirmed in a setImmediate (after the I/O poll, so that
 * bytes waiting in the socket count). The fake clock runs an immediate set during a tick 1 ms
 * later, so on fake time a client is cut off at interval × grace + 1 ms: the tests check "not
 * at interval × grace - 1, already decided at interval × grace (the confirmation is pending), done 1 ms later".
 */
function harness() {
  const beats: number[] = [];
  const silences: Array<{ at: number; silentForMs: number }> = [];
  const state = { paused: false };
  const heartbeats = new Heartbeats(
    (bytes) => {
      expect(bytes.toString()).toBe('\n');
      beats.push(performance.now());
    },
    () => state.paused,
    (silentForMs) => silences.push({ at: performance.now(), silentForMs }),
  );
  return { heartbeats, beats, silences, state };
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Heartbeats, outgoing', () => {
  it('writes an EOL exactly when the silence since CONNECTED reaches the interval, then every interval', () => {
    const { heartbeats, beats } = harness();
    const start = performance.now();
    heartbeats.start(500, 0, 1.5);
    vi.advanceTimersByTime(499);
    expect(beats).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(beats).toEqual([start + 500]);
    vi.advanceTimersByTime(499);
    expect(beats).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(beats).toEqual([start + 500, start + 1000]);
    vi.advanceTimersByTime(2000);
    expect(beats.map((at) => at - start)).toEqual([500, 1000, 1500, 2000, 2500, 3000]);
    heartbeats.stop();
  });

  it('counts the silence from the last write: writes put the beat off, and it comes one interval after the last', () => {
    const { heartbeats, beats } = harness();
    const start = performance.now();
    heartbeats.start(500, 0, 1.5);
    // A frame every 200 ms for 2 s: never silent for 500 ms, so no beat.
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(200);
      heartbeats.sent();
    }
    expect(beats).toEqual([]);
    // The last frame went out at 2000: the beat is due at 2500, not a tick later.
    vi.advanceTimersByTime(499);
    expect(beats).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(beats).toEqual([start + 2500]);
    // A write just before the next beat was due moves it a whole interval on.
    vi.advanceTimersByTime(450);
    heartbeats.sent();
    vi.advanceTimersByTime(499);
    expect(beats).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(beats).toEqual([start + 2500, start + 3450]);
    heartbeats.stop();
  });

  it('keeps one timer per direction however many frames are written', () => {
    const { heartbeats } = harness();
    heartbeats.start(500, 1000, 1.5);
    expect(vi.getTimerCount()).toBe(2);
    for (let i = 0; i < 1000; i++) heartbeats.sent();
    for (let i = 0; i < 1000; i++) heartbeats.received();
    expect(vi.getTimerCount()).toBe(2);
    heartbeats.stop();
  });

  it('waits intervals longer than a timer can hold instead of firing every millisecond', () => {
    const { heartbeats, beats, silences } = harness();
    const start = performance.now();
    const interval = 2 ** 31 + 5;
    heartbeats.start(interval, interval, 1.5);
    vi.advanceTimersByTime(1000);
    expect(beats).toEqual([]);
    vi.advanceTimersByTime(interval - 1001);
    expect(beats).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(beats).toEqual([start + interval]);
    expect(silences).toEqual([]);
    heartbeats.stop();
  });
});

describe('Heartbeats, incoming', () => {
  it('disconnects a client once it has been silent for interval × grace since CONNECTED, and not before', () => {
    const { heartbeats, silences } = harness();
    const start = performance.now();
    heartbeats.start(0, 1000, 1.5);
    vi.advanceTimersByTime(1499);
    expect(silences).toEqual([]);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1);
    // The timer decided; only the confirmation (an immediate) is pending, and runs 1 ms later on fake time.
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1);
    expect(silences).toEqual([{ at: start + 1501, silentForMs: 1501 }]);
    // Disconnected once, and everything stopped.
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(silences).toHaveLength(1);
  });

  it('counts the silence from the last byte received', () => {
    const { heartbeats, silences } = harness();
    const start = performance.now();
    heartbeats.start(0, 1000, 1.5);
    // Heard every 1400 ms: always just inside the limit.
    for (let i = 0; i < 5; i++) {
      vi.advanceTimersByTime(1400);
      heartbeats.received();
    }
    expect(silences).toEqual([]);
    // Last heard at 7000: cut off at 8500 (+1 ms of fake immediate).
    vi.advanceTimersByTime(1499);
    expect(silences).toEqual([]);
    vi.advanceTimersByTime(2);
    expect(silences).toEqual([{ at: start + 8501, silentForMs: 1501 }]);
  });

  it('does not count paused reading as silence, and counts again once reading resumes', () => {
    const { heartbeats, silences, state } = harness();
    heartbeats.start(0, 1000, 1.5);
    vi.advanceTimersByTime(1000);
    state.paused = true;
    vi.advanceTimersByTime(20_000);
    expect(silences).toEqual([]);
    state.paused = false;
    // Silent again from now on: cut off within interval × grace (+1 ms of fake immediate).
    vi.advanceTimersByTime(1501);
    expect(silences).toHaveLength(1);
  });

  it('lets bytes already waiting in the socket count before it disconnects', () => {
    const { heartbeats, silences } = harness();
    heartbeats.start(0, 1000, 1.5);
    vi.advanceTimersByTime(1499);
    // The check's timer fires; the disconnect waits for the I/O poll that follows it ...
    vi.advanceTimersToNextTimer();
    expect(silences).toEqual([]);
    // ... where the client's heart-beat, waiting in the socket, is read.
    const heard = performance.now();
    heartbeats.received();
    vi.advanceTimersToNextTimer();
    expect(silences).toEqual([]);
    vi.advanceTimersByTime(heard + 1499 - performance.now());
    expect(silences).toEqual([]);
    vi.advanceTimersByTime(2);
    expect(silences).toEqual([{ at: heard + 1501, silentForMs: 1501 }]);
  });
});

describe('Heartbeats.stop', () => {
  it('clears every timer: no beat, no disconnect afterwards', () => {
    const { heartbeats, beats, silences } = harness();
    heartbeats.start(500, 1000, 1.5);
    vi.advanceTimersByTime(600);
    expect(beats).toHaveLength(1);
    heartbeats.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(beats).toHaveLength(1);
    expect(silences).toEqual([]);
  });

  it('clears a pending disconnect, and a write that closes the session ends the beats', () => {
    const pending = harness();
    pending.heartbeats.start(0, 1000, 1.5);
    vi.advanceTimersByTime(1499);
    vi.advanceTimersToNextTimer();
    pending.heartbeats.stop();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10_000);
    expect(pending.silences).toEqual([]);

    let writes = 0;
    const closing: Heartbeats = new Heartbeats(
      () => {
        writes++;
        closing.stop();
      },
      () => false,
      () => {},
    );
    closing.start(500, 0, 1.5);
    vi.advanceTimersByTime(500);
    expect(writes).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('start() again replaces the previous timers', () => {
    const { heartbeats, beats } = harness();
    heartbeats.start(500, 1000, 1.5);
    heartbeats.start(500, 1000, 1.5);
    expect(vi.getTimerCount()).toBe(2);
    vi.advanceTimersByTime(500);
    expect(beats).toHaveLength(1);
    heartbeats.stop();
  });
});

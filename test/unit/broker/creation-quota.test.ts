import { describe, expect, it } from 'vitest';
import { CreationQuota } from '../../../src/broker/index.js';
import { RillError } from '../../../src/errors/index.js';

/** A clock the test moves by hand. */
function fakeClock(start = 1_000_000) {
  const clock = { at: start, now: () => clock.at };
  return clock;
}

function refusal(run: () => void): RillError | null {
  try {
    run();
  } catch (error) {
    if (error instanceof RillError) return error;
    throw error;
  }
  return null;
}

describe('CreationQuota', () => {
  it('allows a burst of the per-minute amount, then refuses with rate-limited naming limits.autoCreatePerMinute', () => {
    const clock = fakeClock();
    const quota = new CreationQuota(5, clock.now);
    expect(quota.available).toBe(5);
    for (let i = 0; i < 5; i++) expect(refusal(() => quota.take(`t${i}`))).toBeNull();
    expect(quota.available).toBe(0);
    const refused = refusal(() => quota.take('t5'));
    expect(refused?.code).toBe('rate-limited');
    expect(refused?.retriable).toBe(true);
    expect(refused?.message).toContain('limits.autoCreatePerMinute (5 a minute)');
    expect(refused?.message).toContain('"t5"');
    // 60 s / 5 = 12 s until the next creation.
    expect(refused?.message).toContain('retry in 12 s');
  });

  it('refills at the per-minute rate, never above the burst', () => {
    const clock = fakeClock();
    const quota = new CreationQuota(6, clock.now);
    for (let i = 0; i < 6; i++) quota.take(`a${i}`);
    clock.at += 9_999; // one token takes 10 s at 6 a minute
    expect(refusal(() => quota.take('early'))?.code).toBe('rate-limited');
    clock.at += 1;
    expect(refusal(() => quota.take('on-time'))).toBeNull();
    expect(refusal(() => quota.take('again'))?.code).toBe('rate-limited');
    clock.at += 10 * 60_000;
    expect(quota.available).toBe(6);
    for (let i = 0; i < 6; i++) quota.take(`b${i}`);
    expect(refusal(() => quota.take('seventh'))?.code).toBe('rate-limited');
  });

  it('does not hold a clock that steps back against the connection, and refuses a quota below 1 a minute', () => {
    const clock = fakeClock();
    const quota = new CreationQuota(2, clock.now);
    quota.take('a');
    clock.at -= 30_000;
    expect(quota.available).toBe(1);
    clock.at += 30_000; // half a minute after the step back: one more token
    expect(quota.available).toBe(2);
    expect(() => new CreationQuota(0)).toThrow(RangeError);
  });

  it('keeps quotas apart: one connection using up its quota leaves another one whole', () => {
    const clock = fakeClock();
    const flooding = new CreationQuota(3, clock.now);
    const other = new CreationQuota(3, clock.now);
    for (let i = 0; i < 3; i++) flooding.take(`f${i}`);
    expect(refusal(() => flooding.take('f3'))?.code).toBe('rate-limited');
    expect(other.available).toBe(3);
  });
});

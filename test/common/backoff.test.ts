import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../common/backoff.js';

describe('backoffDelayMs', () => {
  it('doubles from the base up to the cap without jitter', () => {
    const policy = { baseMs: 500, maxMs: 30_000 };
    expect([1, 2, 3, 4, 7, 8, 50].map((a) => backoffDelayMs(a, policy))).toEqual([
      500, 1000, 2000, 4000, 30_000, 30_000, 30_000,
    ]);
  });

  it('treats attempts below 1 as the first and survives huge attempt numbers', () => {
    const policy = { baseMs: 100, maxMs: 1000 };
    expect(backoffDelayMs(0, policy)).toBe(100);
    expect(backoffDelayMs(-3, policy)).toBe(100);
    expect(backoffDelayMs(1e9, policy)).toBe(1000);
  });

  it('stretches by at most jitterRatio and never shortens', () => {
    const policy = { baseMs: 1000, factor: 3, maxMs: 60_000, jitterRatio: 0.5 };
    expect(backoffDelayMs(2, policy, () => 0)).toBe(3000);
    expect(backoffDelayMs(2, policy, () => 0.999999)).toBe(4500);
    expect(backoffDelayMs(2, policy, () => 7)).toBe(4500);
    expect(backoffDelayMs(2, policy, () => -1)).toBe(3000);
  });
});

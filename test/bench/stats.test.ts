/**
 * The benchmark's pure helpers (bench/stats.ts): nearest-rank percentiles, summaries, ratio
 * verdicts and table layout. No timings are asserted here (rule 9): only arithmetic.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  countOverlapping,
  formatTable,
  median,
  percentile,
  spread,
  summarize,
  verdict,
} from '../../bench/stats.js';

describe('percentile (nearest rank)', () => {
  it('takes the ceil(q·n)-th smallest sample, never an interpolation', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.95)).toBe(95);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile(sorted, 1)).toBe(100);
    expect(percentile(sorted, 0)).toBe(1);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99)).toBe(10);
    expect(percentile([7], 0.5)).toBe(7);
  });

  it('refuses an empty sample and a quantile outside [0, 1]', () => {
    expect(() => percentile([], 0.5)).toThrow(RangeError);
    expect(() => percentile([1], 1.5)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });

  it('is a sample value with at least q·n samples at or below it (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 200 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (values, q) => {
          const sorted = [...values].sort((a, b) => a - b);
          const p = percentile(sorted, q);
          expect(sorted).toContain(p);
          const atOrBelow = sorted.filter((v) => v <= p).length;
          expect(atOrBelow).toBeGreaterThanOrEqual(q * sorted.length);
          const below = sorted.filter((v) => v < p).length;
          expect(below).toBeLessThan(Math.max(1, Math.ceil(q * sorted.length)));
        },
      ),
    );
  });
});

describe('summarize and median', () => {
  it('sorts a copy and reports n, min, p50, p95, p99, max and mean', () => {
    const samples = [5, 1, 4, 2, 3];
    const s = summarize(samples);
    expect(s).toEqual({ n: 5, min: 1, p50: 3, p95: 5, p99: 5, max: 5, mean: 3 });
    expect(samples).toEqual([5, 1, 4, 2, 3]);
    expect(median([10, 30, 20])).toBe(20);
    expect(median([10, 20])).toBe(10);
    expect(() => summarize([])).toThrow(RangeError);
  });
});

describe('verdict', () => {
  it('compares measured/baseline with the limit in the given direction', () => {
    expect(verdict(3, 2, { direction: 'at-most', limit: 1.5 })).toEqual({
      ratio: 1.5,
      pass: true,
      target: '≤ 1.50×',
    });
    expect(verdict(3.1, 2, { direction: 'at-most', limit: 1.5 }).pass).toBe(false);
    expect(verdict(900, 1000, { direction: 'at-least', limit: 1 })).toMatchObject({
      pass: false,
      target: '≥ 1.00×',
    });
    expect(verdict(1000, 1000, { direction: 'at-least', limit: 1 }).pass).toBe(true);
  });

  it('refuses a baseline that is zero, negative or not finite', () => {
    for (const baseline of [0, -1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => verdict(1, baseline, { direction: 'at-most', limit: 1 })).toThrow(RangeError);
  });
});

describe('formatTable', () => {
  it('pads columns, right-aligns numeric columns and left-aligns text', () => {
    const text = formatTable(
      ['name', 'p99', 'result'],
      [
        ['createPayment', '1.25', 'PASS'],
        ['bare', '10.5', 'MISS'],
      ],
    );
    expect(text.split('\n')).toEqual([
      'name            p99  result',
      '-------------  ----  ------',
      'createPayment  1.25  PASS',
      'bare           10.5  MISS',
    ]);
  });
});

describe('countOverlapping', () => {
  it('counts the windows a pause overlaps, touching ends excluded', () => {
    const windows = [
      { start: 0, end: 1 },
      { start: 1, end: 2 },
      { start: 2, end: 3 },
      { start: 5, end: 6 },
    ];
    // [0.5, 1.5) overlaps the first two; [3, 5) touches the third and fourth only at their ends.
    const pauses = [
      { start: 3, end: 5 },
      { start: 0.5, end: 1.5 },
    ];
    expect(countOverlapping(windows, pauses)).toBe(2);
    expect(countOverlapping(windows, [])).toBe(0);
    expect(countOverlapping([], pauses)).toBe(0);
  });

  it('equals a count over every millisecond of integer spans', () => {
    const span = fc
      .tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 1, max: 10 }))
      .map(([start, length]) => ({ start, end: start + length }));
    fc.assert(
      fc.property(fc.array(span, { maxLength: 20 }), fc.array(span, { maxLength: 8 }), (ws, ps) => {
        const busy = new Set<number>();
        for (const p of ps) for (let t = p.start; t < p.end; t++) busy.add(t);
        const expected = ws.filter((w) => {
          for (let t = w.start; t < w.end; t++) if (busy.has(t)) return true;
          return false;
        }).length;
        expect(countOverlapping(ws, ps)).toBe(expected);
      }),
    );
  });
});

describe('spread', () => {
  it('gives one number when all agree, smallest–largest otherwise, none for no values', () => {
    expect(spread([19, 19, 19])).toBe('19');
    expect(spread([20, 17, 19])).toBe('17–20');
    expect(spread([])).toBe('none');
  });
});

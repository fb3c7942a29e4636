/**
 * Pure helpers of the benchmark (architecture.md §9): percentiles, summaries, ratio verdicts and the
 * plain-text tables `npm run bench` prints. No I/O here, so test/bench/stats.test.ts covers it.
 */

/** Summary of a sample of durations (or any numbers), in the unit of the input. */
export interface Summary {
  /** Number of samples. */
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * The `q`-quantile of `sorted` (ascending) by the nearest-rank method: the smallest value such
 * that at least `q·n` samples are ≤ it (so p99 of 100 samples is the 99th smallest, never an
 * interpolation between samples).
 *
 * @param sorted — ascending numbers, at least one.
 * @param q — 0 < q ≤ 1 (0 gives the minimum).
 * @throws RangeError when `sorted` is empty or `q` is outside [0, 1].
 */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of an empty sample');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is outside [0, 1]`);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] as number;
}

/**
 * Summarizes a sample: n, min, p50, p95, p99, max, mean.
 *
 * @throws RangeError when `samples` is empty.
 */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) throw new RangeError('summary of an empty sample');
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    n,
    min: sorted[0] as number,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: sorted[n - 1] as number,
    mean: sum / n,
  };
}

/** A span of time, in the milliseconds of `performance.now()`: `[start, end)`. */
export interface Span {
  start: number;
  end: number;
}

/**
 * How many of `windows` (timed samples) overlap at least one of `pauses` (e.g. GC pauses from a
 * `PerformanceObserver`, `start = startTime`, `end = startTime + duration`): the samples whose
 * time a pause may have lengthened. Both in any order; a pause touching a window only at an end
 * point does not count.
 */
export function countOverlapping(windows: readonly Span[], pauses: readonly Span[]): number {
  // Plainly quadratic: a few thousand windows, a few hundred pauses.
  return windows.filter((w) => pauses.some((p) => p.start < w.end && w.start < p.end)).length;
}

/**
 * The range of whole counts, for a report line: `"17"` when every value is the same, `"17–20"`
 * (en dash, smallest to largest) otherwise, `"none"` for no values.
 */
export function spread(values: readonly number[]): string {
  if (values.length === 0) return 'none';
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? String(lo) : `${lo}–${hi}`;
}

/** The median of a non-empty sample (nearest rank, like {@link percentile}). */
export function median(samples: readonly number[]): number {
  return percentile(
    [...samples].sort((a, b) => a - b),
    0.5,
  );
}

/** A target of architecture.md §9 as a ratio `measured / baseline` compared with a limit. */
export interface RatioTarget {
  /** `at-most`: ratio ≤ limit passes (latency, memory); `at-least`: ratio ≥ limit passes (throughput). */
  direction: 'at-most' | 'at-least';
  /** The limit, e.g. 1.5 for "within 1.5×". */
  limit: number;
}

/** The outcome of one target. */
export interface Verdict {
  ratio: number;
  pass: boolean;
  /** e.g. `≤ 1.50×`. */
  target: string;
}

/**
 * Compares `measured / baseline` with a {@link RatioTarget}.
 *
 * @throws RangeError when `baseline` is not a positive finite number.
 */
export function verdict(measured: number, baseline: number, target: RatioTarget): Verdict {
  if (!(baseline > 0) || !Number.isFinite(baseline))
    throw new RangeError(`baseline ${baseline} must be a positive finite number`);
  const ratio = measured / baseline;
  const pass = target.direction === 'at-most' ? ratio <= target.limit : ratio >= target.limit;
  return {
    ratio,
    pass,
    target: `${target.direction === 'at-most' ? '≤' : '≥'} ${target.limit.toFixed(2)}×`,
  };
}

/** Formats a number with `digits` decimals, or `-` for undefined. */
export function fmt(value: number | undefined, digits = 2): string {
  return value === undefined ? '-' : value.toFixed(digits);
}

/**
 * A plain-text table: a header row, a rule, then the rows; columns padded to their widest cell.
 * A column whose body cells are all numbers (or empty, or `-`) is right-aligned, as numbers read
 * best; the others are left-aligned.
 */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const all = [header, ...rows];
  const width = (cell: string): number => [...cell].length;
  const widths = header.map((_, c) => Math.max(...all.map((row) => width(row[c] ?? ''))));
  const numeric = header.map((_, c) =>
    rows.every((row) => /^(?:-?[\d.]+%?|-|)$/.test((row[c] ?? '').trim())),
  );
  const pad = (cell: string, c: number): string => {
    const gap = ' '.repeat((widths[c] ?? 0) - width(cell));
    return numeric[c] === true ? gap + cell : cell + gap;
  };
  const line = (row: readonly string[]): string =>
    header
      .map((_, c) => pad(row[c] ?? '', c))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

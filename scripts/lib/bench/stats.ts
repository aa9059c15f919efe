/**
 * The arithmetic of the benchmark: percentiles, summaries, rates and time series. Pure
 * functions on plain numbers, so the figures in docs/PERFORMANCE.md can be checked by a unit
 * test (test/unit/scripts/bench-stats.test.ts) rather than trusted.
 */

/**
 * The p-th percentile (0-100) by the nearest-rank method: the smallest value with at least
 * p % of the values at or below it. Undefined for no values. `sorted` must be ascending.
 */
export function percentileOfSorted(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be 0-100, got ${p}`);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

export function percentile(values: readonly number[], p: number): number | undefined {
  return percentileOfSorted(sortAscending(values), p);
}

export function sortAscending(values: readonly number[]): number[] {
  // A typed array sorts numerically (Array#sort would compare strings).
  return Array.from(Float64Array.from(values).sort());
}

export interface Summary {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

/** Count, min, mean, p50, p95, p99 and max; undefined for no values. */
export function summarize(values: readonly number[]): Summary | undefined {
  if (values.length === 0) return undefined;
  const sorted = sortAscending(values);
  let total = 0;
  for (const value of sorted) total += value;
  return {
    count: sorted.length,
    min: sorted[0] as number,
    mean: total / sorted.length,
    p50: percentileOfSorted(sorted, 50) as number,
    p95: percentileOfSorted(sorted, 95) as number,
    p99: percentileOfSorted(sorted, 99) as number,
    max: sorted[sorted.length - 1] as number,
  };
}

/** The median of repeated measurements (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = sortAscending(values);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Events per second over an interval in milliseconds; 0 for an empty or negative interval. */
export function ratePerSecond(events: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (events * 1000) / elapsedMs : 0;
}

/**
 * Rate of the events between the first and last timestamps (ms): (n - 1) intervals over that
 * span, which does not count the wait before the first event as delivery time.
 */
export function steadyRate(timestampsMs: readonly number[]): number {
  if (timestampsMs.length < 2) return 0;
  let first = Infinity;
  let last = -Infinity;
  for (const t of timestampsMs) {
    if (t < first) first = t;
    if (t > last) last = t;
  }
  return ratePerSecond(timestampsMs.length - 1, last - first);
}

/** One bucket of a time series: events that started in [start, start + width). */
export interface Bucket {
  /** Bucket start, ms relative to the series origin. */
  readonly t: number;
  readonly count: number;
  /** Percentiles of the bucket's values; undefined when it holds none. */
  readonly p50: number | undefined;
  readonly p99: number | undefined;
}

/**
 * Buckets (time, value) points into fixed-width windows from `origin`, every window from the
 * first to the one holding `end` present (empty ones with count 0), so a stall shows as a gap
 * in the throughput line instead of disappearing.
 */
export function bucketize(
  points: readonly { readonly t: number; readonly value: number }[],
  options: { readonly origin: number; readonly end: number; readonly widthMs: number },
): Bucket[] {
  const { origin, end, widthMs } = options;
  if (!(widthMs > 0)) throw new RangeError("bucket width must be positive");
  const n = Math.max(0, Math.ceil((end - origin) / widthMs));
  const values: number[][] = Array.from({ length: n }, () => []);
  for (const point of points) {
    const index = Math.floor((point.t - origin) / widthMs);
    if (index >= 0 && index < n) values[index]?.push(point.value);
  }
  return values.map((bucket, index) => {
    const sorted = sortAscending(bucket);
    return {
      t: index * widthMs,
      count: bucket.length,
      p50: percentileOfSorted(sorted, 50),
      p99: percentileOfSorted(sorted, 99),
    };
  });
}

/**
 * CPU share of one process between two samples of its cumulative CPU time (both in ms):
 * 1.0 means one full core busy for the whole interval.
 */
export function cpuShare(cpuMsBefore: number, cpuMsAfter: number, wallMs: number): number {
  return wallMs > 0 ? Math.max(0, cpuMsAfter - cpuMsBefore) / wallMs : 0;
}

/**
 * The first time (ms) at which a cumulative counter series reached `target`, or undefined.
 * `series` holds (t, cumulative count) samples in time order.
 */
export function timeToReach(
  series: readonly { readonly t: number; readonly total: number }[],
  target: number,
): number | undefined {
  for (const sample of series) if (sample.total >= target) return sample.t;
  return undefined;
}

/** Rounds for display: integers above 100, one decimal above 10, two below. */
export function round(value: number | undefined): number | undefined {
  if (value === undefined || !Number.isFinite(value)) return value;
  const magnitude = Math.abs(value);
  const digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

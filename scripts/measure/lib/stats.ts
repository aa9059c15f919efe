/**
 * Latency percentiles through HdrHistogram (hdr-histogram-js), as wrk2 records them: in
 * microseconds with 3 significant digits, so a percentile is exact to 0.1 % of its value.
 */
import * as hdr from "hdr-histogram-js";

export type Histogram = hdr.Histogram;

export type Summary = NonNullable<ReturnType<typeof summaryOf>>;

const MS = 1000;

/** An empty histogram for millisecond values (recorded in µs). */
export function latencyHistogram(): Histogram {
  return hdr.build({ numberOfSignificantValueDigits: 3 });
}

export function recordMs(histogram: Histogram, ms: number): void {
  histogram.recordValue(Math.max(0, Math.round(ms * MS)));
}

/** Count, mean, p50/p90/p95/p99/p99.9 and max in ms; undefined for an empty histogram. */
export function summaryOf(histogram: Histogram) {
  if (histogram.totalCount === 0) return undefined;
  // A percentile is the top of its bucket: never above the largest value recorded.
  const at = (p: number) => Math.min(histogram.getValueAtPercentile(p), histogram.maxValue) / MS;
  return {
    count: histogram.totalCount,
    min: histogram.minNonZeroValue / MS,
    mean: histogram.mean / MS,
    p50: at(50),
    p90: at(90),
    p95: at(95),
    p99: at(99),
    p999: at(99.9),
    max: histogram.maxValue / MS,
  };
}

/** The summary of plain millisecond values. */
export function summarize(values: Iterable<number>): Summary | undefined {
  const histogram = latencyHistogram();
  for (const value of values) recordMs(histogram, value);
  return summaryOf(histogram);
}

/** The median of repeated measurements (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return undefined;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Events per second over an interval in milliseconds; 0 for an empty or negative interval. */
export function ratePerSecond(events: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (events * 1000) / elapsedMs : 0;
}

/** Rounds for display: integers above 100, one decimal above 10, two below. */
export function round(value: number | undefined): number | undefined {
  if (value === undefined || !Number.isFinite(value)) return value;
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return Math.round(value * 10 ** digits) / 10 ** digits;
}

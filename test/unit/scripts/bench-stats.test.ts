import { expect } from "chai";
import {
  bucketize,
  cpuShare,
  median,
  percentile,
  percentileOfSorted,
  ratePerSecond,
  steadyRate,
  summarize,
  timeToReach,
} from "../../../scripts/lib/bench/stats";

/** 1..n in a scrambled order, so a missing sort (or a string sort) shows. */
function scrambled(n: number): number[] {
  const values = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = values.length - 1; i > 0; i -= 1) {
    const j = (i * 7919) % (i + 1);
    [values[i], values[j]] = [values[j] as number, values[i] as number];
  }
  return values;
}

describe("bench stats", () => {
  describe("percentile (nearest rank)", () => {
    it("gives the textbook nearest-rank values", () => {
      // Wikipedia's example: 15, 20, 35, 40, 50.
      const values = [35, 15, 50, 40, 20];
      expect(percentile(values, 5)).to.equal(15);
      expect(percentile(values, 30)).to.equal(20);
      expect(percentile(values, 40)).to.equal(20);
      expect(percentile(values, 50)).to.equal(35);
      expect(percentile(values, 100)).to.equal(50);
    });

    it("on 1..100 the p-th percentile is p", () => {
      const values = scrambled(100);
      for (const p of [1, 50, 95, 99, 100]) expect(percentile(values, p)).to.equal(p);
    });

    it("on 1..1000 p99 is 990 and p95 is 950", () => {
      const values = scrambled(1000);
      expect(percentile(values, 99)).to.equal(990);
      expect(percentile(values, 95)).to.equal(950);
      expect(percentile(values, 50)).to.equal(500);
    });

    it("sorts numerically, not as strings", () => {
      expect(percentile([9, 100, 20, 3], 50)).to.equal(9);
      expect(percentile([9, 100, 20, 3], 100)).to.equal(100);
    });

    it("p0 is the minimum, one value is every percentile, none is undefined", () => {
      expect(percentile([4, 2, 8], 0)).to.equal(2);
      expect(percentile([7], 1)).to.equal(7);
      expect(percentile([7], 99)).to.equal(7);
      expect(percentile([], 50)).to.equal(undefined);
    });

    it("refuses a percentile outside 0-100", () => {
      expect(() => percentileOfSorted([1, 2], 101)).to.throw(RangeError);
      expect(() => percentileOfSorted([1, 2], -1)).to.throw(RangeError);
      expect(() => percentileOfSorted([1, 2], Number.NaN)).to.throw(RangeError);
    });

    it("does not reorder the caller's array", () => {
      const values = [3, 1, 2];
      percentile(values, 50);
      expect(values).to.deep.equal([3, 1, 2]);
    });
  });

  describe("summarize", () => {
    it("reports count, min, mean, p50, p95, p99 and max", () => {
      expect(summarize(scrambled(200))).to.deep.equal({
        count: 200,
        min: 1,
        mean: 100.5,
        p50: 100,
        p95: 190,
        p99: 198,
        max: 200,
      });
    });

    it("is undefined for no values", () => {
      expect(summarize([])).to.equal(undefined);
    });
  });

  describe("median", () => {
    it("is the middle value for an odd count", () => {
      expect(median([5, 1, 3])).to.equal(3);
    });

    it("is the mean of the middle two for an even count", () => {
      expect(median([10, 1, 4, 2])).to.equal(3);
      expect(median([1, 2])).to.equal(1.5);
    });

    it("sorts numerically and is undefined for no values", () => {
      expect(median([100, 9, 20])).to.equal(20);
      expect(median([])).to.equal(undefined);
    });
  });

  describe("rates", () => {
    it("ratePerSecond divides by seconds and is 0 for an empty interval", () => {
      expect(ratePerSecond(500, 250)).to.equal(2000);
      expect(ratePerSecond(10, 0)).to.equal(0);
      expect(ratePerSecond(10, -5)).to.equal(0);
    });

    it("steadyRate counts intervals between the first and last event", () => {
      // 11 events 100 ms apart: 10 intervals over 1 s.
      const times = Array.from({ length: 11 }, (_, i) => 5_000 + i * 100).reverse();
      expect(steadyRate(times)).to.equal(10);
      expect(steadyRate([42])).to.equal(0);
    });

    it("cpuShare is busy time over wall time, never negative", () => {
      expect(cpuShare(1_000, 1_500, 1_000)).to.equal(0.5);
      expect(cpuShare(1_000, 3_000, 1_000)).to.equal(2);
      expect(cpuShare(2_000, 1_000, 1_000)).to.equal(0);
      expect(cpuShare(0, 10, 0)).to.equal(0);
    });
  });

  describe("bucketize", () => {
    it("keeps empty windows so a stall shows as a gap", () => {
      const points = [
        { t: 100, value: 10 },
        { t: 900, value: 30 },
        { t: 2_500, value: 5 },
      ];
      const buckets = bucketize(points, { origin: 0, end: 3_000, widthMs: 1_000 });
      expect(buckets.map((b) => b.count)).to.deep.equal([2, 0, 1]);
      expect(buckets.map((b) => b.t)).to.deep.equal([0, 1_000, 2_000]);
      expect(buckets[0]).to.include({ p50: 10, p99: 30 });
      expect(buckets[1]).to.include({ p50: undefined, p99: undefined });
    });

    it("drops points outside the window and refuses a zero width", () => {
      const buckets = bucketize(
        [
          { t: -1, value: 1 },
          { t: 5_000, value: 1 },
        ],
        {
          origin: 0,
          end: 2_000,
          widthMs: 1_000,
        },
      );
      expect(buckets.map((b) => b.count)).to.deep.equal([0, 0]);
      expect(() => bucketize([], { origin: 0, end: 1, widthMs: 0 })).to.throw(RangeError);
    });
  });

  it("timeToReach finds the first sample at or above the target", () => {
    const series = [
      { t: 0, total: 0 },
      { t: 250, total: 40 },
      { t: 500, total: 100 },
      { t: 750, total: 100 },
    ];
    expect(timeToReach(series, 100)).to.equal(500);
    expect(timeToReach(series, 101)).to.equal(undefined);
  });
});

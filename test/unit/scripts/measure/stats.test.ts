import { expect } from "chai";
import { median, ratePerSecond, round, summarize } from "../../../../scripts/measure/lib/stats";

/** 1..n in a scrambled order, so a result that depends on the order shows. */
function scrambled(n: number): number[] {
  const values = Array.from({ length: n }, (_, i) => i + 1);
  for (let i = values.length - 1; i > 0; i -= 1) {
    const j = (i * 7919) % (i + 1);
    [values[i], values[j]] = [values[j] as number, values[i] as number];
  }
  return values;
}

describe("bench stats", () => {
  describe("summarize (HdrHistogram, 3 significant digits)", () => {
    it("on 1..1000 ms gives each percentile within 0.1 %, count and max exactly", () => {
      const summary = summarize(scrambled(1000));
      expect(summary).to.include({ count: 1000, max: 1000 });
      const expected = { p50: 500, p90: 900, p95: 950, p99: 990, p999: 999 };
      for (const [name, value] of Object.entries(expected)) {
        expect(summary?.[name as keyof typeof expected]).to.be.closeTo(value, value / 1000);
      }
      expect(summary?.mean).to.be.closeTo(500.5, 0.5);
    });

    it("keeps sub-millisecond resolution and a 13.8 s tail in one histogram", () => {
      const values = [...Array<number>(990).fill(0.25), ...Array<number>(10).fill(13_800)];
      const summary = summarize(values);
      expect(summary?.p50).to.be.closeTo(0.25, 0.001);
      expect(summary?.p99).to.be.closeTo(0.25, 0.001);
      expect(summary?.p999).to.equal(13_800);
      expect(summary?.max).to.equal(13_800);
    });

    it("is undefined for no values", () => {
      expect(summarize([])).to.equal(undefined);
    });
  });

  it("median is the middle value, or the mean of the middle two; undefined for none", () => {
    expect(median([3, 1, 2])).to.equal(2);
    expect(median([4, 1, 3, 2])).to.equal(2.5);
    expect(median([9, 100, 20])).to.equal(20);
    expect(median([])).to.equal(undefined);
  });

  it("ratePerSecond divides by seconds and is 0 for an empty interval", () => {
    expect(ratePerSecond(500, 2_000)).to.equal(250);
    expect(ratePerSecond(10, 0)).to.equal(0);
  });

  it("round keeps 0, 1 or 2 decimals by magnitude", () => {
    expect([round(1234.5), round(12.345), round(1.2345), round(undefined)]).to.deep.equal([
      1235,
      12.3,
      1.23,
      undefined,
    ]);
  });
});

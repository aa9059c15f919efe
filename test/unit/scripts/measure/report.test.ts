import { expect } from "chai";
import type { PhaseResult } from "../../../../scripts/measure/lib/product";
import * as report from "../../../../scripts/measure/lib/report";
import { summarize } from "../../../../scripts/measure/lib/stats";

/** A single-record phase of 1,000 requests at 100/s: one in a hundred takes 300 ms. */
function fixture(): report.BenchResult {
  const requests = Array.from({ length: 1000 }, (_, i) => ({
    phase: "single",
    t: i * 10,
    latencyMs: i % 100 === 0 ? 300 : 5,
    status: 202,
    records: 1,
    accepted: 1,
  }));
  const window = { from: 0, loadEnd: 10_000, to: 10_500 };
  const phase = {
    name: "single",
    kind: "single",
    offeredRecordsPerSecond: 100,
    acceptedRecords: 1000,
    acceptedRecordsPerSecond: 100,
    storedPerSecondDuringLoad: 100,
    storedPerSecondEndToEnd: 95,
    loadSeconds: 10,
    drained: true,
    drainMs: 500,
    inDoubtRecords: 0,
    statuses: { 202: 1000 },
    latency: summarize(requests.map((r) => r.latencyMs)),
    reconcile: { accepted: 1000, stored: 1000, missing: 0, duplicated: 0, unexpected: 0, ok: true },
    processes: [
      { name: "worker", cpuMs: 2000, cpuShare: 0.2, peakCpuShare: 0.5, peakRssBytes: 1e8 },
    ],
    machineCpuShare: 1,
    window,
  } as unknown as PhaseResult;
  const log = {
    between: () => ({ total: 1000, bytes: 50_000, lines: 500 }),
    diagnostics: [
      { t: 5_000, fields: { event_loop_delay_max_ms: 40, gc_pauses: 2, gc_pause_ms: 6 } },
    ],
  };
  const broker = summarize(Array.from({ length: 1000 }, (_, i) => (i % 100 === 0 ? 20 : 2)));
  return {
    runId: "test",
    label: "",
    machine: {
      date: "2026-12-02",
      hostname: "h",
      nproc: 2,
      cpuModel: "cpu",
      memory: "",
      node: "v20",
      java: "",
      os: "",
      loadAverageAtStart: [0],
    },
    loadAverageAtEnd: [0],
    options: {},
    functionsEnv: {},
    ceilings: [
      {
        name: "publish-ack",
        rate: 100,
        count: 1000,
        seconds: 10,
        note: "",
        latency: broker,
        offeredRate: 100,
      },
    ],
    singleTarget: { perSecond: 100, basis: "test" },
    phases: [phase],
    costs: report.phaseCosts({
      phases: [phase],
      requests,
      logs: { ingest: log, worker: log },
      cpuPressure: () => 0.25,
    }),
    segments: [{ name: "single", ...window }],
    series: report.buildSeries({ requests, stored: [], samples: [] }),
  };
}

describe("bench report", () => {
  it("reports ingest's tail as a ratio to the broker's, and the cost per record", () => {
    const result = fixture();
    expect(result.costs[0]).to.deep.include({ mostOutstanding: 2, cpuPressure: 0.25 });
    expect(result.costs[0]?.worker).to.include({
      logBytesPerRecord: 50,
      cpuMsPerRecord: 2,
      gcPauses: 2,
    });
    const text = report.renderTable({ ...result, targets: report.evaluateTargets(result) });
    expect(text).to.match(/ingest \/ broker at p99 +\| 5 \/ 2 = 2.5 x/);
    expect(text).to.match(/ingest \/ broker at p99.9 +\| 300 \/ 20 = 15 x/);
    expect(text).to.match(/Ingest p99 <= 50 ms at the single-record target rate +\| yes /);
    expect(text).to.match(/log bytes per record: ingest \/ worker +\| 50 \/ 50 /);
  });

  it("draws the charts into a page that fetches nothing, and a PNG", async function () {
    this.timeout(30_000);
    const result = fixture();
    const svg = await report.renderSvg(result);
    const html = report.renderHtml(result, svg);
    expect(html).to.include("<svg").and.include("The knee");
    expect(html).to.not.match(/<script|<link|<img|src=|@import|url\(/i);
    const png = report.renderPng(svg);
    expect(png.subarray(1, 4).toString()).to.equal("PNG");
  });
});

/**
 * What a benchmark run produces from its result object: the verdict on each target of the
 * issue, plain-text tables (for the terminal and docs/PERFORMANCE.md), and charts declared as
 * one Vega-Lite spec over the run's data, drawn to SVG by Vega here, embedded in a
 * self-contained HTML page (no script, no fetch: it opens offline) and rendered to PNG by resvg.
 */
import { Resvg } from "@resvg/resvg-js";
import { spawnSync } from "node:child_process";
import os from "node:os";
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import { BATCH_ENCODINGS } from "./batch-encodings";
import type { CeilingResult } from "./ceilings";
import type { CountSample, FunctionLog } from "./log-counter";
import type { PhaseResult, RequestPoint } from "./product";
import type { ProcSample } from "./procstat";
import type { RedactionSpeedResult } from "./redaction-speed";
import { round, summarize, type Summary } from "./stats";

export type MachineInfo = ReturnType<typeof machineInfo>;

export const loadAverage = () => os.loadavg().map((value) => Math.round(value * 100) / 100);

/** The machine a run measured, for every figure to be read against. */
export function machineInfo() {
  // stdout and stderr both (java -version prints to stderr); "" when it cannot run.
  const run = (command: string, args: string[]) => {
    const result = spawnSync(command, args, { encoding: "utf8", timeout: 5_000 });
    return result.error === undefined ? `${result.stdout ?? ""}${result.stderr ?? ""}`.trim() : "";
  };
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    hostname: os.hostname(),
    nproc: Number(run("nproc", [])) || cpus.length,
    cpuModel: cpus[0]?.model ?? "unknown",
    memory: run("free", ["-h"]).split("\n")[1]?.replace(/\s+/g, " ") ?? "",
    node: process.version,
    java: run("java", ["-version"]).split("\n")[0] ?? "",
    os: `${os.type()} ${os.release()}`,
    loadAverageAtStart: loadAverage(),
  };
}

/** One value of one line of one chart over time: the charts' data, in Vega-Lite's long form. */
export interface SeriesPoint {
  /** Seconds since the run's origin. */
  readonly t: number;
  readonly chart: "throughput" | "latency" | "cpu" | "memory";
  readonly series: string;
  readonly value: number | null;
}

export type PhaseCost = ReturnType<typeof phaseCosts>[number];
type FunctionCost = PhaseCost["ingest"];

export interface BenchResult {
  readonly runId: string;
  readonly label: string;
  readonly machine: MachineInfo;
  readonly loadAverageAtEnd: readonly number[];
  readonly options: Readonly<Record<string, unknown>>;
  readonly functionsEnv: Readonly<Record<string, string>>;
  readonly ceilings: readonly CeilingResult[];
  readonly redaction?: readonly RedactionSpeedResult[];
  readonly singleTarget: { readonly perSecond: number; readonly basis: string };
  readonly phases: readonly PhaseResult[];
  readonly costs: readonly PhaseCost[];
  readonly segments: readonly Readonly<{ name: string; from: number; to: number }>[];
  readonly series: readonly SeriesPoint[];
  readonly targets?: readonly Readonly<{ target: string; met: boolean; evidence: string }>[];
}

const MIB = 1024 * 1024;

function mostOutstanding(requests: readonly RequestPoint[]): number {
  const steps = requests.flatMap((r): [number, number][] => [
    [r.t, 1],
    [r.t + r.latencyMs, -1],
  ]);
  steps.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  return steps.reduce((most, [, step]) => Math.max(most, (now += step)), 0);
}

/** Per phase: log bytes and CPU per record, event-loop delay and GC, CPU queueing. */
export function phaseCosts(input: {
  readonly phases: readonly PhaseResult[];
  readonly requests: readonly RequestPoint[];
  readonly logs: Record<"ingest" | "worker", Pick<FunctionLog, "between" | "diagnostics">>;
  readonly cpuPressure: (from: number, to: number) => number | undefined;
}) {
  return input.phases.map((phase) => {
    const { from, to } = phase.window;
    const records = Math.max(1, phase.acceptedRecords);
    const cost = (name: "ingest" | "worker") => {
      const log = input.logs[name];
      const written = log.between(from, to);
      const windows = log.diagnostics.filter((d) => d.t > from && d.t <= to).map((d) => d.fields);
      const all = (field: string) => windows.flatMap((fields) => fields[field] ?? []);
      const worst = (field: string) =>
        all(field).length > 0 ? Math.max(...all(field)) : undefined;
      // Event-loop delay over the phase's diagnostics windows: the worst window's p99, and max.
      return {
        logBytesPerRecord: written.bytes / records,
        logLinesPerRecord: written.lines / records,
        cpuMsPerRecord: (phase.processes.find((p) => p.name === name)?.cpuMs ?? 0) / records,
        eventLoopDelayP99: worst("event_loop_delay_p99_ms"),
        eventLoopDelayMax: worst("event_loop_delay_max_ms"),
        gcPauses: all("gc_pauses").reduce((a, b) => a + b, 0),
        gcPauseMs: all("gc_pause_ms").reduce((a, b) => a + b, 0),
        gcPauseMaxMs: worst("gc_pause_max_ms") ?? 0,
      };
    };
    return {
      phase: phase.name,
      // Most requests due (or sent) and not yet answered at one time.
      mostOutstanding: mostOutstanding(input.requests.filter((r) => r.phase === phase.name)),
      ingest: cost("ingest"),
      worker: cost("worker"),
      // Share of the phase some task waited for a core (PSI); undefined where unavailable.
      cpuPressure: input.cpuPressure(from, to),
    };
  });
}

/** The charts' values over the whole run: per second of schedule, and per process sample. */
export function buildSeries(input: {
  readonly requests: readonly RequestPoint[];
  readonly stored: readonly CountSample[];
  readonly samples: readonly ProcSample[];
}): SeriesPoint[] {
  const points: SeriesPoint[] = [];
  // A value that is not a finite number is kept as null: Vega-Lite breaks the line there.
  const add = (t: number, chart: SeriesPoint["chart"], series: string, value?: number) => {
    const finite = value !== undefined && Number.isFinite(value);
    if (finite || chart === "latency")
      points.push({ t, chart, series, value: finite ? (round(value) as number) : null });
  };
  const bySecond = new Map<number, RequestPoint[]>();
  for (const request of input.requests) {
    const second = Math.floor(request.t / 1000);
    bySecond.set(second, bySecond.get(second) ?? []);
    bySecond.get(second)?.push(request);
  }
  for (let t = 0; t <= Math.max(-1, ...bySecond.keys()); t += 1) {
    const requests = bySecond.get(t) ?? [];
    const sum = (key: "records" | "accepted") => requests.reduce((total, r) => total + r[key], 0);
    add(t, "throughput", "offered (due)", sum("records"));
    add(t, "throughput", "accepted", sum("accepted"));
    const latency = summarize(requests.filter((r) => r.status !== null).map((r) => r.latencyMs));
    for (const p of ["p50", "p99", "max"] as const) add(t, "latency", p, latency?.[p]);
  }
  // Stored per second: the increase of the cumulative count across each second.
  const stored = new Map<number, number>();
  input.stored.forEach(({ t, total }, index) => {
    const second = Math.floor(t / 1000);
    const increase = total - (input.stored[index - 1]?.total ?? total);
    stored.set(second, (stored.get(second) ?? 0) + increase);
  });
  for (const [t, count] of stored) add(t, "throughput", "stored", count);
  for (const { t, cpu, rss, machine, cpuPressure } of input.samples) {
    for (const [name, cores] of Object.entries(cpu)) add(t / 1000, "cpu", name, cores);
    add(t / 1000, "cpu", "whole machine", machine);
    add(t / 1000, "cpu", "CPU pressure (0-1)", cpuPressure);
    for (const [name, bytes] of Object.entries(rss)) add(t / 1000, "memory", name, bytes / MIB);
  }
  return points;
}

const fmt = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? "-" : String(round(value));

const reconcileText = ({ reconcile: r }: PhaseResult) =>
  r === undefined
    ? "not reconciled"
    : `${r.stored}/${r.accepted} stored, ${r.missing} missing, ${r.duplicated} duplicated, ` +
      `${r.unexpected} unexpected`;

const latencyText = (l: Summary | undefined) =>
  l === undefined
    ? "no answers"
    : `p50 ${fmt(l.p50)} ms, p90 ${fmt(l.p90)}, p99 ${fmt(l.p99)}, p99.9 ${fmt(l.p999)}, ` +
      `max ${fmt(l.max)}`;

/** A phase in one line: the run logs it, a target cites it. */
export const phaseRates = (p: PhaseResult) =>
  `offered ${fmt(p.offeredRecordsPerSecond)}/s, accepted ${fmt(p.acceptedRecordsPerSecond)}/s, ` +
  `stored ${fmt(p.storedPerSecondEndToEnd)}/s end to end, drain ${fmt(p.drainMs / 1000)} s, ` +
  reconcileText(p);

/** "NDJSON x 500", "OTLP protobuf x 500", "single record". */
const pathLabel = (phase: PhaseResult) =>
  phase.kind === "batch"
    ? `${BATCH_ENCODINGS[phase.encoding ?? "ndjson"].label} x ${phase.batchSize}`
    : "single record";

/** The issue's targets, judged on this run's figures. */
export function evaluateTargets(result: BenchResult): NonNullable<BenchResult["targets"]> {
  const clean = (p: PhaseResult) => p.reconcile?.ok === true && p.inDoubtRecords === 0;
  const single = result.phases.find((phase) => phase.name === "single");
  const brief = result.phases.find((phase) => phase.name === "brief");
  const target = result.singleTarget.perSecond;
  const drained = (p: PhaseResult) => p.drained && p.drainMs <= 10_000;
  const workerPeak = Math.max(
    0,
    ...result.phases.map(
      (p) => p.processes.find((proc) => proc.name === "worker")?.peakRssBytes ?? 0,
    ),
  );
  const verdict = (target: string, met: boolean, evidence: string) => ({ target, met, evidence });
  const singleMet = (s: PhaseResult) =>
    s.acceptedRecordsPerSecond >= 0.97 * target && s.storedPerSecondDuringLoad >= 0.95 * target;
  const drainText = (p: PhaseResult) =>
    `${p.drained ? "" : "not "}drained ${fmt(p.drainMs / 1000)} s after the last answer`;
  return [
    single &&
      verdict(
        `Single-record path sustains >= ${fmt(target)} records/s (${result.singleTarget.basis}) end to end with zero loss`,
        singleMet(single) && drained(single) && clean(single),
        phaseRates(single),
      ),
    single &&
      verdict(
        "Ingest p99 <= 50 ms at the single-record target rate",
        (single.latency?.p99 ?? Infinity) <= 50,
        latencyText(single.latency),
      ),
    single &&
      verdict(
        "Backlog drains within 10 s after the sustained run",
        drained(single),
        drainText(single),
      ),
    brief &&
      verdict(
        "Ingest p99 <= 15 ms at the brief's 1,000 requests/minute",
        (brief.latency?.p99 ?? Infinity) <= 15 && clean(brief),
        `${latencyText(brief.latency)}; ${reconcileText(brief)}`,
      ),
    ...result.phases
      .filter((phase) => phase.kind === "batch")
      .map((batch) =>
        verdict(
          `Batch path (${pathLabel(batch)}) stores >= 5,000 records/s end to end`,
          batch.storedPerSecondEndToEnd >= 5_000 && batch.drained && clean(batch),
          phaseRates(batch),
        ),
      ),
    workerPeak > 0 &&
      verdict(
        "Process function within 256 MiB",
        workerPeak <= 256 * MIB,
        `worker peak RSS ${fmt(workerPeak / MIB)} MiB (sampled every 0.5 s)`,
      ),
  ].filter((item) => typeof item === "object");
}

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(" | ")} |`;
  const rule = `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`;
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

/** Where the single-record tail comes from: ingest's against the broker's own, the candidates. */
function tailTable(result: BenchResult): string | undefined {
  const single = result.phases.find((phase) => phase.name === "single");
  const cost = result.costs.find((item) => item.phase === "single");
  const broker = result.ceilings.find((item) => item.latency !== undefined)?.latency;
  if (single?.latency === undefined || cost === undefined) return undefined;
  const ratio = (p: keyof Summary) =>
    broker === undefined
      ? "-"
      : `${fmt(single.latency?.[p])} / ${fmt(broker[p])} = ${fmt((single.latency?.[p] ?? 0) / broker[p])} x`;
  const phaseMs = single.loadSeconds * 1000 + single.drainMs;
  const gc = (f: FunctionCost) =>
    `${f.gcPauses} pauses, ${fmt(f.gcPauseMs)} ms (${fmt((100 * f.gcPauseMs) / phaseMs)} % of the phase), longest ${fmt(f.gcPauseMaxMs)} ms`;
  const loopDelay = (f: FunctionCost) =>
    `${fmt(f.eventLoopDelayP99)} / ${fmt(f.eventLoopDelayMax)}`;
  const cpu = (name: string) => {
    const proc = single.processes.find((p) => p.name === name);
    return `${fmt(proc?.cpuShare)} / ${fmt(proc?.peakCpuShare)}`;
  };
  return table(
    [`Tail at ${fmt(single.offeredRecordsPerSecond)} records/s (single phase)`, "measured"],
    [
      ["ingest latency, ms", latencyText(single.latency)],
      ["broker publish-ack latency, same rate and run, ms", latencyText(broker)],
      ["ingest / broker at p50", ratio("p50")],
      ["ingest / broker at p99", ratio("p99")],
      ["ingest / broker at p99.9", ratio("p999")],
      ["event-loop delay, ingest: worst window p99 / max ms", loopDelay(cost.ingest)],
      ["event-loop delay, worker: worst window p99 / max ms", loopDelay(cost.worker)],
      ["GC pauses, ingest", gc(cost.ingest)],
      ["GC pauses, worker", gc(cost.worker)],
      ["machine CPU busy, cores", `${fmt(single.machineCpuShare)} of ${result.machine.nproc}`],
      [
        "CPU pressure: time some task waited for a core",
        cost.cpuPressure === undefined ? "no PSI" : `${fmt(100 * cost.cpuPressure)} %`,
      ],
      ["ingest CPU mean / peak, cores", cpu("ingest")],
      ["worker CPU mean / peak, cores", cpu("worker")],
      ["most requests outstanding at once", String(cost.mostOutstanding)],
    ],
  );
}

/** Markdown tables (which read as plain text in a terminal too). */
export function renderTable(result: BenchResult): string {
  const { machine, phases } = result;
  const cost = (p: PhaseResult) => result.costs.find((item) => item.phase === p.name);
  const pair = (a: number | undefined, b: number | undefined) => `${fmt(a)} / ${fmt(b)}`;
  const perRecord = (p: PhaseResult, key: "logBytesPerRecord" | "cpuMsPerRecord") =>
    pair(cost(p)?.ingest[key], cost(p)?.worker[key]);
  const rows: [string, (p: PhaseResult) => number | string | undefined][] = [
    ["path", pathLabel],
    ["request body KiB (mean, on the wire)", (p) => (p.meanRequestBytes ?? NaN) / 1024],
    ["offered records/s", (p) => p.offeredRecordsPerSecond],
    ["achieved: requests sent/s", (p) => p.sentRequestsPerSecond],
    ["accepted (202; OTLP 200) requests/s", (p) => p.acceptedRequestsPerSecond],
    ["accepted records/s", (p) => p.acceptedRecordsPerSecond],
    ["most requests outstanding", (p) => cost(p)?.mostOutstanding],
    ["load duration s", (p) => p.loadSeconds],
    ["statuses", (p) => JSON.stringify(p.statuses).replace(/[{}"]/g, "")],
    ...(["p50", "p90", "p99", "p999", "max"] as const).map((q): (typeof rows)[number] => [
      `ingest latency ${q.replace("p999", "p99.9")} ms`,
      (p) => p.latency?.[q],
    ]),
    ["stored records/s during load", (p) => p.storedPerSecondDuringLoad],
    ["stored records/s end to end", (p) => p.storedPerSecondEndToEnd],
    ["drain after load s", (p) => `${p.drained ? "" : ">"}${fmt(p.drainMs / 1000)}`],
    ["accepted / stored", (p) => pair(p.reconcile?.accepted, p.reconcile?.stored)],
    ["lost (missing) / duplicated", (p) => pair(p.reconcile?.missing, p.reconcile?.duplicated)],
    ["unexpected documents", (p) => p.reconcile?.unexpected],
    ["log bytes per record: ingest / worker", (p) => perRecord(p, "logBytesPerRecord")],
    ["CPU ms per record: ingest / worker", (p) => perRecord(p, "cpuMsPerRecord")],
    ["machine CPU busy, cores", (p) => p.machineCpuShare],
    ["CPU pressure % (some task waiting)", (p) => 100 * (cost(p)?.cpuPressure ?? NaN)],
  ];
  const cell = (value: number | string | undefined) =>
    typeof value === "string" ? value : fmt(value);
  const names = phases[0]?.processes.map((proc) => proc.name) ?? [];
  const processCell = (p: PhaseResult, name: string) => {
    const proc = p.processes.find((item) => item.name === name);
    return proc
      ? `${fmt(proc.cpuShare)} / ${fmt(proc.peakCpuShare)}, ${fmt(proc.peakRssBytes / MIB)}`
      : "-";
  };
  const others = (p: PhaseResult) =>
    fmt(Math.max(0, p.machineCpuShare - p.processes.reduce((sum, proc) => sum + proc.cpuShare, 0)));
  return [
    `Run ${result.runId}${result.label ? ` (${result.label})` : ""}: ${machine.date}, ${machine.nproc} cores ` +
      `${machine.cpuModel}, ${machine.memory}, Node ${machine.node}, load average at start ` +
      `${machine.loadAverageAtStart.join(" ")} / at end ${result.loadAverageAtEnd.join(" ")}`,
    result.ceilings.length === 0
      ? undefined
      : table(
          ["Ceiling (trivial client, same run)", "rate/s", "count", "s", "how"],
          result.ceilings.map((c) => [c.name, fmt(c.rate), fmt(c.count), fmt(c.seconds), c.note]),
        ),
    table(
      ["Product", ...phases.map((phase) => phase.name)],
      rows.map(([label, value]) => [label, ...phases.map((p) => cell(value(p)))]),
    ),
    table(
      ["Process: CPU mean / peak (cores), peak RSS MiB", ...phases.map((phase) => phase.name)],
      [
        ...names.map((name) => [name, ...phases.map((p) => processCell(p, name))]),
        ["other processes on the machine", ...phases.map(others)],
      ],
    ),
    tailTable(result),
    result.targets === undefined
      ? undefined
      : table(
          ["Target", "met", "evidence"],
          result.targets.map((v) => [v.target, v.met ? "yes" : "NO", v.evidence]),
        ),
  ]
    .filter((part) => part !== undefined)
    .join("\n\n");
}

const CHARTS = {
  throughput: ["Records per second: offered (due), accepted, stored", "records/s"],
  latency: ["Ingest latency per second of schedule (batch phases: per request)", "ms (log)"],
  cpu: ["CPU per process and whole machine (1 = one core), CPU pressure (0-1)", "cores"],
  memory: ["Resident memory per process", "MiB"],
} as const;

const PERCENTILES = { p50: "p50", p90: "p90", p99: "p99", p999: "p99.9", max: "max" } as const;

/** The page's charts as one Vega-Lite spec: four panels over time, then the knee. */
export function chartSpec(result: BenchResult): TopLevelSpec {
  const bands = result.segments.map((s, i) => ({
    ...s,
    from: s.from / 1000,
    to: s.to / 1000,
    shade: i % 2,
  }));
  // One time axis for every panel: the run, from its first second to its last.
  const end = Math.max(0, ...bands.map((band) => band.to), ...result.series.map((p) => p.t));
  const scale = { domain: [0, Math.ceil(end)], nice: false };
  const x = { field: "t", type: "quantitative", title: "seconds since start", scale };
  const shade = { range: ["#f3f3f3", "#e8eef7"] };
  const label = { type: "text", align: "left", baseline: "top", dx: 2, fontSize: 8, color: "#666" };
  const phaseBands = [
    {
      mark: "rect",
      encoding: {
        x: { ...x, field: "from" },
        x2: { field: "to" },
        color: { field: "shade", type: "nominal", scale: shade, legend: null },
      },
    },
    {
      mark: label,
      encoding: { x: { ...x, field: "from" }, y: { value: 2 }, text: { field: "name" } },
    },
  ].map((layer) => ({ data: { values: bands }, ...layer }));
  /** A panel of one chart's lines over the run, on the phases' bands. */
  const overTime = (chart: SeriesPoint["chart"], title: string, unit: string) => {
    // A zero latency (no answer in that second) has no place on a log scale.
    const values = result.series.filter(
      (p) => p.chart === chart && (chart !== "latency" || p.value !== 0),
    );
    const y = {
      field: "value",
      type: "quantitative",
      title: unit,
      scale: { type: chart === "latency" ? "log" : "linear" },
    };
    const color = { field: "series", type: "nominal", title: null };
    const lines = {
      data: { values },
      mark: { type: "line", strokeWidth: 1.2 },
      encoding: { x, y, color },
    };
    return {
      title,
      width: 1000,
      height: 200,
      resolve: { scale: { color: "independent" } },
      layer: [...phaseBands, lines],
    };
  };
  const kneePoints = (source: string, offered: number, latency: Summary | undefined) =>
    Object.entries(PERCENTILES).map(([key, percentile]) => ({
      source,
      offered,
      percentile,
      ms: latency?.[key as keyof typeof PERCENTILES] ?? 0,
    }));
  const knee = [
    ...result.phases
      .filter((phase) => phase.kind === "single")
      .flatMap((phase) => kneePoints("ingest", phase.offeredRecordsPerSecond, phase.latency)),
    ...result.ceilings.flatMap((c) =>
      c.offeredRate === undefined ? [] : kneePoints("broker publish-ack", c.offeredRate, c.latency),
    ),
  ].filter((point) => point.ms > 0);
  const kneePanel = {
    title:
      "The knee: single-record latency against offered rate (a point a phase; broker: a trivial publisher, same run)",
    width: 1000,
    height: 260,
    data: { values: knee },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "offered", type: "quantitative", title: "offered records/s" },
      y: { field: "ms", type: "quantitative", title: "ms (log)", scale: { type: "log" } },
      color: { field: "percentile", type: "nominal", sort: Object.values(PERCENTILES) },
      shape: { field: "source", type: "nominal", title: null },
      detail: { field: "source" },
    },
  };
  // A panel without data would have no size: only those with data are drawn.
  const charted = new Set(result.series.map((point) => point.chart));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    background: "white",
    config: { font: "DejaVu Sans" },
    vconcat: [
      ...Object.entries(CHARTS)
        .filter(([chart]) => charted.has(chart as SeriesPoint["chart"]))
        .map(([chart, [title, unit]]) => overTime(chart as SeriesPoint["chart"], title, unit)),
      ...(knee.length > 0 ? [kneePanel] : []),
    ],
  } as TopLevelSpec;
}

export async function renderSvg(result: BenchResult): Promise<string> {
  const spec = vegaLite.compile(chartSpec(result)).spec;
  return new vega.View(vega.parse(spec), { renderer: "none" }).toSVG();
}

export function renderPng(svg: string): Buffer {
  const fonts = { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" };
  return new Resvg(svg, { font: fonts }).render().asPng();
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderHtml(result: BenchResult, svg: string): string {
  const { runId, label, machine } = result;
  const title = escapeHtml(`Robust Data Processor benchmark ${runId}${label ? ` (${label})` : ""}`);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>body { font-family: sans-serif; margin: 24px; color: #222; } pre { background: #f7f7f7; padding: 12px; overflow-x: auto; font-size: 12px; }</style>
</head>
<body>
<h1>${title}</h1>
<p>${escapeHtml(`${machine.date}: ${machine.nproc} cores, ${machine.cpuModel}, Node ${machine.node}.`)} Shaded bands are the run's phases.</p>
${svg}
<h2>Figures</h2>
<pre>${escapeHtml(renderTable(result))}</pre>
</body>
</html>
`;
}

/**
 * What a benchmark run produces: the result object written as JSON, the time series behind the
 * chart, the verdict on each target of the issue, a plain-text table for the terminal and
 * docs/PERFORMANCE.md, and a self-contained HTML page with inline SVG charts (no dependency,
 * no script, opens offline).
 */
import { BATCH_ENCODINGS } from "./batch-encodings";
import type { RedactionSpeedResult } from "./redaction-speed";
import type { CeilingResult } from "./ceilings";
import type { CountSample } from "./log-counter";
import type { PhaseResult, RequestPoint } from "./product";
import type { ProcSample } from "./procstat";
import { bucketize, round } from "./stats";

export interface MachineInfo {
  readonly date: string;
  readonly hostname: string;
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memory: string;
  readonly node: string;
  readonly java: string;
  readonly os: string;
  readonly loadAverageAtStart: readonly number[];
}

export interface SeriesPoint {
  /** Bucket start, seconds since the run's origin. */
  readonly t: number;
  readonly sentRecords: number;
  readonly acceptedRecords: number;
  readonly storedRecords: number;
  readonly latencyP50: number | undefined;
  readonly latencyP99: number | undefined;
  readonly cpu: Readonly<Record<string, number>>;
  readonly rssMiB: Readonly<Record<string, number>>;
  readonly machineCpu: number | undefined;
}

export interface BenchResult {
  readonly runId: string;
  readonly label: string;
  readonly machine: MachineInfo;
  readonly loadAverageAtEnd: readonly number[];
  readonly options: Readonly<Record<string, unknown>>;
  readonly functionsEnv: Readonly<Record<string, string>>;
  readonly ceilings: readonly CeilingResult[];
  /** Redaction speed measured before the stack started (redaction-speed.ts). */
  readonly redaction?: readonly RedactionSpeedResult[];
  readonly singleTarget: {
    readonly perSecond: number;
    readonly basis: string;
    readonly offered: number;
  };
  readonly phases: readonly PhaseResult[];
  readonly segments: readonly {
    readonly name: string;
    readonly from: number;
    readonly to: number;
  }[];
  readonly series: readonly SeriesPoint[];
}

export interface TargetVerdict {
  readonly target: string;
  readonly met: boolean;
  readonly evidence: string;
}

const MIB = 1024 * 1024;

/** Per-second buckets of requests, stored records and process samples over the whole run. */
export function buildSeries(input: {
  readonly requests: readonly RequestPoint[];
  readonly stored: readonly CountSample[];
  readonly samples: readonly ProcSample[];
  readonly end: number;
  readonly widthMs: number;
}): SeriesPoint[] {
  const { requests, stored, samples, end, widthMs } = input;
  const answered = requests.filter((request) => request.status !== null);
  const latency = bucketize(
    answered.map((request) => ({ t: request.t, value: request.latencyMs })),
    { origin: 0, end, widthMs },
  );
  const n = latency.length;
  const sent = new Array<number>(n).fill(0);
  const accepted = new Array<number>(n).fill(0);
  for (const request of requests) {
    const index = Math.floor(request.t / widthMs);
    if (index < 0 || index >= n) continue;
    sent[index] = (sent[index] ?? 0) + request.records;
    accepted[index] = (accepted[index] ?? 0) + request.accepted;
  }
  // Stored per bucket: the increase of the cumulative counter across the bucket.
  const storedIn = new Array<number>(n).fill(0);
  let previous = stored[0]?.total ?? 0;
  for (const sample of stored) {
    const index = Math.min(n - 1, Math.max(0, Math.floor(sample.t / widthMs)));
    storedIn[index] = (storedIn[index] ?? 0) + (sample.total - previous);
    previous = sample.total;
  }
  return latency.map((bucket, index) => {
    const inBucket = samples.filter(
      (sample) => sample.t >= bucket.t && sample.t < bucket.t + widthMs,
    );
    const cpu: Record<string, number> = {};
    const rss: Record<string, number> = {};
    const machine: number[] = [];
    for (const sample of inBucket) {
      for (const [name, share] of Object.entries(sample.cpu)) {
        cpu[name] = Math.max(cpu[name] ?? 0, share);
      }
      for (const [name, bytes] of Object.entries(sample.rss)) {
        rss[name] = Math.max(rss[name] ?? 0, Math.round(bytes / MIB));
      }
      if (sample.machine !== undefined) machine.push(sample.machine);
    }
    const scale = 1000 / widthMs;
    return {
      t: bucket.t / 1000,
      sentRecords: (sent[index] ?? 0) * scale,
      acceptedRecords: (accepted[index] ?? 0) * scale,
      storedRecords: (storedIn[index] ?? 0) * scale,
      latencyP50: bucket.p50,
      latencyP99: bucket.p99,
      cpu: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v) as number])),
      rssMiB: rss,
      machineCpu:
        machine.length > 0 ? round(machine.reduce((a, b) => a + b, 0) / machine.length) : undefined,
    };
  });
}

/** The issue's targets, judged on this run's figures. */
export function evaluateTargets(result: BenchResult): TargetVerdict[] {
  const byName = (name: string) => result.phases.find((phase) => phase.name === name);
  const verdicts: TargetVerdict[] = [];
  const reconcileText = (phase: PhaseResult) =>
    phase.reconcile === undefined
      ? "not reconciled"
      : `${phase.reconcile.stored}/${phase.reconcile.accepted} stored, ${phase.reconcile.missing} missing, ` +
        `${phase.reconcile.duplicated} duplicated, ${phase.reconcile.unexpected} unexpected`;
  const clean = (phase: PhaseResult) => phase.reconcile?.ok === true && phase.inDoubtRecords === 0;

  const single = byName("single");
  const target = result.singleTarget.perSecond;
  if (single !== undefined) {
    const sustained =
      single.acceptedRecordsPerSecond >= 0.97 * target &&
      single.storedPerSecondDuringLoad >= 0.95 * target &&
      single.drained &&
      single.drainMs <= 10_000 &&
      clean(single);
    verdicts.push({
      target: `Single-record path sustains >= ${round(target)} records/s (${result.singleTarget.basis}) end to end with zero loss`,
      met: sustained,
      evidence:
        `offered ${round(single.offeredRecordsPerSecond)}/s, accepted ${round(single.acceptedRecordsPerSecond)}/s, ` +
        `stored ${round(single.storedPerSecondDuringLoad)}/s during load, drain ${round(single.drainMs / 1000)} s, ` +
        reconcileText(single),
    });
    verdicts.push({
      target: `Ingest p99 <= 50 ms at the single-record target rate`,
      met: (single.latency?.p99 ?? Infinity) <= 50,
      evidence: `p50 ${single.latency?.p50 ?? "-"} ms, p95 ${single.latency?.p95 ?? "-"} ms, p99 ${single.latency?.p99 ?? "-"} ms`,
    });
    verdicts.push({
      target: "Backlog drains within 10 s after the sustained run",
      met: single.drained && single.drainMs <= 10_000,
      evidence: single.drained
        ? `drained ${round(single.drainMs / 1000)} s after the last answer`
        : `not drained after ${round(single.drainMs / 1000)} s`,
    });
  }
  const brief = byName("brief");
  if (brief !== undefined) {
    verdicts.push({
      target: "Ingest p99 <= 15 ms at the brief's 1,000 requests/minute",
      met: (brief.latency?.p99 ?? Infinity) <= 15 && clean(brief),
      evidence: `p50 ${brief.latency?.p50 ?? "-"} ms, p99 ${brief.latency?.p99 ?? "-"} ms; ${reconcileText(brief)}`,
    });
  }
  for (const batch of result.phases.filter((phase) => phase.kind === "batch")) {
    verdicts.push({
      target: `Batch path (${pathLabel(batch)}) stores >= 5,000 records/s end to end`,
      met: batch.storedPerSecondEndToEnd >= 5_000 && batch.drained && clean(batch),
      evidence:
        `offered ${round(batch.offeredRecordsPerSecond)}/s, accepted ${round(batch.acceptedRecordsPerSecond)}/s, ` +
        `stored ${round(batch.storedPerSecondEndToEnd)}/s from first request to last write ` +
        `(${round(batch.storedPerSecondDuringLoad)}/s during load), drain ${round(batch.drainMs / 1000)} s, ` +
        reconcileText(batch),
    });
  }
  const workerPeak = Math.max(
    0,
    ...result.phases.flatMap((phase) =>
      phase.processes.filter((proc) => proc.name === "worker").map((proc) => proc.hwmBytes),
    ),
  );
  if (workerPeak > 0) {
    verdicts.push({
      target: "Process function within 256 MiB",
      met: workerPeak <= 256 * MIB,
      evidence: `worker peak RSS (VmHWM) ${round(workerPeak / MIB)} MiB`,
    });
  }
  return verdicts;
}

// ---------------------------------------------------------------------------------------------
// Plain-text table

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(" | ")} |`;
  return [
    line(headers),
    `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`,
    ...rows.map(line),
  ].join("\n");
}

const fmt = (value: number | undefined, unit = "") =>
  value === undefined || !Number.isFinite(value) ? "-" : `${round(value)}${unit}`;

/** "NDJSON x 500", "OTLP protobuf x 500", "single record". */
function pathLabel(phase: PhaseResult): string {
  return phase.kind === "batch"
    ? `${BATCH_ENCODINGS[phase.encoding ?? "ndjson"].label} x ${phase.batchSize}`
    : "single record";
}

/** Markdown tables (which read as plain text in a terminal too). */
export function renderTable(result: BenchResult & { targets?: readonly TargetVerdict[] }): string {
  const { machine } = result;
  const parts: string[] = [];
  parts.push(
    `Run ${result.runId}${result.label ? ` (${result.label})` : ""}: ${machine.date}, ${machine.nproc} cores ` +
      `${machine.cpuModel}, ${machine.memory}, Node ${machine.node}, load average at start ` +
      `${machine.loadAverageAtStart.join(" ")} / at end ${result.loadAverageAtEnd.join(" ")}`,
  );
  if (result.ceilings.length > 0) {
    parts.push(
      table(
        ["Ceiling (trivial client, same run)", "rate/s", "count", "s", "how"],
        result.ceilings.map((item) => [
          item.name,
          fmt(item.rate),
          String(item.count),
          fmt(item.seconds),
          item.note,
        ]),
      ),
    );
  }
  const phases = result.phases;
  const row = (label: string, value: (phase: PhaseResult) => string) => [
    label,
    ...phases.map(value),
  ];
  parts.push(
    table(
      ["Product", ...phases.map((phase) => phase.name)],
      [
        row("path", pathLabel),
        row("request body KiB (mean, on the wire)", (p) =>
          fmt(p.meanRequestBytes === undefined ? undefined : p.meanRequestBytes / 1024),
        ),
        row("offered records/s", (p) => fmt(p.offeredRecordsPerSecond)),
        row("load duration s", (p) => fmt(p.loadSeconds)),
        row("requests sent/s", (p) => fmt(p.sentRequestsPerSecond)),
        row("accepted (202; OTLP 200) req/s", (p) => fmt(p.acceptedRequestsPerSecond)),
        row("accepted records/s", (p) => fmt(p.acceptedRecordsPerSecond)),
        row("statuses", (p) =>
          Object.entries(p.statuses)
            .map(([status, count]) => `${status}:${count}`)
            .join(" "),
        ),
        row("ingest latency p50 ms", (p) => fmt(p.latency?.p50)),
        row("ingest latency p95 ms", (p) => fmt(p.latency?.p95)),
        row("ingest latency p99 ms", (p) => fmt(p.latency?.p99)),
        row("ingest latency max ms", (p) => fmt(p.latency?.max)),
        row("stored records/s during load", (p) => fmt(p.storedPerSecondDuringLoad)),
        row("stored records/s end to end", (p) => fmt(p.storedPerSecondEndToEnd)),
        row("drain after load s", (p) =>
          p.drained ? fmt(p.drainMs / 1000) : `>${fmt(p.drainMs / 1000)} (not drained)`,
        ),
        row("accepted / stored", (p) =>
          p.reconcile ? `${p.reconcile.accepted} / ${p.reconcile.stored}` : "-",
        ),
        row("lost (missing)", (p) => (p.reconcile ? String(p.reconcile.missing) : "-")),
        row("duplicated", (p) => (p.reconcile ? String(p.reconcile.duplicated) : "-")),
        row("unexpected", (p) => (p.reconcile ? String(p.reconcile.unexpected) : "-")),
        row("machine CPU busy (of nproc)", (p) => `${fmt(p.machineCpuShare)} / ${machine.nproc}`),
      ],
    ),
  );
  const names = phases[0]?.processes.map((proc) => proc.name) ?? [];
  parts.push(
    table(
      ["Process: CPU mean / peak (cores), peak RSS MiB", ...phases.map((phase) => phase.name)],
      names
        .map((name) => [
          name,
          ...phases.map((phase) => {
            const proc = phase.processes.find((item) => item.name === name);
            return proc === undefined
              ? "-"
              : `${fmt(proc.cpuShare)} / ${fmt(proc.peakCpuShare)}, ${fmt(proc.peakRssBytes / MIB)}`;
          }),
        ])
        .concat([
          [
            "other processes on the machine",
            ...phases.map((phase) => {
              const ours = phase.processes.reduce((sum, proc) => sum + proc.cpuShare, 0);
              return `${fmt(Math.max(0, phase.machineCpuShare - ours))} (machine ${fmt(phase.machineCpuShare)} of ${machine.nproc})`;
            }),
          ],
        ]),
    ),
  );
  const hwm = phases.at(-1)?.processes ?? [];
  parts.push(
    `Peak RSS over the whole run (VmHWM): ${hwm
      .map((proc) => `${proc.name} ${fmt(proc.hwmBytes / MIB)} MiB`)
      .join(", ")}`,
  );
  if (result.targets !== undefined) {
    parts.push(
      table(
        ["Target", "met", "evidence"],
        result.targets.map((verdict) => [
          verdict.target,
          verdict.met ? "yes" : "NO",
          verdict.evidence,
        ]),
      ),
    );
  }
  return parts.join("\n\n");
}

// ---------------------------------------------------------------------------------------------
// HTML with inline SVG

interface Line {
  readonly name: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number | undefined])[];
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f"];

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function niceMax(value: number): number {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * magnitude) return step * magnitude;
  return 10 * magnitude;
}

function chart(options: {
  readonly title: string;
  readonly unit: string;
  readonly lines: readonly Line[];
  readonly xMax: number;
  readonly yMax?: number;
  readonly bands: BenchResult["segments"];
}): string {
  const width = 1100;
  const height = 260;
  const left = 60;
  const right = 10;
  const top = 28;
  const bottom = 30;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const observed = Math.max(
    0,
    ...options.lines.flatMap((line) => line.points.map(([, y]) => y ?? 0)),
  );
  const yMax = niceMax(options.yMax ?? observed);
  const x = (t: number) => left + (t / Math.max(1, options.xMax)) * plotW;
  const y = (v: number) => top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
  );
  parts.push(
    `<text x="${left}" y="16" font-size="13" font-weight="bold">${escapeHtml(options.title)}</text>`,
  );
  options.bands.forEach((band, index) => {
    const x0 = x(band.from / 1000);
    const x1 = x(band.to / 1000);
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${top}" width="${Math.max(0, x1 - x0).toFixed(1)}" height="${plotH}" fill="${
        index % 2 === 0 ? "#f3f3f3" : "#e8eef7"
      }"/>`,
      `<text x="${(x0 + 2).toFixed(1)}" y="${top + 10}" fill="#555" font-size="9">${escapeHtml(band.name)}</text>`,
    );
  });
  for (let i = 0; i <= 4; i += 1) {
    const value = (yMax * i) / 4;
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}" stroke="#ddd"/>`,
      `<text x="${left - 4}" y="${(y(value) + 4).toFixed(1)}" text-anchor="end">${round(value)}</text>`,
    );
  }
  const xStep = niceMax(options.xMax / 10);
  for (let t = 0; t <= options.xMax; t += xStep) {
    parts.push(`<text x="${x(t).toFixed(1)}" y="${height - 12}" text-anchor="middle">${t}</text>`);
  }
  parts.push(
    `<text x="${width - right}" y="${height - 2}" text-anchor="end">seconds since start</text>`,
    `<text x="12" y="${top + plotH / 2}" transform="rotate(-90 12 ${top + plotH / 2})" text-anchor="middle">${escapeHtml(options.unit)}</text>`,
  );
  options.lines.forEach((line) => {
    const segments: string[] = [];
    let current: string[] = [];
    for (const [t, value] of line.points) {
      if (value === undefined) {
        if (current.length > 1) segments.push(current.join(" "));
        current = [];
        continue;
      }
      current.push(`${x(t).toFixed(1)},${y(value).toFixed(1)}`);
    }
    if (current.length > 1) segments.push(current.join(" "));
    for (const points of segments) {
      parts.push(
        `<polyline fill="none" stroke="${line.color}" stroke-width="1.5" points="${points}"/>`,
      );
    }
  });
  options.lines.forEach((line, index) => {
    const lx = left + 10 + index * 170;
    parts.push(
      `<rect x="${lx}" y="${height - 28}" width="10" height="3" fill="${line.color}"/>`,
      `<text x="${lx + 14}" y="${height - 24}">${escapeHtml(line.name)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

export function renderHtml(result: BenchResult & { targets?: readonly TargetVerdict[] }): string {
  const series = result.series;
  const xMax = Math.ceil(series.at(-1)?.t ?? 1) + 1;
  const processNames = [
    ...new Set(series.flatMap((point) => Object.keys(point.cpu).concat(Object.keys(point.rssMiB)))),
  ];
  const charts = [
    chart({
      title: "Throughput: records accepted (202) and stored per second",
      unit: "records/s",
      xMax,
      bands: result.segments,
      lines: [
        {
          name: "offered (sent)",
          color: "#bbbbbb",
          points: series.map((p) => [p.t, p.sentRecords]),
        },
        {
          name: "accepted",
          color: PALETTE[0] as string,
          points: series.map((p) => [p.t, p.acceptedRecords]),
        },
        {
          name: "stored",
          color: PALETTE[2] as string,
          points: series.map((p) => [p.t, p.storedRecords]),
        },
      ],
    }),
    chart({
      title: "Ingest latency per second of sending (batch phases: per batch request)",
      unit: "ms",
      xMax,
      yMax: Math.min(1_000, Math.max(20, ...series.map((p) => p.latencyP99 ?? 0))),
      bands: result.segments,
      lines: [
        {
          name: "p50",
          color: PALETTE[0] as string,
          points: series.map((p) => [p.t, p.latencyP50]),
        },
        {
          name: "p99",
          color: PALETTE[1] as string,
          points: series.map((p) => [p.t, p.latencyP99]),
        },
      ],
    }),
    chart({
      title: "CPU per process (1 = one core), peak of the second",
      unit: "cores",
      xMax,
      bands: result.segments,
      lines: [
        ...processNames.map((name, index) => ({
          name,
          color: PALETTE[index % PALETTE.length] as string,
          points: series.map((p): [number, number | undefined] => [p.t, p.cpu[name]]),
        })),
        { name: "whole machine", color: "#000000", points: series.map((p) => [p.t, p.machineCpu]) },
      ],
    }),
    chart({
      title: "Resident memory per process",
      unit: "MiB",
      xMax,
      bands: result.segments,
      lines: processNames.map((name, index) => ({
        name,
        color: PALETTE[index % PALETTE.length] as string,
        points: series.map((p): [number, number | undefined] => [p.t, p.rssMiB[name]]),
      })),
    }),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Robust Data Processor benchmark ${escapeHtml(result.runId)}</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; }
pre { background: #f7f7f7; padding: 12px; overflow-x: auto; font-size: 12px; }
</style>
</head>
<body>
<h1>Benchmark ${escapeHtml(result.runId)}${result.label ? ` (${escapeHtml(result.label)})` : ""}</h1>
<p>${escapeHtml(result.machine.date)}: ${result.machine.nproc} cores, ${escapeHtml(result.machine.cpuModel)}, Node ${escapeHtml(result.machine.node)}. Shaded bands are the run's phases.</p>
${charts.join("\n")}
<h2>Figures</h2>
<pre>${escapeHtml(renderTable(result))}</pre>
</body>
</html>
`;
}

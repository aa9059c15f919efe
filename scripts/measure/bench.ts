/**
 * `npm run bench`: the machine's ceilings and the product's throughput and latency, measured in
 * one run on the same emulators, so every product figure reads against what this machine can do
 * at that moment. Prints tables and writes `docs/bench/<timestamp>[-label].json`, a
 * self-contained chart page `.html` (opens offline) and the same charts as `.png`.
 *
 *   npm run bench -- [--single-seconds 60] [--single-rate auto|N] [--brief-seconds 30]
 *                    [--knee 0.25,0.5,0.75|none] [--knee-seconds 20]
 *                    [--batch-seconds 20] [--batch-rate 6000] [--batch-size 500]
 *                    [--ceiling-seconds 5] [--no-ceilings] [--label text] [--out docs/bench]
 *                    [--coalesce-ms N] [--log-record-success] [--firestore-heap 3g]
 *                    [--only redaction|<phase>,<phase>,...] [--baseline path/to/redaction.ts]
 *                    [--redaction-rounds 7]
 *   npm run bench -- --only noisy-neighbour [--noisy-limit 200] [--noisy-seconds 30]
 *                    [--noisy-batch 1]
 *
 * Order: the redaction speed (no emulator; `--only redaction` stops there), then on the
 * production-faithful stack with diagnostics on: a warm-up, the ceilings, the brief's 1,000
 * requests a minute, the knee (fractions of the single rate), the broker's own publish-ack
 * latency and the single-record target rate (min(833/s, 0.6 x the push ceiling) unless
 * --single-rate), and the batch path as NDJSON, gzip NDJSON and OTLP protobuf. Phases named in
 * `--only` keep the warm-up and the ceilings; `--only noisy-neighbour` runs the quota phase alone
 * on a stack limited to --noisy-limit.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT, emulatorFirestore } from "../local/lib/emulators";
import { startStack, type Stack } from "../local/lib/stack";
import * as ceilings from "./lib/ceilings";
import type { BatchEncoding } from "./lib/batch-encodings";
import { FunctionLog } from "./lib/log-counter";
import {
  runNoisyNeighbour,
  runPhase,
  type PhaseResult,
  type PhaseSpec,
  type RequestPoint,
} from "./lib/product";
import { ProcSampler, jvmOfGroup } from "./lib/procstat";
import { firestoreReconciler } from "../operate/lib/reconcile";
import { measureRedactionSpeed, renderRedactionSpeed } from "./lib/redaction-speed";
import * as report from "./lib/report";
import { round } from "./lib/stats";

const PROJECT = "demo-rdp-bench";
/** The issue's single-record target: 50,000 records a minute. */
const SINGLE_TARGET_PER_SECOND = 50_000 / 60;
const BRIEF_PER_SECOND = Math.round((1_000 / 60) * 100) / 100;
const PRODUCT_PHASES = ["brief", "knee", "single", "batch", "batch-gzip", "batch-otlp"] as const;
type ProductPhase = (typeof PRODUCT_PHASES)[number];
const BATCH_ENCODING: Readonly<Record<string, BatchEncoding>> = {
  batch: "ndjson",
  "batch-gzip": "ndjson+gzip",
  "batch-otlp": "otlp-protobuf",
};
/** How often the functions log their diagnostics line, and the logs are read. */
const DIAGNOSTICS_MS = 250;

function parseOptions(argv: readonly string[]) {
  const { values: v } = parseArgs({
    args: [...argv],
    options: {
      "single-seconds": { type: "string", default: "60" },
      "single-rate": { type: "string", default: "auto" },
      "brief-seconds": { type: "string", default: "30" },
      knee: { type: "string", default: "0.25,0.5,0.75" },
      "knee-seconds": { type: "string", default: "20" },
      "batch-seconds": { type: "string", default: "20" },
      "batch-rate": { type: "string", default: "6000" },
      "batch-size": { type: "string", default: "500" },
      "ceiling-seconds": { type: "string", default: "5" },
      "no-ceilings": { type: "boolean", default: false },
      label: { type: "string", default: "" },
      out: { type: "string", default: path.join("docs", "bench") },
      "coalesce-ms": { type: "string" },
      "log-record-success": { type: "boolean", default: false },
      "firestore-heap": { type: "string", default: "3g" },
      only: { type: "string" },
      baseline: { type: "string" },
      "redaction-rounds": { type: "string", default: "7" },
      "noisy-limit": { type: "string", default: "200" },
      "noisy-seconds": { type: "string", default: "30" },
      "noisy-batch": { type: "string", default: "1" },
    },
  });
  const number = (name: keyof typeof v, min: number, max: number, raw = String(v[name])) => {
    const value = Number(raw);
    if (raw === "" || !Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${name} must be a number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  const only = v.only?.split(",").map((name) => name.trim());
  const alone = ["redaction", "noisy-neighbour"];
  const unknown = only?.filter((name) => ![...alone, ...PRODUCT_PHASES].includes(name)) ?? [];
  if (unknown.length > 0 || (only?.some((name) => alone.includes(name)) && only.length > 1)) {
    throw new Error(
      `--only takes "redaction", "noisy-neighbour" or some of ${PRODUCT_PHASES.join(", ")}; got "${v.only}"`,
    );
  }
  return {
    singleSeconds: number("single-seconds", 5, 900),
    singleRate: v["single-rate"] === "auto" ? ("auto" as const) : number("single-rate", 1, 20_000),
    briefSeconds: number("brief-seconds", 5, 600),
    knee:
      v.knee === "none" ? [] : (v.knee ?? "").split(",").map((raw) => number("knee", 0.01, 2, raw)),
    kneeSeconds: number("knee-seconds", 5, 600),
    batchSeconds: number("batch-seconds", 3, 600),
    batchRate: number("batch-rate", 100, 100_000),
    batchSize: number("batch-size", 1, 1_000),
    ceilingSeconds: number("ceiling-seconds", 2, 60),
    ceilings: v["no-ceilings"] !== true,
    label: v.label ?? "",
    outDir: path.resolve(REPO_ROOT, v.out ?? ""),
    coalesceMs: v["coalesce-ms"] === undefined ? undefined : number("coalesce-ms", 0, 50),
    logRecordSuccess: v["log-record-success"] === true,
    firestoreHeap: v["firestore-heap"] ?? "3g",
    /** The product phases to run, in this order for the batch ones; all when not given. */
    only: only as readonly ("redaction" | "noisy-neighbour" | ProductPhase)[] | undefined,
    baseline: v.baseline,
    redactionRounds: number("redaction-rounds", 1, 50),
    noisyLimit: number("noisy-limit", 1, 100_000),
    noisySeconds: number("noisy-seconds", 5, 600),
    noisyBatch: number("noisy-batch", 1, 1_000),
  };
}
type BenchOptions = ReturnType<typeof parseOptions>;

function outputBase(options: BenchOptions, machine: report.MachineInfo, kind = ""): string {
  fs.mkdirSync(options.outDir, { recursive: true });
  const stamp = machine.date.replace(/:/g, "-").replace(/\..*/, "Z");
  return path.join(options.outDir, [stamp + kind, options.label].filter(Boolean).join("-"));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const machine = report.machineInfo();
  const runId = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").toLowerCase();
  const log = (line: string) => console.log(line);
  log(
    `Benchmark ${runId} on ${machine.nproc} cores (${machine.cpuModel}), Node ${machine.node}, load average ${machine.loadAverageAtStart.join(" ")}`,
  );

  // The result of a run of one part alone (redaction, noisy-neighbour): its own JSON file.
  const writePart = (kind: string, part: Record<string, unknown>) => {
    const file = `${outputBase(options, machine, `-${kind}`)}.json`;
    const result = { runId, label: options.label, machine, options, ...part };
    fs.writeFileSync(
      file,
      `${JSON.stringify({ ...result, loadAverageAtEnd: report.loadAverage() }, null, 2)}\n`,
    );
    log(`Wrote ${path.relative(REPO_ROOT, file)}`);
  };

  if (options.only?.includes("noisy-neighbour")) {
    const noisy = await runNoisyNeighbour({
      limitPerSecond: options.noisyLimit,
      seconds: options.noisySeconds,
      floodBatchSize: options.noisyBatch,
      runId,
      log,
    });
    log(
      JSON.stringify(noisy, (key, value: unknown) => (key === "reconcile" ? undefined : value), 2),
    );
    return writePart("noisy-neighbour", { noisy });
  }
  const productPhases = options.only?.includes("redaction")
    ? []
    : ((options.only as readonly ProductPhase[] | undefined) ?? PRODUCT_PHASES);
  // A run of chosen product phases skips the redaction speed, which needs no stack.
  const redaction =
    options.only === undefined || productPhases.length === 0
      ? await measureRedactionSpeed({
          baselinePath: options.baseline,
          rounds: options.redactionRounds,
          lines: 20_000,
        })
      : [];
  if (redaction.length > 0) log(renderRedactionSpeed(redaction));
  if (productPhases.length === 0) {
    return writePart("redaction", { redaction });
  }

  let stack: Stack | undefined;
  const stop = async () => {
    const running = stack;
    stack = undefined;
    await running?.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => void stop().finally(() => process.exit(130)));
  }
  try {
    log("Starting the production-faithful stack (emulators, ingest, worker), diagnostics on...");
    const env: Record<string, string> = { DIAGNOSTICS_INTERVAL_MS: String(DIAGNOSTICS_MS) };
    if (options.coalesceMs !== undefined) env.INGEST_COALESCE_MS = String(options.coalesceMs);
    if (options.logRecordSuccess) env.LOG_RECORD_SUCCESS = "true";
    stack = await startStack({
      project: PROJECT,
      topic: "rdp-bench",
      name: "bench",
      freshLogs: true,
      emulatorOptions: { firestoreMaxHeap: options.firestoreHeap },
      env,
    });
    const running = stack;
    const origin = Date.now();
    const clock = () => Date.now() - origin;
    // Found once: a JVM is not restarted during a run, and pgrep on every tick would cost CPU.
    const [pubsubJvm, firestoreJvm] = [running.emulators.pubsub, running.emulators.firestore].map(
      (emulator) => jvmOfGroup(emulator.pid),
    );
    const sampler = new ProcSampler(
      {
        ingest: () => running.ingest.pid,
        worker: () => running.worker.pid,
        "pubsub-emulator": () => pubsubJvm,
        "firestore-emulator": () => firestoreJvm,
        "bench (load client)": () => process.pid,
      },
      origin,
    );
    sampler.start();
    const logs = {
      ingest: new FunctionLog(running.logs.ingest, clock, "records_accepted"),
      worker: new FunctionLog(running.logs.process, clock, "records_stored"),
    };
    for (const functionLog of Object.values(logs)) functionLog.start(DIAGNOSTICS_MS);
    const firestore = emulatorFirestore(PROJECT, running.firestoreHost);
    const requests: RequestPoint[] = [];
    const context = {
      ingestUrl: running.ingestUrl,
      project: PROJECT,
      firestoreHost: running.firestoreHost,
      runId,
      origin,
      sampler,
      counter: logs.worker,
      reconcile: firestoreReconciler(firestore),
      requests,
      log,
    };
    const segments: { name: string; from: number; to: number }[] = [];
    const segment = async <T>(name: string, body: () => Promise<T>): Promise<T> => {
      const from = clock();
      try {
        return await body();
      } finally {
        segments.push({ name, from, to: clock() });
      }
    };
    const phases: PhaseResult[] = [];
    const phase = async (spec: PhaseSpec) => {
      const result = await segment(spec.name, () => runPhase(context, spec));
      if (spec.reconcile === false) return;
      phases.push(result);
      log(`    ${report.phaseRates(result)}; p99 ${round(result.latency?.p99) ?? "-"} ms`);
    };
    const single = (name: string, recordsPerSecond: number, seconds: number, reconcile = true) =>
      phase({ name, kind: "single", recordsPerSecond, seconds, concurrency: 1_024, reconcile });
    const batch = (
      name: string,
      encoding: BatchEncoding,
      recordsPerSecond: number,
      seconds: number,
      reconcile = true,
    ) =>
      phase({
        name,
        kind: "batch",
        encoding,
        recordsPerSecond,
        seconds,
        batchSize: options.batchSize,
        concurrency: 16,
        reconcile,
      });

    log("Warm-up (not reported): both JVMs and both functions on their real paths");
    await single("warmup", 300, 10, false);
    for (const name of productPhases) {
      const encoding = BATCH_ENCODING[name];
      if (encoding !== undefined) await batch(`warmup-${name}`, encoding, 2_000, 4, false);
    }

    const measured: ceilings.CeilingResult[] = [];
    const ceilingOptions = {
      project: PROJECT,
      pubsubHost: running.pubsubHost,
      firestoreHost: running.firestoreHost,
      logDir: running.logs.dir,
      seconds: options.ceilingSeconds,
      runId,
    };
    const ceiling = async (
      name: string,
      body: () => Promise<ceilings.CeilingResult | ceilings.CeilingResult[]>,
    ) => {
      for (const item of [await segment(name, body)].flat()) {
        measured.push(item);
        log(
          `  ${item.name}: ${Math.round(item.rate)}/s${item.latency ? `, p50 ${round(item.latency.p50)} ms, p99 ${round(item.latency.p99)} ms` : ""} (${item.note})`,
        );
      }
    };
    if (options.ceilings) {
      log("Ceilings (trivial clients on the same emulators):");
      await ceiling("ceiling: publish", () => ceilings.measurePublishCeiling(ceilingOptions));
      await ceiling("ceiling: push", () =>
        ceilings.measurePushCeiling({ ...ceilingOptions, receiver: "framework" }),
      );
      await ceiling("ceiling: push (bare)", () =>
        ceilings.measurePushCeiling({ ...ceilingOptions, receiver: "bare" }),
      );
      await ceiling("ceiling: firestore", () => ceilings.measureFirestoreCeilings(ceilingOptions));
    }
    const pushCeiling = measured.find((item) => item.name.includes("(push ceiling)"))?.rate;
    const autoRate = Math.min(SINGLE_TARGET_PER_SECOND, 0.6 * (pushCeiling ?? Infinity));
    const singleRate = options.singleRate === "auto" ? Math.round(autoRate) : options.singleRate;

    log("Product (production-faithful stack, API keys, 4 tenants a phase):");
    for (const name of productPhases) {
      if (name === "brief") await single("brief", BRIEF_PER_SECOND, options.briefSeconds);
      if (name === "knee") {
        for (const share of options.knee)
          await single(
            `knee-${Math.round(share * 100)}`,
            Math.round(share * singleRate),
            options.kneeSeconds,
          );
      }
      if (name === "single") {
        // The broker's own tail at the same rate, just before: the yardstick for ingest's.
        const seconds = Math.min(30, options.singleSeconds);
        await ceiling("broker publish-ack", () =>
          ceilings.measurePublishLatency({ ...ceilingOptions, seconds, rate: singleRate }),
        );
        await single("single", singleRate, options.singleSeconds);
      }
      const encoding = BATCH_ENCODING[name];
      if (encoding !== undefined)
        await batch(name, encoding, options.batchRate, options.batchSeconds);
    }

    for (const functionLog of Object.values(logs)) functionLog.stop();
    await sampler.stop();
    await firestore.terminate();
    const result: report.BenchResult = {
      runId,
      label: options.label,
      machine,
      loadAverageAtEnd: report.loadAverage(),
      options: { ...options, outDir: path.relative(REPO_ROOT, options.outDir) },
      functionsEnv: env,
      ceilings: measured,
      redaction,
      singleTarget: {
        perSecond: Math.round(autoRate * 10) / 10,
        basis:
          autoRate < SINGLE_TARGET_PER_SECOND
            ? `0.6 x push ceiling (${Math.round(pushCeiling ?? 0)}/s)`
            : "50,000 records/minute",
      },
      phases,
      costs: report.phaseCosts({
        phases,
        requests,
        logs,
        cpuPressure: (from, to) => sampler.cpuPressure(from, to),
      }),
      segments,
      series: report.buildSeries({
        requests,
        stored: logs.worker.series,
        samples: sampler.samples,
      }),
    };
    const final: report.BenchResult = { ...result, targets: report.evaluateTargets(result) };
    const base = outputBase(options, machine);
    const svg = await report.renderSvg(final);
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(final, null, 2)}\n`);
    fs.writeFileSync(`${base}.html`, report.renderHtml(final, svg));
    fs.writeFileSync(`${base}.png`, report.renderPng(svg));
    log(
      `\n${report.renderTable(final)}\n\nWrote ${path.relative(REPO_ROOT, base)}.json, .html and .png`,
    );
  } finally {
    await stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);

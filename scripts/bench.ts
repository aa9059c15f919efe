/**
 * `npm run bench`: the machine's ceilings and the product's throughput, measured in one run on
 * the same emulators, so every product figure can be read against what this machine can do
 * at that moment. Prints a table and writes `docs/bench/<timestamp>.json` and a self-contained
 * chart `docs/bench/<timestamp>.html`. About 5 to 8 minutes with the defaults.
 *
 *   npm run bench -- [--single-seconds 60] [--single-rate auto|N] [--brief-seconds 30]
 *                    [--batch-seconds 20] [--batch-rate 6000] [--batch-size 500]
 *                    [--ceiling-seconds 5] [--no-ceilings] [--label text] [--out docs/bench]
 *                    [--coalesce-ms N] [--firestore-heap 3g]
 *                    [--only redaction|<phase>,<phase>,...] [--baseline path/to/redaction.ts]
 *                    [--redaction-rounds 7]
 *
 * First, without any emulator, the redaction speed: MB/s of log text through redact() on one
 * core, line by line, with an optional baseline implementation timed beside it (rounds
 * interleaved); `--only redaction` stops there, in seconds. For a before/after figure:
 *
 *   git show <commit>:functions/src/lib/redaction.ts > /tmp/redaction-before.ts
 *   npm run bench -- --only redaction --baseline /tmp/redaction-before.ts
 *
 * Then the phases, in order: a warm-up (the JVMs need 20-30 s before their figures settle), the
 * ceilings (Pub/Sub publish, push to a no-op function, push to a bare server, Firestore single
 * and batched writes), the brief's 1,000 requests a minute, the single-record target rate
 * (min(833/s, 0.6 x the push ceiling measured just before), unless --single-rate is given),
 * and the batch path three ways at the same offered load (--batch-*): NDJSON, the same NDJSON
 * gzip-compressed, and OTLP/HTTP protobuf (`/v1/logs`, bodies from the OpenTelemetry JS
 * serializer). Each product phase waits for the backlog to drain (bounded) and reconciles every
 * accepted record against Firestore. `--only batch,batch-otlp` runs just those phases (after
 * the warm-up, and the ceilings unless --no-ceilings), the batch ones in the order listed; the
 * names are in PRODUCT_PHASES.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT, emulatorFirestore } from "./lib/emulators";
import { startStack, type Stack } from "./lib/stack";
import {
  measureFirestoreCeilings,
  measurePublishCeiling,
  measurePushCeiling,
  type CeilingResult,
} from "./lib/bench/ceilings";
import type { BatchEncoding } from "./lib/bench/batch-encodings";
import { StoredCounter } from "./lib/bench/log-counter";
import { runPhase, type PhaseResult, type PhaseSpec, type RequestPoint } from "./lib/bench/product";
import { ProcSampler, childWithArgument, jvmOfGroup } from "./lib/bench/procstat";
import { firestoreReconciler } from "./lib/reconcile";
import {
  measureRedactionSpeed,
  renderRedactionSpeed,
  type RedactionSpeedResult,
} from "./lib/bench/redaction-speed";
import {
  buildSeries,
  evaluateTargets,
  renderHtml,
  renderTable,
  type BenchResult,
  type MachineInfo,
} from "./lib/bench/report";

const PROJECT = "demo-rdp-bench";
/** The issue's single-record target: 50,000 records a minute. */
const SINGLE_TARGET_PER_SECOND = 50_000 / 60;
const BRIEF_PER_SECOND = 1_000 / 60;
/** The product phases in the order they run; the batch ones differ only in the body. */
const PRODUCT_PHASES = ["brief", "single", "batch", "batch-gzip", "batch-otlp"] as const;
type ProductPhase = (typeof PRODUCT_PHASES)[number];
const BATCH_PHASES: readonly { name: ProductPhase; encoding: BatchEncoding }[] = [
  { name: "batch", encoding: "ndjson" },
  { name: "batch-gzip", encoding: "ndjson+gzip" },
  { name: "batch-otlp", encoding: "otlp-protobuf" },
];

interface BenchOptions {
  readonly singleSeconds: number;
  readonly singleRate: number | "auto";
  readonly briefSeconds: number;
  readonly batchSeconds: number;
  readonly batchRate: number;
  readonly batchSize: number;
  readonly ceilingSeconds: number;
  readonly ceilings: boolean;
  readonly label: string;
  readonly outDir: string;
  readonly coalesceMs: number | undefined;
  readonly firestoreHeap: string;
  /** Redaction speed alone, or the product phases to run; undefined runs everything. */
  readonly only: "redaction" | readonly ProductPhase[] | undefined;
  readonly baseline: string | undefined;
  readonly redactionRounds: number;
}

function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      "single-seconds": { type: "string", default: "60" },
      "single-rate": { type: "string", default: "auto" },
      "brief-seconds": { type: "string", default: "30" },
      "batch-seconds": { type: "string", default: "20" },
      "batch-rate": { type: "string", default: "6000" },
      "batch-size": { type: "string", default: "500" },
      "ceiling-seconds": { type: "string", default: "5" },
      "no-ceilings": { type: "boolean", default: false },
      label: { type: "string", default: "" },
      out: { type: "string", default: path.join("docs", "bench") },
      "coalesce-ms": { type: "string" },
      "firestore-heap": { type: "string", default: "3g" },
      only: { type: "string" },
      baseline: { type: "string" },
      "redaction-rounds": { type: "string", default: "7" },
    },
  });
  const number = (name: string, raw: string, min: number, max: number) => {
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${name} must be a number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  const singleRate = values["single-rate"] as string;
  return {
    singleSeconds: number("single-seconds", values["single-seconds"] as string, 5, 900),
    singleRate: singleRate === "auto" ? "auto" : number("single-rate", singleRate, 1, 20_000),
    briefSeconds: number("brief-seconds", values["brief-seconds"] as string, 5, 600),
    batchSeconds: number("batch-seconds", values["batch-seconds"] as string, 3, 600),
    batchRate: number("batch-rate", values["batch-rate"] as string, 100, 100_000),
    batchSize: number("batch-size", values["batch-size"] as string, 1, 1_000),
    ceilingSeconds: number("ceiling-seconds", values["ceiling-seconds"] as string, 2, 60),
    ceilings: !(values["no-ceilings"] as boolean),
    label: values.label as string,
    outDir: path.resolve(REPO_ROOT, values.out as string),
    coalesceMs:
      values["coalesce-ms"] === undefined
        ? undefined
        : number("coalesce-ms", values["coalesce-ms"], 0, 50),
    firestoreHeap: values["firestore-heap"] as string,
    only: onlyOption(values.only),
    baseline: values.baseline,
    redactionRounds: number("redaction-rounds", values["redaction-rounds"] as string, 1, 50),
  };
}

function onlyOption(value: string | undefined): BenchOptions["only"] {
  if (value === undefined || value === "redaction") return value;
  const names = value.split(",").map((name) => name.trim());
  const unknown = names.filter((name) => !(PRODUCT_PHASES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `--only takes "redaction" or a comma-separated list of ${PRODUCT_PHASES.join(", ")}; ` +
        `got "${value}"`,
    );
  }
  return names as ProductPhase[];
}

function machineInfo(): MachineInfo {
  // stdout and stderr both captured (java -version prints to stderr); "" when it cannot run.
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
    loadAverageAtStart: os.loadavg().map((value) => Math.round(value * 100) / 100),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const machine = machineInfo();
  const runId = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").toLowerCase();
  const log = (line: string) => console.log(line);
  log(
    `Benchmark ${runId} on ${machine.nproc} cores (${machine.cpuModel}), Node ${machine.node}, ` +
      `load average ${machine.loadAverageAtStart.join(" ")}`,
  );

  const selected = (name: ProductPhase) =>
    options.only === undefined || (options.only !== "redaction" && options.only.includes(name));
  // In the order --only lists them, so a second run can swap the order the phases meet.
  const batchPhases = (Array.isArray(options.only) ? options.only : PRODUCT_PHASES).flatMap(
    (name) => BATCH_PHASES.filter((batch) => batch.name === name),
  );
  // A run of chosen product phases skips the redaction speed, which needs no stack.
  const redaction: RedactionSpeedResult[] = Array.isArray(options.only)
    ? []
    : await measureRedactionSpeed({
        baselinePath: options.baseline,
        rounds: options.redactionRounds,
        lines: 20_000,
      });
  if (redaction.length > 0) log(renderRedactionSpeed(redaction));
  if (options.only === "redaction") {
    const stamp = machine.date.replace(/:/g, "-").replace(/\..*/, "Z");
    const file = path.join(
      options.outDir,
      `${stamp}-redaction${options.label ? `-${options.label}` : ""}.json`,
    );
    fs.mkdirSync(options.outDir, { recursive: true });
    fs.writeFileSync(
      file,
      `${JSON.stringify({ runId, label: options.label, machine, options, redaction, loadAverageAtEnd: os.loadavg() }, null, 2)}\n`,
    );
    log(`Wrote ${path.relative(REPO_ROOT, file)}`);
    return;
  }

  let stack: Stack | undefined;
  const stop = async () => {
    const running = stack;
    stack = undefined;
    await running?.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      void stop().finally(() => process.exit(130));
    });
  }

  try {
    log("Starting the production-faithful stack (emulators, ingest, worker)...");
    const env: Record<string, string> = {};
    if (options.coalesceMs !== undefined) env.INGEST_COALESCE_MS = String(options.coalesceMs);
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
    let ingestPid: number | undefined;
    const sampler = new ProcSampler(
      {
        ingest: () => {
          if (ingestPid === undefined || !fs.existsSync(`/proc/${ingestPid}`)) {
            ingestPid = childWithArgument("--target=ingest");
          }
          return ingestPid;
        },
        worker: () => running.worker.pid,
        "pubsub-emulator": () => jvmOfGroup(running.emulators.pubsub.pid),
        "firestore-emulator": () => jvmOfGroup(running.emulators.firestore.pid),
        "bench (load client)": () => process.pid,
      },
      origin,
      500,
    );
    sampler.start();
    const counter = new StoredCounter(running.logs.process, clock, 250);
    counter.start();
    const firestore = emulatorFirestore(PROJECT, running.firestoreHost);
    const requests: RequestPoint[] = [];
    const context = {
      ingestUrl: running.ingestUrl,
      project: PROJECT,
      firestoreHost: running.firestoreHost,
      runId,
      origin,
      sampler,
      counter,
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
    const phase = (
      spec: Omit<PhaseSpec, "tenants" | "drainTimeoutMs" | "reconcile"> & Partial<PhaseSpec>,
    ) =>
      segment(spec.name, () =>
        runPhase(context, { tenants: 4, drainTimeoutMs: 120_000, reconcile: true, ...spec }),
      );

    log("Warm-up (not reported): both JVMs and both functions on their real paths");
    await phase({
      name: "warmup",
      kind: "single",
      recordsPerSecond: 300,
      seconds: 10,
      concurrency: 64,
      reconcile: false,
    });
    for (const { name, encoding } of batchPhases) {
      await phase({
        name: `warmup-${name}`,
        kind: "batch",
        encoding,
        recordsPerSecond: 2_000,
        seconds: 4,
        batchSize: options.batchSize,
        concurrency: 8,
        reconcile: false,
      });
    }

    const ceilings: CeilingResult[] = [];
    if (options.ceilings) {
      log("Ceilings (trivial clients on the same emulators):");
      const ceilingOptions = {
        project: PROJECT,
        pubsubHost: running.pubsubHost,
        firestoreHost: running.firestoreHost,
        logDir: running.logs.dir,
        seconds: options.ceilingSeconds,
        runId,
      };
      const measured = async (result: Promise<CeilingResult | CeilingResult[]>) => {
        for (const item of [await result].flat()) {
          ceilings.push(item);
          log(`  ${item.name}: ${Math.round(item.rate)}/s (${item.note})`);
        }
      };
      await segment("ceiling: publish", () => measured(measurePublishCeiling(ceilingOptions)));
      await segment("ceiling: push", () =>
        measured(measurePushCeiling({ ...ceilingOptions, receiver: "framework" })),
      );
      await segment("ceiling: push (bare)", () =>
        measured(measurePushCeiling({ ...ceilingOptions, receiver: "bare" })),
      );
      await segment("ceiling: firestore", () => measured(measureFirestoreCeilings(ceilingOptions)));
    }
    const pushCeiling = ceilings.find((item) => item.name.includes("(push ceiling)"))?.rate;
    const autoRate =
      pushCeiling === undefined
        ? SINGLE_TARGET_PER_SECOND
        : Math.min(SINGLE_TARGET_PER_SECOND, 0.6 * pushCeiling);
    const singleRate = options.singleRate === "auto" ? Math.round(autoRate) : options.singleRate;

    log("Product (production-faithful stack, API keys, 4 tenants a phase):");
    const phases: PhaseResult[] = [];
    const report = (result: PhaseResult) => {
      phases.push(result);
      const r = result.reconcile;
      log(
        `    accepted ${Math.round(result.acceptedRecordsPerSecond)} records/s, p99 ` +
          `${result.latency?.p99 ?? "-"} ms, stored ${Math.round(result.storedPerSecondEndToEnd)}/s ` +
          `end to end, drain ${(result.drainMs / 1000).toFixed(1)} s` +
          (r
            ? `, reconcile: ${r.stored}/${r.accepted} stored, ${r.missing} missing, ${r.duplicated} duplicated, ${r.unexpected} unexpected`
            : ""),
      );
    };
    if (selected("brief")) {
      report(
        await phase({
          name: "brief",
          kind: "single",
          recordsPerSecond: Math.round(BRIEF_PER_SECOND * 100) / 100,
          seconds: options.briefSeconds,
          concurrency: 32,
        }),
      );
    }
    if (selected("single")) {
      report(
        await phase({
          name: "single",
          kind: "single",
          recordsPerSecond: singleRate,
          seconds: options.singleSeconds,
          concurrency: 128,
        }),
      );
    }
    for (const { name, encoding } of batchPhases) {
      report(
        await phase({
          name,
          kind: "batch",
          encoding,
          recordsPerSecond: options.batchRate,
          seconds: options.batchSeconds,
          batchSize: options.batchSize,
          concurrency: 16,
        }),
      );
    }

    counter.stop();
    sampler.stop();
    await firestore.terminate();
    const result: BenchResult = {
      runId,
      label: options.label,
      machine,
      loadAverageAtEnd: os.loadavg().map((value) => Math.round(value * 100) / 100),
      options: { ...options, outDir: path.relative(REPO_ROOT, options.outDir) },
      functionsEnv: env,
      ceilings,
      redaction,
      singleTarget: {
        perSecond: Math.round(autoRate * 10) / 10,
        basis:
          pushCeiling !== undefined && 0.6 * pushCeiling < SINGLE_TARGET_PER_SECOND
            ? `0.6 x push ceiling (${Math.round(pushCeiling)}/s)`
            : "50,000 records/minute",
        offered: singleRate,
      },
      phases,
      segments,
      series: buildSeries({
        requests,
        stored: counter.series,
        samples: sampler.samples,
        end: clock(),
        widthMs: 1_000,
      }),
    };
    const targets = evaluateTargets(result);
    const final = { ...result, targets };

    fs.mkdirSync(options.outDir, { recursive: true });
    const stamp = machine.date.replace(/:/g, "-").replace(/\..*/, "Z");
    const base = path.join(options.outDir, `${stamp}${options.label ? `-${options.label}` : ""}`);
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(final, null, 2)}\n`);
    fs.writeFileSync(`${base}.html`, renderHtml(final));
    log("");
    log(renderTable(final));
    log("");
    log(`Wrote ${path.relative(REPO_ROOT, base)}.json and .html`);
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

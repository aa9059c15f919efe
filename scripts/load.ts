/**
 * `npm run load -- <scenario>`: one artillery scenario of load/ end to end.
 *
 *   npm run load -- baseline|ramp|spike|soak|chaos|<file.yml> [--tenants 4]
 *       [--target URL --api-key KEY [--project P]] [--drain-timeout S] [--quiet S]
 *
 * Without --target it starts the production-faithful local stack (emulators, ingest, worker;
 * `chaos` with fault injection in the worker), creates API keys for a few tenants of this run
 * only, runs artillery, waits for the pipeline to drain and reconciles every 202 against
 * Firestore (scripts/lib/reconcile.ts): each accepted record stored exactly once, nothing else
 * in the run's tenants. With --target it sends to a deployed ingest URL with the given key;
 * the reconciliation then reads the real Firestore of --project through Application Default
 * Credentials, covering only this run's documents (their log ids start with the run id), and
 * is skipped, with a note, when that is not possible. Results: `.run/load/<scenario>-<run>/`
 * (artillery's JSON report, the recorded 202s, summary.json).
 *
 * Exit code: 0 when artillery's `ensure` checks passed and (when reconciled) nothing was lost,
 * duplicated or unexpected; 1 otherwise; 2 on a usage error.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { Firestore } from "@google-cloud/firestore";
import { REPO_ROOT, emulatorFirestore } from "./lib/emulators";
import {
  DEFAULT_QUIET_MS,
  type ParsedRecords,
  type ReconcileReport,
  countDocuments,
  fileSizeActivity,
  formatReport,
  parseRecordsJsonl,
  reconcileRun,
  sha256Hex,
} from "./lib/reconcile";
import { type Stack, type StackOptions, startStack } from "./lib/stack";
import { recordText } from "./lib/bench/payloads";
import { runSingleLoad } from "./lib/bench/single-driver";
import { seedTenantKeys, tenantIds } from "./lib/bench/tenants";

const PROJECT = "demo-rdp-load";
const LOAD_DIR = path.join(REPO_ROOT, "load");
const ARTILLERY = path.join(REPO_ROOT, "node_modules", "artillery", "bin", "run");

/** What a scenario needs from the local stack besides the defaults. */
const STACK_SETUP: Readonly<Record<string, Partial<StackOptions>>> = {
  chaos: {
    // As the chaos tests: a fifth of the deliveries fail, and now and then the worker dies.
    env: { FAULT_FAILURE_RATE: "0.2", FAULT_CRASH_RATE: "0.002" },
  },
};

const USAGE = `Usage: npm run load -- <scenario> [options]

  scenario             baseline, ramp, spike, soak, chaos (load/<name>.yml) or a .yml path
  --tenants N          tenants (one API key each) of a local run (default 4)
  --target URL         a deployed ingest URL instead of the local stack (needs --api-key)
  --api-key KEY        the tenant API key for --target
  --project P          reconcile a --target run against the real Firestore of project P
                       (Application Default Credentials); without it that part is skipped
  --drain-timeout S    longest wait for the pipeline to drain after the load (default 180)
  --quiet S            drained once nothing changed for S seconds (default ${DEFAULT_QUIET_MS / 1000})`;

class UsageError extends Error {}

interface Options {
  readonly scenario: string;
  readonly scenarioFile: string;
  readonly tenants: number;
  readonly target: string | undefined;
  readonly apiKey: string | undefined;
  readonly project: string | undefined;
  readonly drainTimeoutMs: number;
  readonly quietMs: number;
}

function parseOptions(argv: readonly string[]): Options {
  const { values, positionals } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      tenants: { type: "string", default: "4" },
      target: { type: "string" },
      "api-key": { type: "string" },
      project: { type: "string" },
      "drain-timeout": { type: "string", default: "180" },
      quiet: { type: "string", default: String(DEFAULT_QUIET_MS / 1000) },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help === true) throw new UsageError("");
  const [scenario, ...rest] = positionals;
  if (scenario === undefined || rest.length > 0) throw new UsageError("name one scenario");
  const scenarioFile = scenario.endsWith(".yml")
    ? path.resolve(scenario)
    : path.join(LOAD_DIR, `${scenario}.yml`);
  if (!fs.existsSync(scenarioFile)) throw new UsageError(`no scenario file ${scenarioFile}`);
  const number = (name: string, raw: string, min: number, max: number) => {
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new UsageError(`--${name} must be a number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  if ((values.target === undefined) !== (values["api-key"] === undefined)) {
    throw new UsageError("--target and --api-key go together");
  }
  return {
    scenario: path.basename(scenarioFile, ".yml"),
    scenarioFile,
    tenants: number("tenants", values.tenants as string, 1, 50),
    target: values.target?.replace(/\/+$/, ""),
    apiKey: values["api-key"],
    project: values.project,
    drainTimeoutMs: number("drain-timeout", values["drain-timeout"] as string, 1, 3600) * 1000,
    quietMs: number("quiet", values.quiet as string, 0, 600) * 1000,
  };
}

interface Tenant {
  readonly tenant_id: string;
  readonly api_key: string;
}

/** Runs artillery with the scenario; resolves with its exit code. */
function runArtillery(
  options: Options,
  target: string,
  tenants: readonly Tenant[],
  runId: string,
  recordDir: string,
  reportFile: string,
): Promise<number> {
  const args = [ARTILLERY, "run", options.scenarioFile, "--target", target, "--output", reportFile];
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    stdio: "inherit",
    env: {
      ...process.env,
      ARTILLERY_DISABLE_TELEMETRY: "true",
      RDP_LOAD_TENANTS: JSON.stringify(tenants),
      RDP_LOAD_RECORD_DIR: recordDir,
      RDP_LOAD_RUN_ID: runId,
    },
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  });
}

/** Every line the processor's workers appended, one file per worker. */
function readRecords(recordDir: string): ParsedRecords {
  const files = fs.existsSync(recordDir)
    ? fs.readdirSync(recordDir).filter((name) => name.endsWith(".jsonl"))
    : [];
  const text = files.map((name) => fs.readFileSync(path.join(recordDir, name), "utf8")).join("\n");
  return parseRecordsJsonl(text);
}

/** A deployed target: one request first, to check URL and key and learn the key's tenant. */
async function probeTenant(target: string, apiKey: string, runId: string): Promise<Tenant> {
  const response = await fetch(`${target}/ingest`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ log_id: `${runId}-probe`, text: `load probe ${runId}` }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = await response.text();
  if (response.status !== 202) {
    throw new Error(`probe request to ${target}/ingest got ${response.status}: ${body}`);
  }
  const answer = JSON.parse(body) as { tenant_id?: string };
  if (typeof answer.tenant_id !== "string") throw new Error(`probe answer has no tenant: ${body}`);
  return { tenant_id: answer.tenant_id, api_key: apiKey };
}

/**
 * A fresh local stack answers its first requests slowly (JIT, the key cache, the emulators'
 * first writes); a tenant of its own takes that, outside the scenario and its reconciliation.
 */
async function warmUp(stack: Stack, runId: string): Promise<void> {
  const [key] = await seedTenantKeys({ projectId: PROJECT, firestoreHost: stack.firestoreHost }, [
    `load-${runId}-warmup`,
  ]);
  if (key === undefined) return;
  console.log("Warming up the stack (10 s at 20 requests/s, a tenant outside the run)...");
  await runSingleLoad({
    url: stack.ingestUrl,
    tenants: [{ tenantId: key.tenantId, apiKey: key.apiKey }],
    recordsPerSecond: 20,
    seconds: 10,
    concurrency: 8,
    logIdPrefix: `${runId}-warmup`,
    textOf: (index) => recordText(index, 1),
  });
}

interface ArtilleryAggregate {
  readonly counters?: Record<string, number>;
  readonly summaries?: Record<string, Record<string, number>>;
  readonly rates?: Record<string, number>;
  readonly firstMetricAt?: number;
  readonly lastMetricAt?: number;
}

interface ArtilleryReport {
  readonly aggregate?: ArtilleryAggregate;
  /** One a reporting period (10 s). */
  readonly intermediate?: readonly (ArtilleryAggregate & { readonly period?: string | number })[];
}

function readArtilleryReport(file: string): ArtilleryReport {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as ArtilleryReport;
  } catch {
    return {};
  }
}

/** Latency over time, a line a period: where a ramp's knee shows. */
function periodLines(report: ArtilleryReport): string[] {
  const periods = report.intermediate ?? [];
  const first = Number(periods[0]?.period);
  if (periods.length < 2 || !Number.isFinite(first)) return [];
  const lines = ["  per 10 s        t    req/s    p50 ms    p95 ms    p99 ms"];
  for (const period of periods) {
    const latency = period.summaries?.["http.response_time"] ?? {};
    const requests = period.counters?.["http.requests"] ?? 0;
    const cells = [
      `${(Number(period.period) - first) / 1000}`.padStart(5),
      (requests / 10).toFixed(1).padStart(8),
      ...[latency.p50, latency.p95, latency.p99].map((v) => String(v ?? "-").padStart(9)),
    ];
    lines.push(`               ${cells.join(" ")}`);
  }
  return lines;
}

function summaryLines(aggregate: ArtilleryAggregate | undefined): string[] {
  if (aggregate === undefined) return ["  (no artillery report)"];
  const counters = aggregate.counters ?? {};
  const latency = aggregate.summaries?.["http.response_time"] ?? {};
  const codes = Object.entries(counters)
    .filter(([name]) => name.startsWith("http.codes."))
    .map(([name, n]) => `${name.slice("http.codes.".length)}:${n}`)
    .join(" ");
  const errors = Object.entries(counters)
    .filter(([name]) => name.startsWith("errors."))
    .map(([name, n]) => `${name.slice("errors.".length)}:${n}`)
    .join(" ");
  const seconds =
    aggregate.firstMetricAt !== undefined && aggregate.lastMetricAt !== undefined
      ? (aggregate.lastMetricAt - aggregate.firstMetricAt) / 1000
      : undefined;
  const requests = counters["http.requests"] ?? 0;
  return [
    `  requests       ${requests}` +
      (seconds ? ` over ${seconds.toFixed(0)} s (${(requests / seconds).toFixed(1)}/s)` : ""),
    `  statuses       ${codes || "-"}`,
    `  errors         ${errors || "none"}`,
    `  latency ms     p50 ${latency.p50 ?? "-"}, p95 ${latency.p95 ?? "-"}, p99 ${latency.p99 ?? "-"}, max ${latency.max ?? "-"}`,
    `  sent           ${counters["rdp.sent.json"] ?? 0} JSON, ${counters["rdp.sent.text"] ?? 0} text/plain`,
    `  virtual users  ${counters["vusers.created"] ?? 0} created, ${counters["vusers.failed"] ?? 0} failed`,
  ];
}

async function main(argv: readonly string[]): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(argv);
  } catch (error) {
    const message = (error as Error).message;
    console.error(message === "" ? USAGE : `${message}\n\n${USAGE}`);
    return message === "" ? 0 : 2;
  }
  const started = new Date();
  const runId = `ld${started.toISOString().replace(/\D/g, "").slice(2, 14)}`;
  const runDir = path.join(REPO_ROOT, ".run", "load", `${options.scenario}-${runId}`);
  const recordDir = path.join(runDir, "records");
  const reportFile = path.join(runDir, "artillery.json");
  fs.mkdirSync(recordDir, { recursive: true });

  let stack: Stack | undefined;
  const stopStack = async () => {
    const running = stack;
    stack = undefined;
    await running?.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      void stopStack().finally(() => process.exit(130));
    });
  }

  try {
    let target: string;
    let tenants: Tenant[];
    if (options.target === undefined) {
      const setup = STACK_SETUP[options.scenario] ?? {};
      console.log(
        `Starting the local stack for ${options.scenario}` +
          (setup.env ? ` with ${Object.entries(setup.env).map(([k, v]) => `${k}=${v}`)}` : "") +
          "...",
      );
      stack = await startStack({
        project: PROJECT,
        topic: "rdp-load",
        name: `load-${options.scenario}`,
        freshLogs: true,
        ...setup,
      });
      target = stack.ingestUrl.replace(/\/+$/, "");
      const keys = await seedTenantKeys(
        { projectId: PROJECT, firestoreHost: stack.firestoreHost },
        tenantIds(runId, options.tenants),
      );
      tenants = keys.map((key) => ({ tenant_id: key.tenantId, api_key: key.apiKey }));
      await warmUp(stack, runId);
    } else {
      const tenant = await probeTenant(options.target, options.apiKey as string, runId);
      fs.writeFileSync(
        path.join(recordDir, "probe.jsonl"),
        `${JSON.stringify({
          tenant_id: tenant.tenant_id,
          log_id: `${runId}-probe`,
          text_sha256: sha256Hex(`load probe ${runId}`),
        })}\n`,
      );
      target = options.target;
      tenants = [tenant];
    }
    console.log(
      `Run ${runId}: ${options.scenario} against ${target}, tenants ${tenants.map((t) => t.tenant_id).join(", ")}`,
    );

    const artilleryCode = await runArtillery(
      options,
      target,
      tenants,
      runId,
      recordDir,
      reportFile,
    );
    const loadEnded = Date.now();
    const artilleryReport = readArtilleryReport(reportFile);
    const aggregate = artilleryReport.aggregate;
    const records = readRecords(recordDir);

    let report: ReconcileReport | undefined;
    let note: string | undefined;
    let drainSeconds: number | undefined;
    const firestore = stack
      ? emulatorFirestore(PROJECT, stack.firestoreHost)
      : options.project
        ? new Firestore({ projectId: options.project })
        : undefined;
    if (firestore === undefined) {
      note =
        "reconciliation SKIPPED: a deployed target needs Firestore access; pass --project <id> " +
        "with Application Default Credentials that can read it (the 202s are recorded in " +
        `${path.relative(REPO_ROOT, recordDir)})`;
    } else {
      try {
        const tenantList = tenants.map((t) => t.tenant_id);
        // A deployed tenant holds other runs' documents too: only this run's are checked there.
        const logIdPrefix = stack ? undefined : runId;
        // A deployed project: fail fast (and skip) when Firestore cannot be read at all.
        if (!stack) await countDocuments(firestore, tenantList, logIdPrefix);
        console.log(
          `Waiting for the pipeline to drain ${records.accepted.length} accepted records...`,
        );
        report = await reconcileRun(
          firestore,
          { ...records, tenants: tenantList },
          {
            timeoutMs: options.drainTimeoutMs,
            quietMs: options.quietMs,
            logIdPrefix,
            ...(stack ? { activity: fileSizeActivity([stack.logs.process]) } : {}),
            onProgress: (documents: number, expected: number) => {
              if (documents >= expected && drainSeconds === undefined) {
                drainSeconds = (Date.now() - loadEnded) / 1000;
              }
            },
          },
        );
      } catch (error) {
        if (stack) throw error;
        note = `reconciliation SKIPPED: Firestore of ${options.project} not readable (${(error as Error).message.split("\n")[0]})`;
      } finally {
        await firestore.terminate();
      }
    }

    const lines = [
      "",
      `==== load ${options.scenario} (${runId}) ====`,
      `  target         ${target}${stack ? " (local stack)" : ""}`,
      ...periodLines(artilleryReport),
      ...summaryLines(aggregate),
      `  recorded       ${records.accepted.length} accepted, ${records.inDoubt.length} in doubt (${path.relative(REPO_ROOT, recordDir)})`,
      `  ensure checks  ${artilleryCode === 0 ? "passed" : `FAILED (artillery exit code ${artilleryCode})`}`,
    ];
    if (stack) lines.push(`  worker         ${stack.worker.restarts} restarts after crashes`);
    if (report) {
      lines.push(
        `  drain          ${drainSeconds === undefined ? "not complete" : `last record stored ${drainSeconds.toFixed(1)} s after the load ended`}`,
        ...formatReport(report, "  reconciliation").split("\n"),
      );
    } else lines.push(`  ${note}`);
    const ok =
      artilleryCode === 0 && (report === undefined || (report.ok && report.drain?.drained));
    lines.push(`RESULT: ${ok ? "PASS" : "FAIL"}`);
    console.log(lines.join("\n"));
    fs.writeFileSync(
      path.join(runDir, "summary.json"),
      `${JSON.stringify(
        {
          scenario: options.scenario,
          runId,
          target,
          local: stack !== undefined,
          artilleryExitCode: artilleryCode,
          artillery: aggregate
            ? {
                counters: aggregate.counters,
                latency: aggregate.summaries?.["http.response_time"],
              }
            : null,
          drainSeconds: drainSeconds ?? null,
          reconcile: report ?? null,
          note: note ?? null,
          ok,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`Wrote ${path.relative(REPO_ROOT, runDir)}/summary.json`);
    return ok ? 0 : 1;
  } finally {
    await stopStack();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`load run failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);

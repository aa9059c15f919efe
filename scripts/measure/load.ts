/**
 * `npm run load -- <scenario>` (README, "Load tests"): a scenario of lib/scenarios.ts sent by the
 * one load engine to the local stack it starts (or to --target), then the pipeline's drain and
 * the reconciliation of every 202 against Firestore. Results in `.run/load/<scenario>-<run>/`.
 * Exit code 0 when the `ensure` thresholds held and nothing was lost, duplicated or unexpected;
 * 1 otherwise; 2 on a usage error.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { Firestore } from "@google-cloud/firestore";
import { SCENARIOS, type Scenario } from "./lib/scenarios";
import { REPO_ROOT, emulatorFirestore } from "../local/lib/emulators";
import { summarize, type Summary } from "./lib/stats";
import { type LoadReport, arrivalTimes, runLoad } from "./lib/load-engine";
import {
  DEFAULT_QUIET_MS,
  type ExpectedRecord,
  sha256Hex,
  type ReconcileReport,
  fileSizeActivity,
  formatReport,
  reconcileRun,
  toReconcileJsonl,
} from "../operate/lib/reconcile";
import { type Stack, startStack } from "../local/lib/stack";
import { seedTenantKeys, tenantIds } from "./lib/tenants";

const PROJECT = "demo-rdp-load";

const USAGE = `Usage: npm run load -- <scenario> [options]

  scenario             ${Object.keys(SCENARIOS).join(", ")} (scripts/measure/lib/scenarios.ts), or a .json
                       file of the same shape
  --tenants N          tenants (one API key each) of a local run (default 4)
  --target URL         a deployed ingest URL instead of the local stack (needs --api-key)
  --api-key KEY        the tenant API key for --target
  --project P          reconcile a --target run against the real Firestore of project P
                       (Application Default Credentials); without it that part is skipped
  --drain-timeout S    longest wait for the pipeline to drain after the load (default 180)
  --quiet S            drained once nothing changed for S seconds (default ${DEFAULT_QUIET_MS / 1000})`;

function parseOptions(argv: readonly string[]) {
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
  if (values.help === true) throw new Error("");
  const [name, ...rest] = positionals;
  if (name === undefined || rest.length > 0) throw new Error("name one scenario");
  let scenario = SCENARIOS[name];
  if (scenario === undefined && name.endsWith(".json") && fs.existsSync(name)) {
    scenario = JSON.parse(fs.readFileSync(name, "utf8")) as Scenario;
  }
  if (scenario === undefined) throw new Error(`no scenario ${name}`);
  const number = (option: string, raw: string, min: number, max: number) => {
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new Error(`--${option} must be a number from ${min} to ${max}, got "${raw}"`);
    }
    return value;
  };
  if ((values.target === undefined) !== (values["api-key"] === undefined)) {
    throw new Error("--target and --api-key go together");
  }
  return {
    name: path.basename(name, ".json"),
    scenario,
    tenants: number("tenants", values.tenants as string, 1, 50),
    target: values.target?.replace(/\/+$/, ""),
    apiKey: values["api-key"],
    project: values.project,
    drainTimeoutMs: number("drain-timeout", values["drain-timeout"] as string, 1, 3600) * 1000,
    quietMs: number("quiet", values.quiet as string, 0, 600) * 1000,
  };
}

/** A deployed target: one request first, to check URL and key and learn the key's tenant. */
async function probeTenant(url: string, apiKey: string, runId: string) {
  const record = { log_id: `${runId}-probe`, text: `load probe ${runId}` };
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    body: JSON.stringify(record),
    signal: AbortSignal.timeout(30_000),
  });
  const body = await response.text();
  const tenant = response.status === 202 && (JSON.parse(body) as { tenant_id?: unknown }).tenant_id;
  if (typeof tenant !== "string")
    throw new Error(`probe to ${url} got ${response.status}: ${body}`);
  return { tenant_id: tenant, log_id: record.log_id, text_sha256: sha256Hex(record.text) };
}

const ms = (value: number | undefined) => (value === undefined ? "-" : String(value));
const latencyText = (latency: Summary | undefined) =>
  latency === undefined
    ? "-"
    : `p50 ${latency.p50}, p90 ${latency.p90}, p99 ${latency.p99}, p99.9 ${latency.p999}, max ${latency.max}`;

/** Latency over time, a line each 10 s of schedule: where a ramp's knee shows. */
function periodLines(load: LoadReport): string[] {
  const periods: number[][] = [];
  for (const { status, scheduledAt, latencyMs } of load.outcomes) {
    if (status !== null)
      (periods[Math.floor((scheduledAt - load.startedAt) / 10_000)] ??= []).push(latencyMs);
  }
  const lines = ["  per 10 s        t    req/s    p50 ms    p99 ms    max ms"];
  // forEach skips the periods without an answer.
  periods.forEach((values, period) => {
    const latency = summarize(values);
    const cells = [String(period * 10).padStart(5), (values.length / 10).toFixed(1).padStart(8)];
    cells.push(...[latency?.p50, latency?.p99, latency?.max].map((v) => ms(v).padStart(9)));
    lines.push(`               ${cells.join(" ")}`);
  });
  return lines.length > 2 ? lines : [];
}

/** The scenario's thresholds; each failed one as a line. */
function ensureFailures(scenario: Scenario, load: LoadReport): string[] {
  const { maxErrorRate, ...limits } = scenario.ensure;
  const failures = Object.entries(limits).flatMap(([name, limit]) => {
    const value = load.latency?.[name as keyof typeof limits];
    return value === undefined || value > limit ? [`${name} ${ms(value)} ms > ${limit}`] : [];
  });
  const errors = load.requests - (load.statuses["202"] ?? 0);
  const errorRate = load.requests === 0 ? 100 : (100 * errors) / load.requests;
  if (errorRate > maxErrorRate) {
    failures.push(
      `${errors} requests without a 202 (${errorRate.toFixed(2)} % > ${maxErrorRate} %)`,
    );
  }
  return failures;
}

async function main(argv: readonly string[]): Promise<number> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions(argv);
  } catch (error) {
    const message = (error as Error).message;
    console.error(message === "" ? USAGE : `${message}\n\n${USAGE}`);
    return message === "" ? 0 : 2;
  }
  const { scenario } = options;
  const runId = `ld${new Date().toISOString().replace(/\D/g, "").slice(2, 14)}`;
  const runDir = path.join(REPO_ROOT, ".run", "load", `${options.name}-${runId}`);
  fs.mkdirSync(runDir, { recursive: true });

  let stack: Stack | undefined;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => void Promise.resolve(stack?.stop()).finally(() => process.exit(130)));
  }

  try {
    let target: string;
    let tenants: string[];
    let apiKeys: Record<string, string>;
    let probe: ExpectedRecord | undefined;
    if (options.target === undefined) {
      const env = scenario.stackEnv ?? {};
      console.log(
        `Starting the local stack for ${options.name} ` +
          `${Object.entries(env).map(([k, v]) => `${k}=${v} `)}...`,
      );
      stack = await startStack({
        project: PROJECT,
        topic: "rdp-load",
        name: `load-${options.name}`,
        freshLogs: true,
        env,
      });
      target = stack.ingestUrl.replace(/\/+$/, "");
      const warmTenant = `load-${runId}-warmup`;
      tenants = tenantIds(runId, options.tenants);
      const keys = await seedTenantKeys(
        { projectId: PROJECT, firestoreHost: stack.firestoreHost },
        [warmTenant, ...tenants],
        "load",
      );
      apiKeys = Object.fromEntries(keys.map((key) => [key.tenantId, key.apiKey]));
      // A fresh stack answers its first requests slowly (JIT, the key cache, the emulators'
      // first writes); a tenant of its own takes that, outside the scenario and its checks.
      console.log("Warming up the stack (10 s at 20 requests/s, a tenant outside the run)...");
      const warmup = { records: 200, ratePerSecond: 20, logIdPrefix: `${runId}-warmup` };
      await runLoad({ url: target, tenants: [warmTenant], apiKeys, ...warmup });
    } else {
      target = `${options.target}/ingest`;
      probe = await probeTenant(target, options.apiKey as string, runId);
      tenants = [probe.tenant_id];
      apiKeys = { [probe.tenant_id]: options.apiKey as string };
    }
    console.log(
      `Run ${runId}: ${options.name} (${scenario.about}) against ${target}, tenants ${tenants.join(", ")}`,
    );

    const load = await runLoad({
      url: target,
      tenants,
      apiKeys,
      at: arrivalTimes(scenario.phases),
      jsonShare: 0.6,
      logIdPrefix: runId,
    });
    const loadEnded = Date.now();
    const records = {
      accepted: [...(probe ? [probe] : []), ...load.accepted],
      inDoubt: load.inDoubt,
    };
    const recordsFile = path.join(runDir, "records.jsonl");
    fs.writeFileSync(recordsFile, toReconcileJsonl(records));
    const failures = ensureFailures(scenario, load);

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
        `with Application Default Credentials that can read it (records in ${recordsFile})`;
    } else {
      try {
        // A deployed tenant holds other runs' documents too: only this run's are checked there,
        // and a Firestore that cannot be read at all skips the check rather than fail the run.
        console.log(`Waiting for the pipeline to drain ${records.accepted.length} records...`);
        report = await reconcileRun(
          firestore,
          { ...records, tenants },
          {
            timeoutMs: options.drainTimeoutMs,
            quietMs: options.quietMs,
            logIdPrefix: stack ? undefined : runId,
            ...(stack ? { activity: fileSizeActivity([stack.logs.process]) } : {}),
            onProgress: (documents, expected) => {
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
      `==== load ${options.name} (${runId}) ====`,
      `  target         ${target}${stack ? " (local stack)" : ""}`,
      ...periodLines(load),
      `  requests       ${load.requests}: offered ${load.offeredPerSecond.toFixed(1)}/s, ` +
        `sent ${load.sentPerSecond.toFixed(1)}/s, at most ${load.maxInFlight} in flight`,
      `  statuses       ${Object.entries(load.statuses)
        .map(([status, n]) => `${status}:${n}`)
        .join(" ")}`,
      `  latency ms     ${latencyText(load.latency)} (from the scheduled send time)`,
      `  send lag ms    ${latencyText(load.sendLag)} (the client behind its schedule)`,
      `  recorded       ${records.accepted.length} accepted, ${records.inDoubt.length} in doubt (${path.relative(REPO_ROOT, recordsFile)})`,
      `  ensure checks  ${failures.length === 0 ? "passed" : `FAILED: ${failures.join("; ")}`}`,
    ];
    if (stack) lines.push(`  worker         ${stack.worker.restarts} restarts after crashes`);
    if (report) {
      lines.push(
        `  drain          ${drainSeconds === undefined ? "not complete" : `last record stored ${drainSeconds.toFixed(1)} s after the load ended`}`,
        ...formatReport(report, "  reconciliation").split("\n"),
      );
    } else lines.push(`  ${note}`);
    const ok =
      failures.length === 0 && (report === undefined || (report.ok && report.drain?.drained));
    lines.push(`RESULT: ${ok ? "PASS" : "FAIL"}`);
    console.log(lines.join("\n"));
    const { requests, statuses, offeredPerSecond, sentPerSecond, maxInFlight, latency, sendLag } =
      load;
    const summary = {
      scenario: options.name,
      runId,
      target,
      local: stack !== undefined,
      load: { requests, statuses, offeredPerSecond, sentPerSecond, maxInFlight, latency, sendLag },
      ensure: { thresholds: scenario.ensure, failures },
      drainSeconds: drainSeconds ?? null,
      reconcile: report ?? null,
      note: note ?? null,
      ok,
    };
    fs.writeFileSync(path.join(runDir, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    console.log(`Wrote ${path.relative(REPO_ROOT, runDir)}/summary.json`);
    return ok ? 0 : 1;
  } finally {
    await stack?.stop();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`load run failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(1);
  },
);

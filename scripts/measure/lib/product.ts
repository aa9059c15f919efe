/**
 * The product under load: phases of single-record or batch traffic against the ingest function
 * of a running stack, sent by the one load engine (open loop, latency from the scheduled send
 * time), each followed by the one drain wait and a reconciliation of every accepted record
 * against Firestore. `runNoisyNeighbour` is the per-tenant rate limit's bench (issue 12).
 */
import { emulatorFirestore, sleep } from "../../local/lib/emulators";
import { arrivalTimes, type LoadReport, runLoad } from "./load-engine";
import { ratePerSecond } from "./stats";
import {
  type ReconcileInput,
  type ReconcileReport,
  countDocuments,
  reconcileRun,
  waitForDrain,
} from "../../operate/lib/reconcile";
import { startStack } from "../../local/lib/stack";
import type { BatchEncoding } from "./batch-encodings";
import type { FunctionLog } from "./log-counter";
import type { ProcSampler } from "./procstat";
import { seedTenantKeys, tenantIds, type TenantKey } from "./tenants";

export interface ProductContext {
  readonly ingestUrl: string;
  readonly project: string;
  readonly firestoreHost: string;
  readonly runId: string;
  readonly origin: number;
  readonly sampler: ProcSampler;
  readonly counter: Pick<FunctionLog, "poll">;
  /** reconcile.ts firestoreReconciler. */
  readonly reconcile: (input: ReconcileInput) => Promise<ReconcileReport>;
  /** Every request of every phase, for the chart. */
  readonly requests: RequestPoint[];
  readonly log: (line: string) => void;
}

export interface RequestPoint {
  readonly phase: string;
  /** ms since the run's origin when the request was due (its scheduled send time). */
  readonly t: number;
  /** From the scheduled send time to the answer. */
  readonly latencyMs: number;
  readonly status: number | null;
  /** Records the request carried and how many were accepted. */
  readonly records: number;
  readonly accepted: number;
}

export interface PhaseSpec {
  readonly name: string;
  readonly kind: "single" | "batch";
  /** Records offered per second (open loop). */
  readonly recordsPerSecond: number;
  readonly seconds: number;
  /** Records per request on the batch path. */
  readonly batchSize?: number;
  /** The batch path's body: NDJSON (the default), gzip NDJSON or OTLP protobuf. */
  readonly encoding?: BatchEncoding;
  /** Connections at most (wrk2's -c): requests beyond wait for one with their clock running. */
  readonly concurrency?: number;
  /** Default 4 tenants, 120 s of drain at most. */
  readonly tenants?: number;
  readonly drainTimeoutMs?: number;
  /** False for the warm-up: waited for, not reconciled. */
  readonly reconcile?: boolean;
}

export type PhaseResult = Awaited<ReturnType<typeof runPhase>>;

function loadOf(keys: readonly TenantKey[]) {
  return {
    tenants: keys.map((key) => key.tenantId),
    apiKeys: Object.fromEntries(keys.map((key) => [key.tenantId, key.apiKey])),
  };
}

export async function runPhase(context: ProductContext, phase: PhaseSpec) {
  const spec = { tenants: 4, drainTimeoutMs: 120_000, reconcile: true, ...phase };
  const clock = () => Date.now() - context.origin;
  const keys = await seedTenantKeys(
    { projectId: context.project, firestoreHost: context.firestoreHost },
    tenantIds(`${context.runId}-${spec.name}`, spec.tenants),
    "load",
  );
  const batchSize = spec.kind === "batch" ? (spec.batchSize ?? 100) : 1;
  const encoding = spec.kind === "batch" ? (spec.encoding ?? "ndjson") : undefined;
  context.log(
    `  ${spec.name}: ${spec.recordsPerSecond} records/s for ${spec.seconds} s` +
      (encoding ? ` in batches of ${batchSize} (${encoding})` : "") +
      ` over ${spec.tenants} tenants`,
  );
  const baseline = context.counter.poll();
  const from = clock();
  const load = await runLoad({
    url: context.ingestUrl,
    ...loadOf(keys),
    at: arrivalTimes([{ seconds: spec.seconds, rate: spec.recordsPerSecond / batchSize }]),
    batch: encoding ? { size: batchSize, encoding } : undefined,
    concurrency: spec.concurrency,
    logIdPrefix: `${spec.name}-${context.runId}`,
    seed: hashSeed(`${context.runId}-${spec.name}`),
  });
  const loadEnd = clock();
  const storedDuringLoad = context.counter.poll() - baseline;
  const drain = await waitForDrain(() => context.counter.poll() - baseline, load.accepted.length, {
    timeoutMs: spec.drainTimeoutMs,
    quietMs: 0,
    stallMs: 15_000,
    pollMs: 50,
  });
  let drainMs = drain.waitedMs;
  let reconcile: ReconcileReport | undefined;
  // In-doubt records that were stored after all count too, so the count can reach the accepted
  // total early: an accepted record still absent is waited for (within the drain timeout).
  for (let attempt = 1; spec.reconcile; attempt += 1) {
    reconcile = await context.reconcile({
      accepted: load.accepted,
      inDoubt: load.inDoubt,
      tenants: keys.map((key) => key.tenantId),
    });
    if (reconcile.missing === 0 && attempt > 1) drainMs = clock() - loadEnd;
    if (reconcile.missing === 0 || clock() - loadEnd >= spec.drainTimeoutMs) break;
    await sleep(1_000);
  }
  const to = clock();

  // Never divide by less than the offered duration, or a phase seems to accept more than offered.
  const loadMs = Math.max(loadEnd - from, spec.seconds * 1000);
  context.requests.push(
    ...load.outcomes.map((outcome) => ({
      phase: spec.name,
      t: outcome.scheduledAt - context.origin,
      latencyMs: outcome.latencyMs,
      status: outcome.status,
      records: outcome.records.length,
      accepted: outcome.accepted,
    })),
  );
  return {
    name: spec.name,
    kind: spec.kind,
    /** Body of the batch path's requests; undefined for the single-record path. */
    encoding,
    offeredRecordsPerSecond: spec.recordsPerSecond,
    batchSize,
    /** Mean request body on the wire (after compression), bytes. */
    meanRequestBytes:
      load.requests > 0
        ? load.outcomes.reduce((sum, outcome) => sum + outcome.bodyBytes, 0) / load.requests
        : undefined,
    /** Wall time of the load (first scheduled send until the last answer). */
    loadSeconds: (loadEnd - from) / 1000,
    requests: load.requests,
    offeredRequestsPerSecond: load.offeredPerSecond,
    sentRequestsPerSecond: load.sentPerSecond,
    acceptedRequestsPerSecond: ratePerSecond(
      load.outcomes.filter((o) => o.accepted > 0).length,
      loadMs,
    ),
    acceptedRecords: load.accepted.length,
    acceptedRecordsPerSecond: ratePerSecond(load.accepted.length, loadMs),
    inDoubtRecords: load.inDoubt.length,
    statuses: load.statuses,
    /** Ingest latency of every answered request from its scheduled send time, ms. */
    latency: load.latency,
    sendLag: load.sendLag,
    maxInFlight: load.maxInFlight,
    storedPerSecondDuringLoad: ratePerSecond(storedDuringLoad, loadMs),
    // Accepted records over the time from the first request until the last one was stored.
    storedPerSecondEndToEnd: ratePerSecond(
      Math.min(drain.documents, load.accepted.length),
      loadMs + drainMs,
    ),
    drained: drain.drained && (reconcile === undefined || reconcile.missing === 0),
    /** From the last answer until the last accepted record was stored, ms. */
    drainMs,
    reconcile,
    processes: context.sampler.totals(from, to),
    /** Busy share of the whole machine over the phase (all processes, anyone's). */
    machineCpuShare: context.sampler.machineShare(from, to),
    /** Phase window on the run's clock, ms. */
    window: { from, loadEnd, to },
  };
}

export interface NoisyNeighbourSpec {
  /** TENANT_RATE_LIMIT_PER_SECOND of the stack: records a second per tenant per instance. */
  readonly limitPerSecond: number;
  /** A's records a request: 1 (single-record requests) or NDJSON batches of this many. */
  readonly floodBatchSize?: number;
  /** Length of each part: B alone, then B with A. */
  readonly seconds: number;
  readonly runId: string;
  readonly log: (line: string) => void;
}

/**
 * Tenant A floods at ten times its limit while tenant B sends at half of it, both open loop, on
 * a stack of its own with TENANT_RATE_LIMIT_PER_SECOND (the bench's main stack runs unlimited).
 */
export async function runNoisyNeighbour(spec: NoisyNeighbourSpec) {
  const project = "demo-rdp-noisy";
  const stack = await startStack({
    project,
    topic: "rdp-noisy",
    name: "noisy-neighbour",
    freshLogs: true,
    env: { TENANT_RATE_LIMIT_PER_SECOND: String(spec.limitPerSecond) },
  });
  const firestore = emulatorFirestore(project, stack.firestoreHost);
  try {
    const [a, b, warm] = await seedTenantKeys(
      { projectId: project, firestoreHost: stack.firestoreHost },
      tenantIds(`${spec.runId}-noisy`, 3),
      "load",
    );
    if (a === undefined || b === undefined || warm === undefined) throw new Error("no tenants");
    const normal = spec.limitPerSecond / 2;
    const flood = spec.limitPerSecond * 10;
    const floodBatchSize = spec.floodBatchSize ?? 1;
    const send = (tenant: TenantKey, rate: number, seconds: number, prefix: string, size = 1) =>
      runLoad({
        url: stack.ingestUrl,
        ...loadOf([tenant]),
        at: arrivalTimes([{ seconds, rate: rate / size }]),
        logIdPrefix: `${prefix}-${spec.runId}`,
        ...(size > 1 ? { batch: { size, encoding: "ndjson" as const } } : {}),
      });
    spec.log(
      `  noisy-neighbour: limit ${spec.limitPerSecond}/s, B at ${normal}/s, A at ${flood}/s` +
        ` in requests of ${floodBatchSize} record(s)`,
    );
    await send(warm, normal, 5, "warm");
    const alone = await send(b, normal, spec.seconds, "b-alone");
    const [withA, flooding] = await Promise.all([
      send(b, normal, spec.seconds, "b-with-a"),
      send(a, flood, spec.seconds, "a-flood", floodBatchSize),
    ]);
    const runs = [alone, withA, flooding];
    const tenants = [a.tenantId, b.tenantId];
    const accepted = runs.flatMap((run) => run.accepted);
    await waitForDrain(() => countDocuments(firestore, tenants), accepted.length, {
      timeoutMs: 120_000,
      quietMs: 2_000,
    });
    const reconcile = await reconcileRun(
      firestore,
      { accepted, inDoubt: runs.flatMap((run) => run.inDoubt), tenants },
      { wait: false },
    );
    const only202 = (run: LoadReport) => Object.keys(run.statuses).every((key) => key === "202");
    const p99Alone = alone.latency?.p99;
    return {
      limitPerSecond: spec.limitPerSecond,
      offered: { a: flood, b: normal, aRecordsPerRequest: floodBatchSize },
      bAlone: { statuses: { ...alone.statuses }, latency: alone.latency },
      bWithA: { statuses: { ...withA.statuses }, latency: withA.latency },
      bOnly202: only202(alone) && only202(withA),
      // B's ingest p99 with A over B's p99 alone (issue 12 asks for at most 2).
      p99Ratio:
        p99Alone && withA.latency
          ? Math.round((withA.latency.p99 / p99Alone) * 100) / 100
          : undefined,
      a: { statuses: { ...flooding.statuses }, rateLimited: flooding.statuses["429"] ?? 0 },
      // Every record A and B got a 202 for, stored exactly once.
      reconcile,
    };
  } finally {
    await firestore.terminate();
    await stack.stop();
  }
}

/** FNV-1a: a seed of its own for each phase of a run. */
const hashSeed = (text: string) =>
  text.split("").reduce((hash, c) => Math.imul(hash ^ c.charCodeAt(0), 16777619), 2166136261) >>> 0;

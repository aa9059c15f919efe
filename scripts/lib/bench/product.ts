/**
 * The product under load: phases of single-record or NDJSON batch traffic against the ingest
 * function of a running stack, each followed by a bounded wait for the backlog to drain and a
 * reconciliation of every 202 against Firestore. A phase reports what the issue asks for:
 * offered and accepted rates, ingest latency, records stored per second end to end, drain
 * time, lost and duplicated records, and CPU and memory per process over the phase.
 */
import type { ExpectedRecord } from "../load-driver";
import { runBatchLoad } from "./batch-driver";
import type { BatchEncoding } from "./batch-encodings";
import { runSingleLoad } from "./single-driver";
import type { StoredCounter } from "./log-counter";
import { recordText } from "./payloads";
import type { ProcSampler, ProcTotals } from "./procstat";
import { type Reconciler, type ReconcileSummary } from "./reconcile-adapter";
import { ratePerSecond, summarize, type Summary } from "./stats";
import { seedTenantKeys, tenantIds, type TenantKey } from "./tenants";
import { waitForDrain } from "./verify";

export interface ProductContext {
  readonly ingestUrl: string;
  readonly project: string;
  readonly firestoreHost: string;
  readonly runId: string;
  readonly origin: number;
  readonly sampler: ProcSampler;
  readonly counter: StoredCounter;
  readonly reconcile: Reconciler;
  /** Every request of every phase, for the chart. */
  readonly requests: RequestPoint[];
  readonly log: (line: string) => void;
}

export interface RequestPoint {
  readonly phase: string;
  /** ms since the run's origin when the request was sent. */
  readonly t: number;
  readonly latencyMs: number;
  readonly status: number | null;
  /** Records the request carried and how many were accepted. */
  readonly records: number;
  readonly accepted: number;
  /** Request body bytes on the wire (batch phases). */
  readonly bodyBytes?: number;
}

export interface PhaseSpec {
  readonly name: string;
  readonly kind: "single" | "batch";
  /** Records offered per second. */
  readonly recordsPerSecond: number;
  readonly seconds: number;
  /** Records per request on the batch path. */
  readonly batchSize?: number;
  /** The batch path's body: NDJSON (the default), gzip NDJSON or OTLP protobuf. */
  readonly encoding?: BatchEncoding;
  readonly concurrency: number;
  readonly tenants: number;
  readonly drainTimeoutMs: number;
  /** False for the warm-up: waited for, not reconciled. */
  readonly reconcile: boolean;
}

export interface PhaseResult {
  readonly name: string;
  readonly kind: "single" | "batch";
  /** Body of the batch path's requests; undefined for the single-record path. */
  readonly encoding?: BatchEncoding;
  readonly offeredRecordsPerSecond: number;
  readonly batchSize: number;
  /** Mean request body on the wire (after compression), bytes; undefined when not measured. */
  readonly meanRequestBytes?: number;
  /** Wall time of the load (sending until the last answer). */
  readonly loadSeconds: number;
  readonly requests: number;
  /** Requests per second actually sent. */
  readonly sentRequestsPerSecond: number;
  readonly acceptedRequestsPerSecond: number;
  readonly acceptedRecords: number;
  readonly acceptedRecordsPerSecond: number;
  readonly inDoubtRecords: number;
  readonly statuses: Readonly<Record<string, number>>;
  /** Ingest latency of every request that got an answer, ms. */
  readonly latency: Summary | undefined;
  /** Records stored while the load ran, per second of load. */
  readonly storedPerSecondDuringLoad: number;
  /** Accepted records over the time from the first request until the last one was stored. */
  readonly storedPerSecondEndToEnd: number;
  readonly drained: boolean;
  /** From the last answer until the last accepted record was stored, ms. */
  readonly drainMs: number;
  readonly reconcile: ReconcileSummary | undefined;
  readonly processes: readonly ProcTotals[];
  /** Busy share of the whole machine over the phase (all processes, anyone's). */
  readonly machineCpuShare: number;
  /** Phase window on the run's clock, ms. */
  readonly window: { readonly from: number; readonly loadEnd: number; readonly to: number };
}

export async function runPhase(context: ProductContext, spec: PhaseSpec): Promise<PhaseResult> {
  const { log } = context;
  const clock = () => Date.now() - context.origin;
  const keys = await seedTenantKeys(
    { projectId: context.project, firestoreHost: context.firestoreHost },
    tenantIds(`${context.runId}-${spec.name}`, spec.tenants),
  );
  const baseline = context.counter.poll();
  const from = clock();
  log(
    `  ${spec.name}: ${spec.recordsPerSecond} records/s for ${spec.seconds} s` +
      (spec.kind === "batch"
        ? ` in batches of ${spec.batchSize ?? 0} (${spec.encoding ?? "ndjson"})`
        : "") +
      ` over ${spec.tenants} tenants`,
  );

  const load =
    spec.kind === "single"
      ? await singleLoad(context, spec, keys)
      : await batchLoad(context, spec, keys);
  const loadEnd = clock();
  const storedDuringLoad = context.counter.poll() - baseline;

  const drain = await waitForDrain(context.counter, {
    baseline,
    expected: load.accepted.length,
    timeoutMs: spec.drainTimeoutMs,
  });
  const to = clock();
  const reconcile = spec.reconcile
    ? await context.reconcile({
        accepted: load.accepted,
        inDoubt: load.inDoubt,
        tenants: keys.map((key) => key.tenantId),
      })
    : undefined;

  const loadSeconds = (loadEnd - from) / 1000;
  // n requests due over `seconds` go out over (n - 1) intervals: never divide by less than the
  // offered duration, or a phase seems to accept more than it was offered.
  const loadMs = Math.max(loadEnd - from, spec.seconds * 1000);
  const answered = load.points.filter((point) => point.status !== null);
  // NDJSON answers 202; OTLP/HTTP answers 200 (with partial_success where it refused records).
  const okRequests = load.points.filter(
    (point) => point.status === 202 || point.status === 200,
  ).length;
  const bodyBytes = load.points.flatMap((point) => point.bodyBytes ?? []);
  const result: PhaseResult = {
    name: spec.name,
    kind: spec.kind,
    encoding: spec.kind === "batch" ? (spec.encoding ?? "ndjson") : undefined,
    offeredRecordsPerSecond: spec.recordsPerSecond,
    batchSize: spec.batchSize ?? 1,
    meanRequestBytes: summarize(bodyBytes)?.mean,
    loadSeconds,
    requests: load.points.length,
    sentRequestsPerSecond: ratePerSecond(load.points.length, loadMs),
    acceptedRequestsPerSecond: ratePerSecond(okRequests, loadMs),
    acceptedRecords: load.accepted.length,
    acceptedRecordsPerSecond: ratePerSecond(load.accepted.length, loadMs),
    inDoubtRecords: load.inDoubt.length,
    statuses: load.statuses,
    latency: summarize(answered.map((point) => point.latencyMs)),
    storedPerSecondDuringLoad: ratePerSecond(storedDuringLoad, loadMs),
    storedPerSecondEndToEnd: ratePerSecond(
      Math.min(drain.stored, load.accepted.length),
      loadMs + drain.ms,
    ),
    drained: drain.drained,
    drainMs: drain.ms,
    reconcile,
    processes: context.sampler.totals(from, to),
    machineCpuShare: context.sampler.machineShare(from, to),
    window: { from, loadEnd, to },
  };
  context.requests.push(...load.points);
  return result;
}

interface LoadOutcome {
  readonly accepted: readonly ExpectedRecord[];
  readonly inDoubt: readonly ExpectedRecord[];
  readonly statuses: Readonly<Record<string, number>>;
  readonly points: RequestPoint[];
}

async function singleLoad(
  context: ProductContext,
  spec: PhaseSpec,
  keys: readonly TenantKey[],
): Promise<LoadOutcome> {
  const seed = hashSeed(`${context.runId}-${spec.name}`);
  const points: RequestPoint[] = [];
  const report = await runSingleLoad({
    url: context.ingestUrl,
    tenants: keys.map((key) => ({ tenantId: key.tenantId, apiKey: key.apiKey })),
    recordsPerSecond: spec.recordsPerSecond,
    seconds: spec.seconds,
    concurrency: spec.concurrency,
    logIdPrefix: `${spec.name}-${context.runId}`,
    textOf: (index) => recordText(index, seed),
    requestTimeoutMs: 30_000,
    onOutcome: (outcome) =>
      points.push({
        phase: spec.name,
        t: outcome.startedAt - context.origin,
        latencyMs: outcome.latencyMs,
        status: outcome.status,
        records: 1,
        accepted: outcome.status === 202 ? 1 : 0,
      }),
  });
  const statuses = { ...report.statuses };
  if (report.late > 0) statuses.sent_late_by_driver = report.late;
  return { accepted: report.accepted, inDoubt: report.inDoubt, statuses, points };
}

async function batchLoad(
  context: ProductContext,
  spec: PhaseSpec,
  keys: readonly TenantKey[],
): Promise<LoadOutcome> {
  const batchSize = spec.batchSize ?? 100;
  const report = await runBatchLoad({
    url: context.ingestUrl,
    tenants: keys.map((key) => ({ tenantId: key.tenantId, apiKey: key.apiKey })),
    batchSize,
    encoding: spec.encoding,
    batchesPerSecond: spec.recordsPerSecond / batchSize,
    seconds: spec.seconds,
    concurrency: spec.concurrency,
    logIdPrefix: `${spec.name}-${context.runId}`,
    seed: hashSeed(`${context.runId}-${spec.name}`),
  });
  const statuses = { ...report.statuses };
  if (report.skipped > 0) statuses.skipped_by_driver = report.skipped;
  return {
    accepted: report.accepted,
    inDoubt: report.inDoubt,
    statuses,
    points: report.outcomes.map((outcome) => ({
      phase: spec.name,
      t: outcome.startedAt - context.origin,
      latencyMs: outcome.latencyMs,
      status: outcome.status,
      records: outcome.records,
      accepted: outcome.accepted,
      bodyBytes: outcome.bodyBytes,
    })),
  };
}

function hashSeed(text: string): number {
  let hash = 2166136261;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return hash >>> 0;
}

/**
 * Load on the batch paths: `batchSize` records a request, requests started on a fixed schedule
 * (open loop) with at most `concurrency` in flight, bounded in count and time. One driver for
 * every body encoding (batch-encodings.ts), so the paths are measured the same way; each
 * answer says which records were accepted, so every accepted record is known by its ids.
 */
import { sha256Hex, type ExpectedRecord } from "../load-driver";
import { BATCH_ENCODINGS, type BatchEncoding, type BatchTenant } from "./batch-encodings";
import { recordText } from "./payloads";

export interface BatchLoadOptions {
  readonly url: string;
  /** Tenant of each batch in turn, with its API key (null in the open demo mode). */
  readonly tenants: readonly BatchTenant[];
  readonly batchSize: number;
  /** How each batch travels: NDJSON, gzip NDJSON or an OTLP/HTTP protobuf request. */
  readonly encoding?: BatchEncoding;
  /** Batches started per second. */
  readonly batchesPerSecond: number;
  /** How long batches are started; the run ends once the last answer is in. */
  readonly seconds: number;
  readonly concurrency: number;
  readonly logIdPrefix: string;
  readonly seed?: number;
  readonly requestTimeoutMs?: number;
}

export interface BatchOutcome {
  readonly startedAt: number;
  readonly latencyMs: number;
  readonly status: number | null;
  readonly error: string | null;
  readonly records: number;
  readonly accepted: number;
  /** Request body bytes on the wire (after compression). */
  readonly bodyBytes: number;
}

export interface BatchLoadReport {
  readonly startedAt: number;
  readonly durationMs: number;
  readonly batches: number;
  /** Batches that were due but not sent because `concurrency` were in flight. */
  readonly skipped: number;
  readonly accepted: ExpectedRecord[];
  /** Records of batches without a parsable answer: they may or may not be stored. */
  readonly inDoubt: ExpectedRecord[];
  readonly statuses: Record<string, number>;
  readonly outcomes: BatchOutcome[];
}

export async function runBatchLoad(options: BatchLoadOptions): Promise<BatchLoadReport> {
  if (options.tenants.length === 0) throw new Error("runBatchLoad needs at least one tenant");
  const total = Math.max(1, Math.round(options.batchesPerSecond * options.seconds));
  const intervalMs = 1000 / options.batchesPerSecond;
  const startedAt = Date.now();
  const accepted: ExpectedRecord[] = [];
  const inDoubt: ExpectedRecord[] = [];
  const statuses: Record<string, number> = {};
  const outcomes: BatchOutcome[] = [];
  const pending = new Set<Promise<void>>();
  let skipped = 0;
  let sent = 0;

  for (let index = 0; index < total; index += 1) {
    const due = startedAt + index * intervalMs;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (pending.size >= options.concurrency) {
      skipped += 1;
      continue;
    }
    sent += 1;
    const request = sendBatch(options, index).then(({ outcome, accepted: ok, inDoubt: doubt }) => {
      outcomes.push(outcome);
      accepted.push(...ok);
      inDoubt.push(...doubt);
      const key = outcome.status === null ? (outcome.error ?? "error") : String(outcome.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
    });
    pending.add(request);
    void request.finally(() => pending.delete(request));
  }
  await Promise.all(pending);
  return {
    startedAt,
    durationMs: Date.now() - startedAt,
    batches: sent,
    skipped,
    accepted,
    inDoubt,
    statuses,
    outcomes,
  };
}

async function sendBatch(
  options: BatchLoadOptions,
  index: number,
): Promise<{ outcome: BatchOutcome; accepted: ExpectedRecord[]; inDoubt: ExpectedRecord[] }> {
  const tenant = options.tenants[index % options.tenants.length] as BatchTenant;
  const records = Array.from({ length: options.batchSize }, (_, line) => {
    const n = index * options.batchSize + line;
    const text = recordText(n, options.seed ?? 7);
    return { log_id: `${options.logIdPrefix}-${n}`, text };
  });
  const encoding = BATCH_ENCODINGS[options.encoding ?? "ndjson"];
  const request = await encoding.encode(records, tenant);
  const expected = (record: { log_id: string; text: string }): ExpectedRecord => ({
    tenant_id: tenant.tenantId,
    log_id: record.log_id,
    text_sha256: sha256Hex(record.text),
  });

  const startedAt = Date.now();
  try {
    const response = await fetch(new URL(request.path, options.url), {
      method: "POST",
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(options.requestTimeoutMs ?? 30_000),
    });
    const answer = new Uint8Array(await response.arrayBuffer());
    const latencyMs = Date.now() - startedAt;
    const verdict = encoding.verdict(response.status, answer, records.length);
    const ok = records.filter((_, i) => verdict.accepted.has(i)).map(expected);
    const doubt = verdict.othersInDoubt
      ? records.filter((_, i) => !verdict.accepted.has(i)).map(expected)
      : [];
    return {
      outcome: {
        startedAt,
        latencyMs,
        status: response.status,
        error: null,
        records: records.length,
        accepted: ok.length,
        bodyBytes: request.body.byteLength,
      },
      accepted: ok,
      inDoubt: doubt,
    };
  } catch (error) {
    const name = (error as { name?: string }).name;
    const cause = (error as { cause?: { code?: string } }).cause;
    const code = name === "TimeoutError" ? "timeout" : (cause?.code ?? "error");
    return {
      outcome: {
        startedAt,
        latencyMs: Date.now() - startedAt,
        status: null,
        error: code,
        records: records.length,
        accepted: 0,
        bodyBytes: request.body.byteLength,
      },
      accepted: [],
      inDoubt: code === "ECONNREFUSED" ? [] : records.map(expected),
    };
  }
}

/**
 * A small, bounded, concurrent HTTP load generator for the ingest function: N records over K
 * tenants, JSON and text/plain mixed, at most `concurrency` requests in flight. Every answer is
 * kept with its latency, and every record ends in one of three lists, which is what the
 * reconciliation (scripts/lib/reconcile.ts) needs:
 *
 * - accepted: some request for it got a 202, so the pipeline promised to store it;
 * - in doubt: no 202, but a request may have reached Pub/Sub (a 5xx, a reset connection, a
 *   client timeout): the record may or may not be stored, and neither is an error;
 * - rejected: every request got a 4xx or was refused before it reached the server, so it must
 *   not be stored.
 *
 * A record is identified the two ways the README tells a client that retries safely: its own
 * log id (`ids: "log-id"`), or an Idempotency-Key and no log id (`ids: "idempotency-key"`), the
 * server deriving the id. Either way a retried record (`retries`, after the answer's
 * Retry-After) can only ever be stored once. Nothing here knows about emulators: the chaos
 * tests, the load scenarios and a shell run against a deployed URL use it alike.
 */
import fs from "node:fs";
import { idempotentLogId } from "../../functions/src/lib/ids";
import { PII, seededRandom } from "./bench/payloads";
import { type ExpectedRecord, sha256Hex } from "./reconcile";

export { type ExpectedRecord, sha256Hex } from "./reconcile";

export type RecordKind = "json" | "text";
export type Verdict = "accepted" | "in_doubt" | "rejected";

/** One HTTP request (a record may take several when retries are on). */
export interface RequestOutcome {
  readonly index: number;
  readonly tenant_id: string;
  readonly log_id: string;
  readonly text_sha256: string;
  readonly kind: RecordKind;
  /** Epoch milliseconds when the request was sent. */
  readonly startedAt: number;
  readonly latencyMs: number;
  /** HTTP status, or null when no answer came. */
  readonly status: number | null;
  /** Why no answer came: ECONNREFUSED, ECONNRESET, timeout, ... */
  readonly error: string | null;
  readonly retryAfter: string | null;
  readonly verdict: Verdict;
  /** 1 for the first request of a record. */
  readonly attempt: number;
}

export interface LoadOptions {
  /** The ingest URL; records are POSTed to it as is. */
  readonly url: string;
  readonly records: number;
  readonly tenants: readonly string[];
  /** Requests in flight at most. */
  readonly concurrency: number;
  /** Prefix of every log id, to keep runs apart (ids: `<prefix>-<index>`). */
  readonly logIdPrefix: string;
  /** Share of records sent as JSON; the rest are text/plain (default 0.5). */
  readonly jsonShare?: number;
  /** Seed of the text and kind choices, so a run can be repeated exactly (default 1). */
  readonly seed?: number;
  /** The text of record `index`; default: generated (PII, Unicode, 20 to 400 characters). */
  readonly textOf?: (index: number) => string;
  /** API key per tenant; without one the tenant travels in the body or X-Tenant-ID header. */
  readonly apiKeys?: Readonly<Record<string, string>>;
  /** Client-side bound of one request (default 30 s); hitting it counts as in doubt. */
  readonly requestTimeoutMs?: number;
  /** How records name themselves (default log-id: `<prefix>-<index>`). */
  readonly ids?: "log-id" | "idempotency-key";
  /** Extra requests for a record whose answer was not final (5xx, no answer) (default 0). */
  readonly retries?: number;
  /** Wait before a retry when the answer has no Retry-After (default 500 ms). */
  readonly retryDelayMs?: number;
  /** Pace: at most this many records started per second (default: as fast as possible). */
  readonly ratePerSecond?: number;
  /** Held closed, no new request starts (requests in flight finish). */
  readonly gate?: LoadGate;
  /** Aborting stops new records; the ones in flight finish. */
  readonly signal?: AbortSignal;
  readonly onOutcome?: (outcome: RequestOutcome) => void;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export interface LoadReport {
  readonly startedAt: number;
  readonly durationMs: number;
  /** Records started (fewer than asked when aborted). */
  readonly records: number;
  readonly requests: number;
  readonly accepted: readonly ExpectedRecord[];
  readonly inDoubt: readonly ExpectedRecord[];
  readonly rejected: readonly ExpectedRecord[];
  /** Requests by HTTP status or error code: {"202": 2990, "503": 8, "ECONNRESET": 2}. */
  readonly statuses: Readonly<Record<string, number>>;
  readonly latency: { readonly all: LatencySummary; readonly accepted: LatencySummary };
  readonly outcomes: readonly RequestOutcome[];
}

/**
 * A door for the load: while closed, no new request starts. It also counts the requests in
 * flight, so a test can close it and wait until every request already sent has its answer.
 */
export class LoadGate {
  private opened: Promise<void> = Promise.resolve();
  private release: (() => void) | undefined;
  private active = 0;
  private idle: Array<() => void> = [];

  get isOpen(): boolean {
    return this.release === undefined;
  }

  get inFlight(): number {
    return this.active;
  }

  close(): void {
    if (this.release !== undefined) return;
    this.opened = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  open(): void {
    const release = this.release;
    this.release = undefined;
    release?.();
  }

  /** Closes the gate and resolves once no request is in flight. */
  async closeAndSettle(): Promise<void> {
    this.close();
    if (this.active === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Waits until the gate is open, then counts a request in (synchronously, so no race). */
  async enter(): Promise<void> {
    while (!this.isOpen) await this.opened;
    this.active += 1;
  }

  leave(): void {
    this.active -= 1;
    if (this.active === 0) this.idle.splice(0).forEach((resolve) => resolve());
  }
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  if (options.tenants.length === 0) throw new Error("runLoad needs at least one tenant");
  if (!(options.concurrency >= 1)) throw new Error("runLoad needs a concurrency of at least 1");
  const random = seededRandom(options.seed ?? 1);
  const plan = Array.from({ length: options.records }, (_, index): PlannedRecord => {
    const kind: RecordKind = random() < (options.jsonShare ?? 0.5) ? "json" : "text";
    const text = options.textOf?.(index) ?? generatedText(index, random);
    const tenantId = options.tenants[index % options.tenants.length] as string;
    const name = `${options.logIdPrefix}-${index}`;
    const byKey = options.ids === "idempotency-key";
    return {
      index,
      tenant_id: tenantId,
      // With a key the server derives the id: the record is the only line of its request.
      log_id: byKey ? idempotentLogId(tenantId, name, 1) : name,
      idempotency_key: byKey ? name : undefined,
      kind,
      text,
      text_sha256: sha256Hex(text),
    };
  });

  const outcomes: RequestOutcome[] = [];
  const verdicts = new Map<number, Verdict>();
  const startedAt = Date.now();
  let next = 0;

  const aborted = () => options.signal?.aborted === true;
  const gate = options.gate;
  const worker = async () => {
    for (;;) {
      if (aborted()) return;
      if (gate !== undefined && !gate.isOpen) {
        await gate.enter();
        gate.leave();
        continue;
      }
      const item = plan[next];
      if (item === undefined) return;
      next += 1;
      if (options.ratePerSecond !== undefined && options.ratePerSecond > 0) {
        const due = startedAt + (item.index * 1000) / options.ratePerSecond;
        if (due > Date.now()) await delay(due - Date.now());
      }
      let verdict: Verdict = "rejected";
      let sawDoubt = false;
      let wait = 0;
      for (let attempt = 1; attempt <= 1 + (options.retries ?? 0); attempt += 1) {
        if (attempt > 1) await delay(wait);
        await gate?.enter();
        let outcome: RequestOutcome;
        try {
          outcome = await send(options, item, attempt);
        } finally {
          gate?.leave();
        }
        outcomes.push(outcome);
        options.onOutcome?.(outcome);
        if (outcome.verdict === "in_doubt") sawDoubt = true;
        verdict = outcome.verdict;
        const retryAfter = Number(outcome.retryAfter);
        wait =
          Number.isFinite(retryAfter) && retryAfter > 0
            ? retryAfter * 1000
            : (options.retryDelayMs ?? 500);
        // Final answers: a 202, or a 4xx (the record itself was refused).
        if (outcome.status !== null && outcome.status < 500) break;
      }
      verdicts.set(item.index, verdict === "rejected" && sawDoubt ? "in_doubt" : verdict);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));

  const lists: Record<Verdict, ExpectedRecord[]> = { accepted: [], in_doubt: [], rejected: [] };
  for (const item of plan) {
    const verdict = verdicts.get(item.index);
    if (verdict === undefined) continue;
    lists[verdict].push({
      tenant_id: item.tenant_id,
      log_id: item.log_id,
      text_sha256: item.text_sha256,
    });
  }
  const statuses: Record<string, number> = {};
  for (const outcome of outcomes) {
    const key = outcome.status === null ? (outcome.error ?? "error") : String(outcome.status);
    statuses[key] = (statuses[key] ?? 0) + 1;
  }
  return {
    startedAt,
    durationMs: Date.now() - startedAt,
    records: verdicts.size,
    requests: outcomes.length,
    accepted: lists.accepted,
    inDoubt: lists.in_doubt,
    rejected: lists.rejected,
    statuses,
    latency: {
      all: summarise(outcomes.map((outcome) => outcome.latencyMs)),
      accepted: summarise(
        outcomes.filter((outcome) => outcome.status === 202).map((outcome) => outcome.latencyMs),
      ),
    },
    outcomes,
  };
}

interface PlannedRecord {
  readonly index: number;
  readonly tenant_id: string;
  readonly log_id: string;
  readonly idempotency_key: string | undefined;
  readonly kind: RecordKind;
  readonly text: string;
  readonly text_sha256: string;
}

async function send(
  options: LoadOptions,
  item: PlannedRecord,
  attempt: number,
): Promise<RequestOutcome> {
  const apiKey = options.apiKeys?.[item.tenant_id];
  const headers: Record<string, string> = {};
  if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
  const key = item.idempotency_key;
  if (key !== undefined) headers["idempotency-key"] = `"${key}"`;
  let body: string;
  if (item.kind === "json") {
    headers["content-type"] = "application/json";
    body = JSON.stringify({
      ...(apiKey === undefined ? { tenant_id: item.tenant_id } : {}),
      ...(key === undefined ? { log_id: item.log_id } : {}),
      text: item.text,
    });
  } else {
    headers["content-type"] = "text/plain; charset=utf-8";
    if (key === undefined) headers["x-log-id"] = item.log_id;
    if (apiKey === undefined) headers["x-tenant-id"] = item.tenant_id;
    body = item.text;
  }

  const startedAt = Date.now();
  const base = {
    index: item.index,
    tenant_id: item.tenant_id,
    log_id: item.log_id,
    text_sha256: item.text_sha256,
    kind: item.kind,
    startedAt,
    attempt,
  };
  try {
    const response = await fetch(options.url, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(options.requestTimeoutMs ?? 30_000),
    });
    // Read the whole answer, so the connection is free for the next request.
    await response.arrayBuffer();
    const status = response.status;
    return {
      ...base,
      latencyMs: Date.now() - startedAt,
      status,
      error: null,
      retryAfter: response.headers.get("retry-after"),
      verdict: status === 202 ? "accepted" : status < 500 ? "rejected" : "in_doubt",
    };
  } catch (error) {
    const code = errorCode(error);
    return {
      ...base,
      latencyMs: Date.now() - startedAt,
      status: null,
      error: code,
      retryAfter: null,
      // Refused: the request never reached a server, so nothing can have been published.
      verdict: code === "ECONNREFUSED" ? "rejected" : "in_doubt",
    };
  }
}

function errorCode(error: unknown): string {
  const name = (error as { name?: string }).name;
  if (name === "TimeoutError" || name === "AbortError") return "timeout";
  const cause = (error as { cause?: { code?: string; name?: string } }).cause;
  return cause?.code ?? cause?.name ?? (error as Error).message ?? "error";
}

export function summarise(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (quantile: number) =>
    sorted.length === 0
      ? 0
      : (sorted[Math.min(sorted.length - 1, Math.ceil(quantile * sorted.length) - 1)] as number);
  return {
    count: sorted.length,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: sorted.length === 0 ? 0 : (sorted[sorted.length - 1] as number),
  };
}

/**
 * The JSONL the reconcile CLI reads: one line per accepted or in-doubt record
 * (`{"tenant_id","log_id","text_sha256","outcome"}`); rejected records are left out.
 */
export function toReconcileJsonl(report: Pick<LoadReport, "accepted" | "inDoubt">): string {
  const lines = [
    ...report.accepted.map((record) => ({ ...record, outcome: "accepted" })),
    ...report.inDoubt.map((record) => ({ ...record, outcome: "in_doubt" })),
  ].map((line) => JSON.stringify(line));
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

export function writeReconcileJsonl(
  file: string,
  report: Pick<LoadReport, "accepted" | "inDoubt">,
): void {
  fs.writeFileSync(file, toReconcileJsonl(report));
}

// ---------------------------------------------------------------------------------------------
// Texts: what tenants send, including what the redaction must find and what UTF-8 must survive

const WORDS = [
  "user",
  "login",
  "payment",
  "accepted",
  "declined",
  "session",
  "renewed",
  "order",
  "shipped",
  "warehouse",
  "Zürich",
  "naïve",
  "façade",
  "日本語",
  "données",
  "ошибка",
  "✓",
  "🚀",
];

function generatedText(index: number, random: () => number): string {
  const target = 20 + Math.floor(random() * 380);
  const parts = [`record ${index}`];
  let length = parts[0]?.length ?? 0;
  while (length < target) {
    const part =
      random() < 0.15
        ? (PII[Math.floor(random() * PII.length)] as (n: number) => string)(index)
        : (WORDS[Math.floor(random() * WORDS.length)] as string);
    parts.push(part);
    length += part.length + 1;
  }
  return parts.join(" ");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The one load engine: `npm run load` scenarios, the bench phases and the chaos tests all send
 * through `runLoad`. It is open loop: every request has a send time from an arrival schedule
 * (rate x time, `arrivalTimes`), is sent then whatever the answers before it do, and its
 * latency counts from that scheduled time (as wrk2 and HdrHistogram's corrected recording do),
 * so time spent waiting behind a slow server, a busy connection or a lagging client is counted,
 * never omitted. Latencies go into hdr-histogram-js; a report gives p50/p90/p99/p99.9/max, the
 * offered and the achieved send rate, how late the engine itself sent (`sendLag`) and how many
 * requests were in flight at most.
 *
 * Why not artillery (or autocannon): tried on this 2-core machine against a bare node:http
 * server answering 202, artillery 2.0.21 with the record processor asked for 833 arrivals/s for
 * 15 s sent them over 22 s (about 560/s, and 200/s in its first 10 s), burnt 21 s of CPU (1.7 ms
 * a request, so 1.4 of the 2 cores at 833/s, taken from the stack it measures), and reported
 * p99 48 ms: its latency counts from the actual send, so falling seconds behind its schedule
 * did not show. autocannon is closed loop per connection (the next request waits for the
 * answer to the last, and its rate options only throttle that), which is the coordinated
 * omission itself. Neither lets a test close a gate mid-run or see each answer in process, which
 * the chaos tests need. This engine is node:http with keep-alive (a third of fetch's CPU per
 * request here) and the records' texts, bodies and verdicts the product needs.
 *
 * Every record ends in one list, which is what the reconciliation (reconcile.ts) needs:
 * accepted (some request for it got a 202 or an OTLP 200), in doubt (no acceptance, but a
 * request may have reached Pub/Sub: a 5xx, a reset, a client timeout) or rejected (4xx, 429, or
 * refused before reaching a server). A record names itself by its own log id, or by an
 * Idempotency-Key with the server deriving the id; either way a retried record is stored once.
 */
import http from "node:http";
import { summarize, type Summary } from "./stats";
import { idempotentLogId } from "../../../functions/src/lib/ids";
import { BATCH_ENCODINGS, type BatchEncoding, type BatchVerdict } from "./batch-encodings";
import { recordText, seededRandom } from "./payloads";
import { type ExpectedRecord, sha256Hex } from "../../operate/lib/reconcile";

/** A stretch of an arrival schedule: `rate` requests/s, ramping linearly to `rampTo`. */
export interface Phase {
  readonly seconds: number;
  readonly rate: number;
  readonly rampTo?: number;
  readonly name?: string;
}

/** Send times (ms from the start) of an open-loop schedule, one per request. */
export function arrivalTimes(phases: readonly Phase[]): number[] {
  const times: number[] = [];
  let offset = 0;
  for (const { seconds, rate, rampTo = rate } of phases) {
    // Arrivals by time t: n(t) = rate t + slope t^2 / 2; request k is due when n(t) = k.
    const slope = (rampTo - rate) / seconds;
    const count = Math.round(((rate + rampTo) / 2) * seconds);
    for (let k = 0; k < count; k += 1) {
      const t = slope === 0 ? k / rate : (Math.sqrt(rate * rate + 2 * slope * k) - rate) / slope;
      times.push(offset + t * 1000);
    }
    offset += seconds * 1000;
  }
  return times;
}

export type Verdict = "accepted" | "in_doubt" | "rejected";

/** One HTTP request (a record may take several when retries are on). */
export interface RequestOutcome {
  /** Position of the request in the schedule. */
  readonly index: number;
  /** 1 for the first request of its records. */
  readonly attempt: number;
  readonly records: readonly ExpectedRecord[];
  /** Epoch ms: when it was due, written on a connection, answered. */
  readonly scheduledAt: number;
  readonly sentAt: number;
  readonly answeredAt: number;
  /** From the scheduled send time to the answer (or the error). */
  readonly latencyMs: number;
  /** HTTP status, or null when no answer came (then `error`: ECONNREFUSED, timeout, ...). */
  readonly status: number | null;
  readonly error: string | null;
  readonly retryAfter: string | null;
  /** Records this answer accepted. */
  readonly accepted: number;
  readonly verdict: Verdict;
  readonly bodyBytes: number;
}

/**
 * A door for the load: while closed, nothing is sent and the schedule pauses. It counts the
 * requests being sent, so a test can close it and wait for every answer.
 */
export class LoadGate {
  private opened: Promise<void> = Promise.resolve();
  private release: (() => void) | undefined;
  private active = 0;
  private idle: Array<() => void> = [];

  get isOpen(): boolean {
    return this.release === undefined;
  }

  close(): void {
    if (this.release === undefined)
      this.opened = new Promise((resolve) => (this.release = resolve));
  }

  open(): void {
    const release = this.release;
    this.release = undefined;
    release?.();
  }

  async closeAndSettle(): Promise<void> {
    this.close();
    if (this.active > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Waits until open, then counts a request in (synchronously, so no race). */
  async enter(): Promise<void> {
    while (!this.isOpen) await this.opened;
    this.active += 1;
  }

  leave(): void {
    this.active -= 1;
    if (this.active === 0) this.idle.splice(0).forEach((resolve) => resolve());
  }
}

export interface LoadOptions {
  /** The ingest URL; single records are POSTed to it, OTLP batches to its v1/logs. */
  readonly url: string;
  /** Tenants, one request each in turn. */
  readonly tenants: readonly string[];
  /** API key per tenant; without one the tenant travels in the body or X-Tenant-ID header. */
  readonly apiKeys?: Readonly<Record<string, string>>;
  /** Every log id is `<prefix>-<n>`, to keep runs apart. */
  readonly logIdPrefix: string;
  /** The schedule: send times in ms from the start (see arrivalTimes) ... */
  readonly at?: readonly number[];
  /** ... or `records` at `ratePerSecond` (default: all due at once, a burst). */
  readonly records?: number;
  readonly ratePerSecond?: number;
  /** Records a request on a batch path; default one record a request (JSON or text/plain). */
  readonly batch?: { readonly size: number; readonly encoding: BatchEncoding };
  /**
   * Requests sending at once, at most (wrk2's -c): a request due while all are busy waits for
   * one with its clock running, so the wait counts in its latency.
   */
  readonly concurrency?: number;
  /** Share of single records sent as JSON, the rest text/plain (default 0.5). */
  readonly jsonShare?: number;
  /** Seed of texts and kinds, so a run can be repeated exactly (default 1). */
  readonly seed?: number;
  readonly textOf?: (n: number) => string;
  /** How single records name themselves (default log-id). */
  readonly ids?: "log-id" | "idempotency-key";
  /** Extra requests for records whose answer was not final (5xx, 429, none) (default 0). */
  readonly retries?: number;
  /** Wait before a retry when the answer has no Retry-After (default 500 ms). */
  readonly retryDelayMs?: number;
  /** Client-side bound of one request (default 30 s); hitting it leaves the records in doubt. */
  readonly requestTimeoutMs?: number;
  readonly gate?: LoadGate;
  readonly onOutcome?: (outcome: RequestOutcome) => void;
}

export interface LoadReport {
  readonly startedAt: number;
  /** From the start until the last answer. */
  readonly durationMs: number;
  /** Records planned (a batch request carries several). */
  readonly records: number;
  /** Requests sent, retries included. */
  readonly requests: number;
  readonly accepted: readonly ExpectedRecord[];
  readonly inDoubt: readonly ExpectedRecord[];
  readonly rejected: readonly ExpectedRecord[];
  /** Requests by HTTP status or error code: {"202": 2990, "503": 8, "ECONNRESET": 2}. */
  readonly statuses: Readonly<Record<string, number>>;
  /** Requests a second the schedule offered, and how many the engine actually sent. */
  readonly offeredPerSecond: number;
  readonly sentPerSecond: number;
  /** Every answered request, from its scheduled send time. */
  readonly latency: Summary | undefined;
  /**
   * From the scheduled time to the write on a connection: the engine's own lag, plus any wait
   * for a free connection when `concurrency` caps them.
   */
  readonly sendLag: Summary | undefined;
  /** Requests due and not yet answered, at most (those waiting for a connection included). */
  readonly maxInFlight: number;
  readonly outcomes: readonly RequestOutcome[];
}

interface Prepared {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  readonly records: readonly ExpectedRecord[];
  verdict(status: number, answer: Uint8Array): BatchVerdict;
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  if (options.tenants.length === 0) throw new Error("runLoad needs at least one tenant");
  const rate = options.ratePerSecond ?? Infinity;
  const at =
    options.at ?? Array.from({ length: options.records ?? 0 }, (_, i) => (i * 1000) / rate);
  const agent = new http.Agent({ keepAlive: true });
  const slots = options.concurrency === undefined ? undefined : semaphore(options.concurrency);
  const outcomes: RequestOutcome[] = [];
  const verdicts: Array<{ records: readonly ExpectedRecord[]; verdicts: Verdict[] }> = [];
  const statuses: Record<string, number> = {};
  const sendLags: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const startedAt = Date.now();

  const run = async (index: number, scheduledAt: number) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const request = await prepare(options, index);
    // A record keeps its connection through its retries, as a client busy with it would.
    await slots?.acquire();
    try {
      await attempts(index, scheduledAt, request);
    } finally {
      slots?.release();
      inFlight -= 1;
    }
  };

  const attempts = async (index: number, scheduledAt: number, request: Prepared) => {
    const fates: Verdict[] = request.records.map(() => "rejected");
    verdicts[index] = { records: request.records, verdicts: fates };
    let due = scheduledAt;
    for (let attempt = 1; attempt <= 1 + (options.retries ?? 0); attempt += 1) {
      await options.gate?.enter();
      let answer: Answer;
      try {
        answer = await send(agent, options, request);
      } finally {
        options.gate?.leave();
      }
      const { status, error, sentAt } = answer;
      if (attempt === 1) sendLags.push(sentAt - due);
      const verdict: BatchVerdict =
        status === null
          ? { accepted: new Set(), othersInDoubt: error !== "ECONNREFUSED" }
          : request.verdict(status, answer.body);
      verdict.accepted.forEach((position) => (fates[position] = "accepted"));
      for (const [i, fate] of fates.entries()) {
        if (verdict.othersInDoubt && fate === "rejected") fates[i] = "in_doubt";
      }
      const accepted = verdict.accepted.size;
      const answeredAt = Date.now();
      const outcome: RequestOutcome = {
        index,
        attempt,
        records: request.records,
        scheduledAt: due,
        sentAt,
        answeredAt,
        latencyMs: answeredAt - due,
        status,
        error,
        retryAfter: answer.retryAfter,
        accepted,
        verdict:
          accepted === request.records.length
            ? "accepted"
            : verdict.othersInDoubt
              ? "in_doubt"
              : "rejected",
        bodyBytes: request.body.byteLength,
      };
      outcomes.push(outcome);
      const key = status === null ? (error ?? "error") : String(status);
      statuses[key] = (statuses[key] ?? 0) + 1;
      options.onOutcome?.(outcome);
      // Final: an acceptance, or a refusal of the records themselves (4xx but 429).
      if (status !== null && status < 500 && status !== 429) break;
      if (fates.every((fate) => fate === "accepted")) break;
      const retryAfter = Number(answer.retryAfter);
      const wait = retryAfter > 0 ? retryAfter * 1000 : (options.retryDelayMs ?? 500);
      due = Date.now() + wait;
      if (attempt <= (options.retries ?? 0)) await delay(wait);
    }
  };

  const pending: Promise<void>[] = [];
  let paused = 0;
  for (const [index, offset] of at.entries()) {
    const due = startedAt + paused + offset;
    if (due - Date.now() >= 1) await delay(due - Date.now());
    if (options.gate !== undefined && !options.gate.isOpen) {
      // A closed gate pauses the schedule; it resumes where it stopped, with no backlog.
      const closedAt = Date.now();
      await options.gate.enter();
      options.gate.leave();
      paused += Date.now() - closedAt;
    }
    pending.push(run(index, Math.max(due, startedAt + paused + offset)));
  }
  await Promise.all(pending);
  agent.destroy();

  const lists: Record<Verdict, ExpectedRecord[]> = { accepted: [], in_doubt: [], rejected: [] };
  for (const entry of verdicts) {
    entry?.records.forEach((record, i) => lists[entry.verdicts[i] as Verdict].push(record));
  }
  const firstSends = outcomes.filter((outcome) => outcome.attempt === 1).map((o) => o.sentAt);
  // n requests spread over (n - 1) intervals.
  const perSecond = (times: readonly number[]) => {
    const span =
      times.reduce((a, b) => Math.max(a, b), -Infinity) -
      times.reduce((a, b) => Math.min(a, b), Infinity);
    return times.length > 1 && span > 0 ? (times.length - 1) / (span / 1000) : times.length;
  };
  return {
    startedAt,
    durationMs: Date.now() - startedAt,
    records: verdicts.reduce((sum, entry) => sum + (entry?.records.length ?? 0), 0),
    requests: outcomes.length,
    accepted: lists.accepted,
    inDoubt: lists.in_doubt,
    rejected: lists.rejected,
    statuses,
    offeredPerSecond: perSecond(at),
    sentPerSecond: perSecond(firstSends),
    latency: summarize(
      outcomes.filter((outcome) => outcome.status !== null).map((outcome) => outcome.latencyMs),
    ),
    sendLag: summarize(sendLags),
    maxInFlight,
    outcomes,
  };
}

/** The request at `index` of the schedule: one record, or a batch of `batch.size`. */
async function prepare(options: LoadOptions, index: number): Promise<Prepared> {
  const tenant = options.tenants[index % options.tenants.length] as string;
  const apiKey = options.apiKeys?.[tenant];
  const seed = options.seed ?? 1;
  const textOf = options.textOf ?? ((n: number) => recordText(n, seed));
  const expected = (logId: string, text: string): ExpectedRecord => ({
    tenant_id: tenant,
    log_id: logId,
    text_sha256: sha256Hex(text),
  });
  if (options.batch !== undefined) {
    const { size, encoding } = options.batch;
    const records = Array.from({ length: size }, (_, line) => {
      const n = index * size + line;
      return { log_id: `${options.logIdPrefix}-${n}`, text: textOf(n) };
    });
    const encoder = BATCH_ENCODINGS[encoding];
    const request = await encoder.encode(records, { tenantId: tenant, apiKey: apiKey ?? null });
    return {
      ...request,
      records: records.map((record) => expected(record.log_id, record.text)),
      verdict: (status, answer) => encoder.verdict(status, answer, size),
    };
  }

  const text = textOf(index);
  const name = `${options.logIdPrefix}-${index}`;
  const key = options.ids === "idempotency-key" ? name : undefined;
  // With a key the server derives the id: the record is the only line of its request.
  const logId = key === undefined ? name : idempotentLogId(tenant, key, 1);
  const headers: Record<string, string> = {};
  if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
  if (key !== undefined) headers["idempotency-key"] = `"${key}"`;
  let body: string;
  if (seededRandom(seed * 7919 + index)() < (options.jsonShare ?? 0.5)) {
    headers["content-type"] = "application/json";
    body = JSON.stringify({
      ...(apiKey === undefined ? { tenant_id: tenant } : {}),
      ...(key === undefined ? { log_id: logId } : {}),
      text,
    });
  } else {
    headers["content-type"] = "text/plain; charset=utf-8";
    if (key === undefined) headers["x-log-id"] = logId;
    if (apiKey === undefined) headers["x-tenant-id"] = tenant;
    body = text;
  }
  return {
    path: "",
    headers,
    body: Buffer.from(body, "utf8"),
    records: [expected(logId, text)],
    verdict: (status) => ({
      accepted: new Set(status === 202 ? [0] : []),
      othersInDoubt: status >= 500,
    }),
  };
}

interface Answer {
  readonly sentAt: number;
  readonly status: number | null;
  readonly error: string | null;
  readonly retryAfter: string | null;
  readonly body: Uint8Array;
}

function send(agent: http.Agent, options: LoadOptions, request: Prepared): Promise<Answer> {
  return new Promise((resolve) => {
    let sentAt = Date.now();
    const failed = (error: NodeJS.ErrnoException) =>
      resolve({
        sentAt,
        status: null,
        error: error.code ?? "error",
        retryAfter: null,
        body: new Uint8Array(),
      });
    const outgoing = http.request(
      new URL(request.path, options.url),
      {
        method: "POST",
        agent,
        headers: { ...request.headers, "content-length": String(request.body.byteLength) },
        timeout: options.requestTimeoutMs ?? 30_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", failed);
        response.on("end", () =>
          resolve({
            sentAt,
            status: response.statusCode ?? null,
            error: null,
            retryAfter: (response.headers["retry-after"] as string | undefined) ?? null,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    outgoing.on("timeout", () =>
      outgoing.destroy(Object.assign(new Error("timeout"), { code: "timeout" })),
    );
    outgoing.on("socket", () => (sentAt = Date.now()));
    outgoing.on("error", failed);
    outgoing.end(request.body);
  });
}

function semaphore(limit: number) {
  let free = limit;
  const waiting: Array<() => void> = [];
  return {
    acquire: async () => {
      if (free > 0) free -= 1;
      else await new Promise<void>((resolve) => waiting.push(resolve));
    },
    release: () => {
      const next = waiting.shift();
      if (next === undefined) free += 1;
      else next();
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

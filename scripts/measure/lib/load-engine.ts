/**
 * The one load engine: `npm run load`, the bench and the chaos tests all send through `runLoad`.
 * Open loop: each request has a send time from an arrival schedule, is sent then whatever the
 * answers before it do, and its latency counts from that time (as wrk2 does), so waiting behind
 * a slow server or a lagging client is counted, never omitted (coordinated omission).
 *
 * Not artillery: on this 2-core machine it fell seconds behind its schedule at 833/s, took 1.4
 * cores from the stack it measured, and counted latency from the actual send, which hid the lag.
 * Not autocannon: closed loop per connection, the coordinated omission itself. Neither lets a
 * test close a gate mid-run or see each answer. node:http with keep-alive costs a third of fetch.
 *
 * Every record ends in one list, as the reconciliation needs: accepted (a 202 or OTLP 200), in
 * doubt (a 5xx, a reset, a client timeout: it may have reached Pub/Sub) or rejected (4xx, 429,
 * refused before reaching a server).
 */
import { EventEmitter, once } from "node:events";
import http from "node:http";
import { buffer } from "node:stream/consumers";
import { setTimeout as delay } from "node:timers/promises";
import { summarize } from "./stats";
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
  /** 1 for the first request of its records. */
  readonly attempt: number;
  readonly records: readonly ExpectedRecord[];
  /** Epoch ms; the latency counts from the scheduled time to the answer (or the error). */
  readonly scheduledAt: number;
  readonly sentAt: number;
  readonly answeredAt: number;
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
  private readonly events = new EventEmitter().setMaxListeners(0);
  private closed = false;
  private active = 0;

  get isOpen(): boolean {
    return !this.closed;
  }

  close(): void {
    this.closed = true;
  }

  open(): void {
    this.closed = false;
    this.events.emit("open");
  }

  async closeAndSettle(): Promise<void> {
    this.close();
    if (this.active > 0) await once(this.events, "idle");
  }

  /** Waits until open, then counts a request in (synchronously, so no race). */
  async enter(): Promise<void> {
    while (this.closed) await once(this.events, "open");
    this.active += 1;
  }

  leave(): void {
    this.active -= 1;
    if (this.active === 0) this.events.emit("idle");
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
  /** Send times in ms from the start (arrivalTimes), or `records` at `ratePerSecond` (a burst). */
  readonly at?: readonly number[];
  readonly records?: number;
  readonly ratePerSecond?: number;
  /** Records a request on a batch path; default one record a request (JSON or text/plain). */
  readonly batch?: { readonly size: number; readonly encoding: BatchEncoding };
  /** Requests sending at once, at most (wrk2's -c); waiting for one counts in the latency. */
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
  readonly gate?: LoadGate;
  readonly onOutcome?: (outcome: RequestOutcome) => void;
}

export type LoadReport = Awaited<ReturnType<typeof runLoad>>;

interface Prepared {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
  readonly records: readonly ExpectedRecord[];
  verdict(status: number, answer: Uint8Array): BatchVerdict;
}

export async function runLoad(options: LoadOptions) {
  if (options.tenants.length === 0) throw new Error("runLoad needs at least one tenant");
  const rate = options.ratePerSecond ?? Infinity;
  const at =
    options.at ?? Array.from({ length: options.records ?? 0 }, (_, i) => (i * 1000) / rate);
  const retries = options.retries ?? 0;
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
    const fates: Verdict[] = request.records.map(() => "rejected");
    verdicts[index] = { records: request.records, verdicts: fates };
    // A record keeps its connection through its retries, as a client busy with it would.
    await slots?.acquire();
    try {
      let due = scheduledAt;
      for (let attempt = 1; attempt <= 1 + retries; attempt += 1) {
        await options.gate?.enter();
        let answer: Answer;
        try {
          answer = await send(agent, options.url, request);
        } finally {
          // In the same tick as onOutcome below: closeAndSettle resumes only after it.
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
        const whole = accepted === request.records.length;
        const answeredAt = Date.now();
        const outcome: RequestOutcome = {
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
          verdict: whole ? "accepted" : verdict.othersInDoubt ? "in_doubt" : "rejected",
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
        if (attempt <= retries) await delay(wait);
      }
    } finally {
      slots?.release();
      inFlight -= 1;
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
  // n requests spread over (n - 1) intervals.
  const perSecond = (times: readonly number[]) => {
    const span =
      times.reduce((a, b) => Math.max(a, b), -Infinity) -
      times.reduce((a, b) => Math.min(a, b), Infinity);
    return times.length > 1 && span > 0 ? (times.length - 1) / (span / 1000) : times.length;
  };
  return {
    startedAt,
    /** Records planned (a batch request carries several), and requests sent, retries included. */
    records: verdicts.reduce((sum, entry) => sum + (entry?.records.length ?? 0), 0),
    requests: outcomes.length,
    accepted: lists.accepted,
    inDoubt: lists.in_doubt,
    rejected: lists.rejected,
    /** Requests by HTTP status or error code: {"202": 2990, "503": 8, "ECONNRESET": 2}. */
    statuses,
    offeredPerSecond: perSecond(at),
    sentPerSecond: perSecond(outcomes.filter((o) => o.attempt === 1).map((o) => o.sentAt)),
    /** Every answered request, from its scheduled send time. */
    latency: summarize(outcomes.filter((o) => o.status !== null).map((o) => o.latencyMs)),
    /** From the scheduled time to the write: the engine's own lag, and waits for a connection. */
    sendLag: summarize(sendLags),
    /** Requests due and not yet answered, at most. */
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

/** Hitting this client-side bound of one request leaves its records in doubt. */
const REQUEST_TIMEOUT_MS = 30_000;

function send(agent: http.Agent, url: string, request: Prepared): Promise<Answer> {
  return new Promise((resolve) => {
    let sentAt = Date.now();
    const answer = (fields: Omit<Answer, "sentAt">) => resolve({ sentAt, ...fields });
    const failed = (error: NodeJS.ErrnoException) =>
      answer({
        status: null,
        error: error.code ?? "error",
        retryAfter: null,
        body: Buffer.alloc(0),
      });
    const outgoing = http.request(
      new URL(request.path, url),
      {
        method: "POST",
        agent,
        headers: { ...request.headers, "content-length": String(request.body.byteLength) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (response) => {
        const status = response.statusCode ?? null;
        const retryAfter = (response.headers["retry-after"] as string | undefined) ?? null;
        buffer(response).then((body) => answer({ status, error: null, retryAfter, body }), failed);
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

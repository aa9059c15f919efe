/**
 * A lean open-loop driver for the single-record path: record i is due at start + i / rate and
 * is sent then (or as soon as one of `concurrency` connections is free), JSON and text/plain
 * alternating, over node:http with keep-alive. The benchmark shares two cores with the stack it
 * measures, so the client must cost as little CPU as possible: node:http takes about a third of
 * the CPU that fetch takes per request here. Bounded in count and time.
 */
import http from "node:http";
import { sha256Hex, type ExpectedRecord } from "../load-driver";

export interface SingleLoadOptions {
  readonly url: string;
  readonly tenants: readonly { readonly tenantId: string; readonly apiKey: string | null }[];
  readonly recordsPerSecond: number;
  readonly seconds: number;
  readonly concurrency: number;
  readonly logIdPrefix: string;
  readonly textOf: (index: number) => string;
  readonly requestTimeoutMs?: number;
  readonly onOutcome?: (outcome: SingleOutcome) => void;
}

export interface SingleOutcome {
  /** Epoch ms when the request was sent. */
  readonly startedAt: number;
  /** How late the send was against its schedule (all connections busy), ms. */
  readonly lateMs: number;
  readonly latencyMs: number;
  readonly status: number | null;
  readonly error: string | null;
}

export interface SingleLoadReport {
  readonly startedAt: number;
  readonly durationMs: number;
  readonly requests: number;
  readonly accepted: ExpectedRecord[];
  readonly inDoubt: ExpectedRecord[];
  readonly statuses: Record<string, number>;
  /** Requests sent more than 100 ms behind schedule (the client or the server fell behind). */
  readonly late: number;
}

export async function runSingleLoad(options: SingleLoadOptions): Promise<SingleLoadReport> {
  if (options.tenants.length === 0) throw new Error("runSingleLoad needs at least one tenant");
  const url = new URL(options.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const total = Math.max(1, Math.round(options.recordsPerSecond * options.seconds));
  const intervalMs = 1000 / options.recordsPerSecond;
  const hardDeadline = Date.now() + options.seconds * 1000 * 3 + 60_000;
  const accepted: ExpectedRecord[] = [];
  const inDoubt: ExpectedRecord[] = [];
  const statuses: Record<string, number> = {};
  let late = 0;
  let inFlight = 0;
  let wake: (() => void) | undefined;
  const startedAt = Date.now();

  const sendOne = (index: number, due: number) =>
    new Promise<void>((resolve) => {
      const tenant = options.tenants[index % options.tenants.length] as {
        readonly tenantId: string;
        readonly apiKey: string | null;
      };
      const logId = `${options.logIdPrefix}-${index}`;
      const text = options.textOf(index);
      const json = index % 2 === 0;
      const headers: Record<string, string> = {};
      if (tenant.apiKey !== null) headers.authorization = `Bearer ${tenant.apiKey}`;
      let body: string;
      if (json) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(
          tenant.apiKey === null
            ? { tenant_id: tenant.tenantId, log_id: logId, text }
            : { log_id: logId, text },
        );
      } else {
        headers["content-type"] = "text/plain; charset=utf-8";
        headers["x-log-id"] = logId;
        if (tenant.apiKey === null) headers["x-tenant-id"] = tenant.tenantId;
        body = text;
      }
      headers["content-length"] = String(Buffer.byteLength(body));
      const record = () => ({
        tenant_id: tenant.tenantId,
        log_id: logId,
        text_sha256: sha256Hex(text),
      });
      const sentAt = Date.now();
      const lateMs = Math.max(0, sentAt - due);
      if (lateMs > 100) late += 1;
      let settled = false;
      const finish = (status: number | null, error: string | null) => {
        if (settled) return;
        settled = true;
        const key = status === null ? (error ?? "error") : String(status);
        statuses[key] = (statuses[key] ?? 0) + 1;
        if (status === 202) accepted.push(record());
        else if (status === null ? error !== "ECONNREFUSED" : status >= 500) inDoubt.push(record());
        options.onOutcome?.({
          startedAt: sentAt,
          lateMs,
          latencyMs: Date.now() - sentAt,
          status,
          error,
        });
        resolve();
      };
      const request = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers,
          agent,
          timeout: options.requestTimeoutMs ?? 30_000,
        },
        (response) => {
          response.resume();
          response.on("end", () => finish(response.statusCode ?? null, null));
          response.on("error", (error: NodeJS.ErrnoException) =>
            finish(null, error.code ?? "error"),
          );
        },
      );
      request.on("timeout", () =>
        request.destroy(Object.assign(new Error("timeout"), { code: "timeout" })),
      );
      request.on("error", (error: NodeJS.ErrnoException) => finish(null, error.code ?? "error"));
      request.end(body);
    });

  const pending = new Set<Promise<void>>();
  let requests = 0;
  for (let index = 0; index < total && Date.now() < hardDeadline; index += 1) {
    const due = startedAt + index * intervalMs;
    const wait = due - Date.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    while (inFlight >= options.concurrency) {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
    inFlight += 1;
    requests += 1;
    const sent = sendOne(index, due).then(() => {
      inFlight -= 1;
      pending.delete(sent);
      const resume = wake;
      wake = undefined;
      resume?.();
    });
    pending.add(sent);
  }
  await Promise.all(pending);
  agent.destroy();
  return {
    startedAt,
    durationMs: Date.now() - startedAt,
    requests,
    accepted,
    inDoubt,
    statuses,
    late,
  };
}

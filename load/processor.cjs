/**
 * Artillery processor for the load scenarios in load/*.yml.
 *
 * - `prepareRecord` (beforeRequest) builds one record: a tenant of the run, JSON or text/plain
 *   (about 60/40), a realistic text (mostly log lines of 60-300 characters, one in ten a 1-4 KB
 *   stack trace, about one in five carrying PII, some non-ASCII) and a client-chosen log id, as a
 *   client that retries safely sends one.
 * - `recordOutcome` (afterResponse) appends every 202 as one JSONL line
 *   `{"tenant_id","log_id","text_sha256"}` (the input of scripts/reconcile.ts), a 5xx as
 *   `"outcome":"in_doubt"`, and fails the virtual user on anything but 202 so that the
 *   scenario's `maxErrorRate` counts it.
 * - `recordError` (onError) records a request without an answer (timeout, reset) as in doubt.
 *
 * Artillery runs virtual users in worker threads, possibly in several processes: each thread
 * appends to its own file `<RDP_LOAD_RECORD_DIR>/<pid>-<threadId>.jsonl`, one synchronous
 * write per line, so nothing is interleaved or lost when a worker ends.
 *
 * Configuration (environment; scripts/load.ts sets all of it):
 *   RDP_LOAD_TENANTS     JSON [{"tenant_id","api_key"}, ...]; else RDP_LOAD_TENANT and
 *                        RDP_LOAD_API_KEY; else tenant "acme" with the key in .run/demo-api-key
 *                        (what `npm start` prints)
 *   RDP_LOAD_RECORD_DIR  where the JSONL files go (default .run/load/records)
 *   RDP_LOAD_RUN_ID      prefix of the log ids (default: random)
 */
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const { threadId } = require("node:worker_threads");

const REPO_ROOT = path.resolve(__dirname, "..");

function loadTenants() {
  const env = process.env;
  if (env.RDP_LOAD_TENANTS) {
    const tenants = JSON.parse(env.RDP_LOAD_TENANTS);
    if (!Array.isArray(tenants) || tenants.length === 0) {
      throw new Error("RDP_LOAD_TENANTS must be a non-empty JSON array");
    }
    return tenants;
  }
  if (env.RDP_LOAD_API_KEY) {
    return [{ tenant_id: env.RDP_LOAD_TENANT || null, api_key: env.RDP_LOAD_API_KEY }];
  }
  const demoKey = path.join(REPO_ROOT, ".run", "demo-api-key");
  if (fs.existsSync(demoKey)) {
    return [{ tenant_id: "acme", api_key: fs.readFileSync(demoKey, "utf8").trim() }];
  }
  throw new Error("no tenant: set RDP_LOAD_TENANTS or RDP_LOAD_API_KEY, or run `npm start` first");
}

const TENANTS = loadTenants();
const RUN_ID = process.env.RDP_LOAD_RUN_ID || crypto.randomBytes(4).toString("hex");
const RECORD_DIR = path.resolve(
  REPO_ROOT,
  process.env.RDP_LOAD_RECORD_DIR || path.join(".run", "load", "records"),
);
const PREFIX = `${RUN_ID}-${process.pid}-${threadId}`;
let sequence = 0;
let recordFd;

function appendRecord(line) {
  if (recordFd === undefined) {
    fs.mkdirSync(RECORD_DIR, { recursive: true });
    recordFd = fs.openSync(path.join(RECORD_DIR, `${process.pid}-${threadId}.jsonl`), "a");
  }
  fs.writeSync(recordFd, `${JSON.stringify(line)}\n`);
}

// ------------------------------------------------------------------------------------------
// Texts

const LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"];
const SERVICES = ["checkout", "auth", "search", "billing", "inventory", "notifier"];
const EVENTS = [
  "request completed",
  "user signed in",
  "payment authorised",
  "cache miss for key",
  "order shipped to Zürich",
  "retrying upstream call",
  "données synchronisées",
  "session renewed ✓",
  "quota at 80 % for tenant",
];
const PII = [
  (n) => `contact jane.doe${n}@example.com`,
  (n) => `call 555-${String(1000 + (n % 9000))}`,
  () => "card 4111 1111 1111 1111",
  (n) => `ssn 123-45-${String(1000 + (n % 9000))}`,
  () => "phone +44 20 7946 0958",
];

const pick = (items) => items[Math.floor(Math.random() * items.length)];
const between = (min, max) => min + Math.floor(Math.random() * (max - min + 1));

function logLine(n) {
  const parts = [
    new Date().toISOString(),
    pick(LEVELS),
    `[${pick(SERVICES)}]`,
    pick(EVENTS),
    `req=${crypto.randomBytes(6).toString("hex")}`,
    `latency_ms=${between(1, 900)}`,
  ];
  if (Math.random() < 0.2) parts.push(pick(PII)(n));
  const target = between(60, 300);
  let line = parts.join(" ");
  while (line.length < target) line += ` ${pick(EVENTS)}`;
  return line;
}

function stackTrace(n) {
  const lines = [logLine(n), "Error: upstream timed out after 3000 ms"];
  const target = between(1_000, 4_000);
  let length = lines.join("\n").length;
  for (let depth = 0; length < target; depth += 1) {
    const frame = `    at ${pick(SERVICES)}.handler${depth} (/srv/app/lib/${pick(SERVICES)}.js:${between(10, 400)}:${between(1, 80)})`;
    lines.push(frame);
    length += frame.length + 1;
  }
  if (Math.random() < 0.3) lines.push(`while serving ${pick(PII)(n)}`);
  return lines.join("\n");
}

/** About 90 % log lines, 10 % long multi-line traces. */
function recordText(n) {
  return Math.random() < 0.1 ? stackTrace(n) : logLine(n);
}

const sha256Hex = (text) => crypto.createHash("sha256").update(text, "utf8").digest("hex");

// ------------------------------------------------------------------------------------------
// Hooks

function prepareRecord(requestParams, context, ee, next) {
  sequence += 1;
  const tenant = TENANTS[Math.floor(Math.random() * TENANTS.length)];
  const logId = `${PREFIX}-${sequence}`;
  const text = recordText(sequence);
  const json = Math.random() < 0.6;
  const headers = { ...requestParams.headers };
  if (tenant.api_key) headers.authorization = `Bearer ${tenant.api_key}`;
  let body;
  if (json) {
    headers["content-type"] = "application/json";
    // Half name their tenant, as the brief's example does; the key decides it anyway.
    const record =
      tenant.tenant_id && Math.random() < 0.5
        ? { tenant_id: tenant.tenant_id, log_id: logId, text }
        : { log_id: logId, text };
    body = JSON.stringify(record);
  } else {
    headers["content-type"] = "text/plain; charset=utf-8";
    headers["x-log-id"] = logId;
    body = text;
  }
  requestParams.headers = headers;
  delete requestParams.json;
  // Artillery templates a string body; a Buffer goes out untouched, whatever the text holds.
  requestParams.body = Buffer.from(body, "utf8");
  context.vars.rdpRecord = {
    tenant_id: tenant.tenant_id,
    log_id: logId,
    text_sha256: sha256Hex(text),
  };
  ee.emit("counter", json ? "rdp.sent.json" : "rdp.sent.text", 1);
  return next();
}

function recordOutcome(requestParams, response, context, ee, next) {
  const record = context.vars.rdpRecord;
  const status = response.statusCode;
  if (status === 202) {
    let answer = {};
    try {
      answer = typeof response.body === "string" ? JSON.parse(response.body) : response.body || {};
    } catch {
      // The record as sent is still what was accepted.
    }
    appendRecord({
      tenant_id: answer.tenant_id || record.tenant_id,
      log_id: answer.log_id || record.log_id,
      text_sha256: record.text_sha256,
    });
    ee.emit("counter", "rdp.accepted", 1);
    return next();
  }
  if (status >= 500 && record.tenant_id) {
    appendRecord({ ...record, outcome: "in_doubt" });
  }
  ee.emit("counter", "rdp.not_accepted", 1);
  return next(new Error(`HTTP ${status}`));
}

function recordError(error, requestParams, context, ee, next) {
  const record = context.vars.rdpRecord;
  // Refused connections never reached the server; anything else may have been published.
  if (record && record.tenant_id && error.code !== "ECONNREFUSED") {
    appendRecord({ ...record, outcome: "in_doubt" });
  }
  return next();
}

module.exports = { prepareRecord, recordOutcome, recordError };

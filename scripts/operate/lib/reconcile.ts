/**
 * Reconciliation of a run against Firestore, as Jepsen's queue checker does it: once the
 * pipeline has drained, every record the run got a 202 for (tenant_id, log_id, sha256 of the
 * text) must exist exactly once with that content, and nothing else in the run's tenants.
 * A record is in `tenants/{t}/processed_logs/{log_id}`, or kept in `failed_logs/` as
 * `{log_id}~{reason}~{sha16}` (log_id_conflict: beside an earlier text of the same log_id;
 * other reasons: dead-lettered), or missing. Ids are unique per path, so a duplicate shows as
 * one content in two places. Stored texts are hashed again, not trusted. A record whose request
 * got no definite answer (a 5xx, a reset) is in doubt: stored or not, but never twice.
 *
 * Drained (`waitForDrain`): the emulator has no backlog metric for a push subscription, so the
 * count must reach one document per accepted record and neither it nor the worker's activity
 * change for longer than the subscription's longest redelivery delay.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { FieldPath, type Firestore, type Timestamp } from "@google-cloud/firestore";
import { countOf } from "./operator-cli";

export interface ExpectedRecord {
  readonly tenant_id: string;
  readonly log_id: string;
  readonly text_sha256: string;
}

export interface ReconcileInput {
  /** Every record the run got a 202 for; repeats of one record are fine. */
  readonly accepted: readonly ExpectedRecord[];
  /** Records whose requests ended without a definite answer. */
  readonly inDoubt?: readonly ExpectedRecord[];
  /** More tenants to scan for unexpected documents, besides those of the records. */
  readonly tenants?: readonly string[];
}

/** One document of a run's tenant, as read from Firestore (or built by a test). */
export interface StoredDocument {
  readonly path: string;
  readonly collection: "processed_logs" | "failed_logs";
  /** The tenant of the path, which the document's own tenant_id must match. */
  readonly tenant: string;
  readonly id: string;
  readonly data: Readonly<Record<string, unknown>>;
}

export interface DrainResult {
  readonly drained: boolean;
  /** complete: all there and quiet; stalled: records absent and nothing moving; timeout. */
  readonly reason: "complete" | "stalled" | "timeout" | "skipped";
  readonly waitedMs: number;
  readonly documents: number;
  readonly expected: number;
}

/** What `reconcile` found; formatReport says what each figure means. */
export type ReconcileReport = ReturnType<typeof reconcile>;

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

const keyOf = (tenant: string, logId: string) => `${tenant}/${logId}`;

function examine(doc: StoredDocument) {
  const { original_text: text, text_sha256: claimed } = doc.data;
  const computed = typeof text === "string" ? sha256Hex(text) : null;
  /** The hash of the stored text; null when the document carries none. */
  const contentSha = computed ?? (typeof claimed === "string" ? claimed : null);
  const corrupt =
    (computed !== null && typeof claimed === "string" && claimed !== computed) ||
    doc.data.tenant_id !== doc.tenant ||
    (doc.collection === "processed_logs" && doc.data.log_id !== doc.id);
  return { doc, contentSha, corrupt, explained: false };
}

/** Pure: what the documents say about the accepted records. */
export function reconcile(
  input: ReconcileInput,
  documents: readonly StoredDocument[],
  extras: { readonly deadLetters?: number | null; readonly drain?: DrainResult | null } = {},
) {
  const expected = new Map<string, { accepted: Set<string>; inDoubt: Set<string> }>();
  for (const list of ["accepted", "inDoubt"] as const) {
    for (const record of input[list] ?? []) {
      const key = keyOf(record.tenant_id, record.log_id);
      const entry = expected.get(key) ?? { accepted: new Set(), inDoubt: new Set() };
      entry[list].add(record.text_sha256);
      expected.set(key, entry);
    }
  }
  const byKey = new Map<string, ReturnType<typeof examine>[]>();
  for (const doc of documents) {
    // The log id a document is about: its own field, else its document id.
    const key = keyOf(doc.tenant, typeof doc.data.log_id === "string" ? doc.data.log_id : doc.id);
    byKey.set(key, [...(byKey.get(key) ?? []), examine(doc)]);
  }

  const n = { accepted: 0, stored: 0, conflicts: 0, inDoubt: 0, inDoubtStored: 0 };
  const findings = { missing: [], duplicated: [], wrongContent: [], unexpected: [] } as Record<
    "missing" | "duplicated" | "wrongContent" | "unexpected",
    string[]
  >;
  const deadLetteredByReason: Record<string, number> = {};
  for (const key of new Set([...expected.keys(), ...byKey.keys()])) {
    const wanted = expected.get(key);
    const docs = byKey.get(key) ?? [];
    /** Where a text is stored; each place is then explained. */
    const placesOf = (sha: string) => {
      const places = docs.filter((entry) => !entry.corrupt && entry.contentSha === sha);
      places.forEach((place) => (place.explained = true));
      if (places.length > 1) findings.duplicated.push(places.map((p) => p.doc.path).join(" + "));
      return places;
    };
    for (const sha of wanted?.accepted ?? []) {
      n.accepted += 1;
      const places = placesOf(sha);
      const [only] = places;
      if (only === undefined) findings.missing.push(key);
      else if (places.length > 1) continue;
      else if (only.doc.collection === "processed_logs") n.stored += 1;
      else if (only.doc.data.reason === "log_id_conflict") n.conflicts += 1;
      else {
        const reason = typeof only.doc.data.reason === "string" ? only.doc.data.reason : "unknown";
        deadLetteredByReason[reason] = (deadLetteredByReason[reason] ?? 0) + 1;
      }
    }
    for (const sha of wanted?.inDoubt ?? []) {
      if (wanted?.accepted.has(sha) === true) continue;
      n.inDoubt += 1;
      if (placesOf(sha).length === 1) n.inDoubtStored += 1;
    }
    for (const entry of docs.filter((doc) => !doc.explained)) {
      const finding = wanted !== undefined || entry.corrupt ? "wrongContent" : "unexpected";
      findings[finding].push(entry.doc.path);
    }
  }

  const attempts = documents.map((doc) => doc.data.delivery_attempt);
  const numbered = attempts.filter((attempt): attempt is number => typeof attempt === "number");
  const byAttempt: Record<string, number> = {};
  for (const label of attempts.map((a) => (typeof a === "number" ? String(a) : "unknown")))
    byAttempt[label] = (byAttempt[label] ?? 0) + 1;
  return {
    /** accepted: distinct records (one accepted twice with the same text counts once). */
    ...n,
    acceptedRequests: input.accepted.length,
    deadLettered: Object.values(deadLetteredByReason).reduce((sum, count) => sum + count, 0),
    deadLetteredByReason,
    missing: findings.missing.length,
    duplicated: findings.duplicated.length,
    wrongContent: findings.wrongContent.length,
    unexpected: findings.unexpected.length,
    documents: {
      processed: documents.filter((doc) => doc.collection === "processed_logs").length,
      failed: documents.filter((doc) => doc.collection === "failed_logs").length,
    },
    /** dead_letters/ documents (messages naming no usable tenant), when counted. */
    deadLetters: extras.deadLetters ?? null,
    retries: {
      retried: numbered.filter((attempt) => attempt > 1).length,
      maxAttempt: numbered.reduce((max, attempt) => Math.max(max, attempt), 0),
      byAttempt,
    },
    tenants: new Set([...documents.map((doc) => doc.tenant), ...tenantsOf(input)]).size,
    /** Up to ten examples of each finding, as paths or tenant/log_id. */
    samples: Object.fromEntries(
      Object.entries(findings).map(([finding, list]) => [finding, list.slice(0, 10)]),
    ) as typeof findings,
    drain: extras.drain ?? null,
    /** No missing, duplicated, wrong-content or unexpected record. */
    ok: Object.values(findings).every((list) => list.length === 0),
  };
}

/** Tenants a reconciliation covers: those of the records, and any named besides. */
export function tenantsOf(input: ReconcileInput): string[] {
  const records = [...input.accepted, ...(input.inDoubt ?? [])];
  return [
    ...new Set([...records.map((record) => record.tenant_id), ...(input.tenants ?? [])]),
  ].sort();
}

/** The distinct records that must each leave one document. */
export function expectedDocumentCount(input: ReconcileInput): number {
  const distinct = input.accepted.map((r) => `${keyOf(r.tenant_id, r.log_id)}#${r.text_sha256}`);
  return new Set(distinct).size;
}

/** What the reconcile CLI reads (rejected records are left out). */
export function toReconcileJsonl(run: {
  readonly accepted: readonly ExpectedRecord[];
  readonly inDoubt: readonly ExpectedRecord[];
}): string {
  const line = (outcome: string) => (record: ExpectedRecord) =>
    `${JSON.stringify({ ...record, outcome })}\n`;
  return [...run.accepted.map(line("accepted")), ...run.inDoubt.map(line("in_doubt"))].join("");
}

/**
 * Reads the JSONL of a run: one `{"tenant_id","log_id","text_sha256"}` a line, with an optional
 * `"outcome": "accepted" | "in_doubt"` (default accepted). Blank lines are skipped; anything else
 * malformed throws with its line number, as a silently skipped record would hide a loss.
 */
export function parseRecordsJsonl(text: string) {
  const parsed = { accepted: [] as ExpectedRecord[], inDoubt: [] as ExpectedRecord[] };
  text.split("\n").forEach((line, index) => {
    if (line.trim() === "") return;
    const fail = (why: string) => {
      throw new Error(`line ${index + 1}: ${why}`);
    };
    let value: Record<string, unknown> = {};
    try {
      value = Object(JSON.parse(line));
    } catch {
      fail("not JSON");
    }
    const { tenant_id, log_id, text_sha256, outcome = "accepted" } = value;
    if (typeof tenant_id !== "string" || tenant_id === "")
      fail("tenant_id must be a non-empty string");
    if (typeof log_id !== "string" || log_id === "") fail("log_id must be a non-empty string");
    if (typeof text_sha256 !== "string" || !/^[0-9a-f]{64}$/.test(text_sha256)) {
      fail("text_sha256 must be 64 lowercase hex digits");
    }
    if (outcome !== "accepted" && outcome !== "in_doubt")
      fail('outcome must be "accepted" or "in_doubt"');
    const record = { tenant_id, log_id, text_sha256 } as ExpectedRecord;
    (outcome === "accepted" ? parsed.accepted : parsed.inDoubt).push(record);
  });
  return parsed;
}

export interface DrainOptions {
  readonly timeoutMs: number;
  /** Nothing may change this long: above the longest redelivery delay, which shows nothing. */
  readonly quietMs: number;
  /** Give up sooner when records are absent and nothing at all has changed for this long. */
  readonly stallMs?: number;
  readonly pollMs?: number;
  /** A value that changes while the pipeline works, e.g. the size of the worker's log. */
  readonly activity?: () => Promise<string | number> | string | number;
  readonly onProgress?: (documents: number, expected: number) => void;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Polls `count` until the pipeline has drained (see the module comment) or time runs out. */
export async function waitForDrain(
  count: () => Promise<number> | number,
  expected: number,
  options: DrainOptions,
): Promise<DrainResult> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? delay;
  const startedAt = now();
  let lastCount = -1;
  let lastActivity: string | number | undefined;
  let lastChange = startedAt;
  for (;;) {
    const documents = await count();
    const activity = await options.activity?.();
    const at = now();
    if (documents !== lastCount || activity !== lastActivity) {
      if (documents !== lastCount) options.onProgress?.(documents, expected);
      lastCount = documents;
      lastActivity = activity;
      lastChange = at;
    }
    const quietFor = at - lastChange;
    const waitedMs = at - startedAt;
    const drained = documents >= expected && quietFor >= options.quietMs;
    const stalled =
      documents < expected && options.stallMs !== undefined && quietFor >= options.stallMs;
    if (drained || stalled || waitedMs >= options.timeoutMs) {
      const reason = drained ? "complete" : stalled ? "stalled" : "timeout";
      return { drained, reason, waitedMs, documents, expected };
    }
    await sleep(Math.min(options.pollMs ?? 500, Math.max(1, options.timeoutMs - waitedMs)));
  }
}

/** An activity signal from files that grow while the pipeline works (the worker's log). */
export function fileSizeActivity(files: readonly string[]): () => string {
  const size = (file: string) => fs.statSync(file, { throwIfNoEntry: false })?.size ?? "absent";
  return () => files.map(size).join(",");
}

const FIELDS = ["tenant_id", "log_id", "text_sha256", "delivery_attempt", "message_id", "reason"];
const COLLECTIONS = ["processed_logs", "failed_logs"] as const;

/** With `logIdPrefix`, only the documents of one load run (its log ids start with its run id). */
function logQueries(firestore: Firestore, tenants: readonly string[], logIdPrefix?: string) {
  return tenants.flatMap((tenant) =>
    COLLECTIONS.map((collection) => {
      const all = firestore.collection(`tenants/${tenant}/${collection}`);
      const query =
        logIdPrefix === undefined
          ? all
          : all
              .where(FieldPath.documentId(), ">=", logIdPrefix)
              .where(FieldPath.documentId(), "<", `${logIdPrefix}\uffff`);
      return { tenant, collection, query };
    }),
  );
}

/** Documents in the tenants' processed_logs and failed_logs (see logQueries). */
export async function countDocuments(
  firestore: Firestore,
  tenants: readonly string[],
  logIdPrefix?: string,
): Promise<number> {
  const queries = logQueries(firestore, tenants, logIdPrefix);
  const counts = await Promise.all(queries.map(({ query }) => countOf(query)));
  return counts.reduce((sum, n) => sum + n, 0);
}

export interface ReconcileRunOptions extends Partial<DrainOptions> {
  /** false: check at once, without waiting for the pipeline to drain. */
  readonly wait?: boolean;
  /** Count dead_letters/ documents (they name no tenant) failed since then; null: skip. */
  readonly deadLettersSince?: Date | null;
  /** Check only the documents whose log id starts with this (see logQueries). */
  readonly logIdPrefix?: string;
  /** false: trust the stored text_sha256 (the bench stores a hundred thousand records). */
  readonly rehash?: boolean;
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 120_000;
/** The stack's default subscription redelivers after at most 10 s; 12 s covers it. */
export const DEFAULT_QUIET_MS = 12_000;

/** Waits for the pipeline to drain, then reconciles: what the CLI, tests and load runs call. */
export async function reconcileRun(
  firestore: Firestore,
  input: ReconcileInput,
  options: ReconcileRunOptions = {},
): Promise<ReconcileReport> {
  const tenants = tenantsOf(input);
  const expected = expectedDocumentCount(input);
  const drain: DrainResult =
    options.wait === false
      ? { drained: false, reason: "skipped", waitedMs: 0, documents: -1, expected }
      : await waitForDrain(
          () => countDocuments(firestore, tenants, options.logIdPrefix),
          expected,
          {
            ...options,
            timeoutMs: options.timeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS,
            quietMs: options.quietMs ?? DEFAULT_QUIET_MS,
          },
        );
  const fields = options.rehash === false ? FIELDS : [...FIELDS, "original_text"];
  const lists = await Promise.all(
    logQueries(firestore, tenants, options.logIdPrefix).map(async ({ tenant, collection, query }) =>
      (await query.select(...fields).get()).docs.map((doc): StoredDocument => ({
        path: doc.ref.path,
        collection,
        tenant,
        id: doc.id,
        data: doc.data(),
      })),
    ),
  );
  const since = options.deadLettersSince;
  // Filtered here, not by a query: failed_at is exempt from indexing, and dead letters are few.
  const deadLetters = since
    ? (await firestore.collection("dead_letters").select("failed_at").get()).docs.filter(
        (doc) => ((doc.get("failed_at") as Timestamp | null)?.toMillis() ?? 0) >= since.getTime(),
      ).length
    : null;
  return reconcile(input, lists.flat(), { deadLetters, drain });
}

/** The bench's reconciler: the pipeline has drained already, the stored hashes are trusted. */
export function firestoreReconciler(firestore: Firestore) {
  return (input: ReconcileInput) => reconcileRun(firestore, input, { wait: false, rehash: false });
}

/** The summary table the CLI prints and the tests log. */
export function formatReport(report: ReconcileReport, title = "reconciliation"): string {
  const drain = report.drain;
  const drainLine =
    drain === null || drain.reason === "skipped"
      ? "not waited for"
      : drain.drained
        ? `drained after ${(drain.waitedMs / 1000).toFixed(1)} s`
        : `NOT drained (${drain.reason} after ${(drain.waitedMs / 1000).toFixed(1)} s, ` +
          `${drain.documents} of ${drain.expected} documents): absent records may still be in flight`;
  const reasons = Object.entries(report.deadLetteredByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(", ");
  const attempts = Object.entries(report.retries.byAttempt)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([attempt, n]) => `${attempt}:${n}`)
    .join(" ");
  const rows: Array<[string, string | number, string?]> = [
    ["accepted", report.accepted, `${report.acceptedRequests} accepted requests`],
    ["stored", report.stored, "in processed_logs once, content verified"],
    ["conflicts", report.conflicts, "kept as log_id_conflict in failed_logs"],
    ["dead-lettered", report.deadLettered, reasons === "" ? undefined : reasons],
    ["missing", report.missing],
    ["duplicated", report.duplicated],
    ["wrong content", report.wrongContent],
    ["unexpected", report.unexpected],
    [
      "in doubt",
      report.inDoubt,
      `answered 503 or not at all, never 202: ${report.inDoubtStored} of them stored (not an error)`,
    ],
    ["dead_letters", report.deadLetters ?? "-", "messages naming no tenant"],
    [
      "retried",
      report.retries.retried,
      `documents written by attempt > 1 (max ${report.retries.maxAttempt}; by attempt ${attempts || "-"})`,
    ],
  ];
  const lines = [
    `${title}: ${report.tenants} tenants, ${report.documents.processed} processed and ` +
      `${report.documents.failed} failed documents; ${drainLine}`,
    ...rows.map(
      ([label, value, note]) =>
        `  ${label.padEnd(14)}${String(value).padStart(8)}${note === undefined ? "" : `  ${note}`}`,
    ),
  ];
  for (const [label, list] of Object.entries(report.samples)) {
    if (list.length > 0) lines.push(`  ${label}: ${list.join(", ")}`);
  }
  lines.push(
    report.ok
      ? "RESULT: OK, every accepted record is stored exactly once"
      : "RESULT: FAILED, records are missing, duplicated, wrong or unexpected",
  );
  return lines.join("\n");
}

/** The one-line machine-readable summary (samples and per-attempt counts included). */
export function reportJson(report: ReconcileReport): string {
  return JSON.stringify({ reconcile: report });
}

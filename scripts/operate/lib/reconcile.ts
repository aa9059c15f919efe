/**
 * Reconciliation of a run against Firestore, the way Jepsen's queue checker reconciles a queue:
 * the run lists every record it got a 202 for (tenant_id, log_id, sha256 of the text); once the
 * pipeline has drained, each of them must exist exactly once with that content, and nothing
 * else may exist in the run's tenants.
 *
 * Where a record can be:
 * - `tenants/{t}/processed_logs/{log_id}`: stored (the normal case);
 * - `tenants/{t}/failed_logs/{log_id}~log_id_conflict~{sha16}`: kept beside an earlier record
 *   with the same log_id and another text (counted as a conflict, not a loss);
 * - `tenants/{t}/failed_logs/{log_id}~{reason}~{sha16}`, another reason (expired,
 *   retries_exhausted, invalid_record, rejected_by_store): dead-lettered, kept with its text;
 * - nowhere: missing.
 *
 * A document id is unique per path, so a duplicate can only show up as the same content in more
 * than one place (processed and failed, say). Content is checked by hashing `original_text`
 * again, not by trusting the stored `text_sha256`; a document whose text does not hash to what
 * was accepted counts as wrong content. Records whose request ended without a definite answer
 * (a 5xx, a reset connection) are "in doubt": they may or may not be stored, and neither is an
 * error, but two copies of one still are.
 *
 * Drained (`waitForDrain`, the one drain wait of the load runs, the bench and the CLI): the
 * emulator offers no backlog metric for a push subscription, so the pipeline counts as drained
 * once the stored count reaches one per accepted record and neither it nor the worker's activity
 * (its log growing) has changed for a quiet period longer than the subscription's longest
 * redelivery delay, within a bounded wait.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { FieldPath, type Firestore } from "@google-cloud/firestore";

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

export type LogCollection = "processed_logs" | "failed_logs";

/** One document of a run's tenant, as read from Firestore (or built by a test). */
export interface StoredDocument {
  readonly path: string;
  readonly collection: LogCollection;
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

export interface ReconcileReport {
  /** Distinct accepted records (a record accepted twice with the same text counts once). */
  readonly accepted: number;
  readonly acceptedRequests: number;
  /** In processed_logs exactly once, with the accepted content. */
  readonly stored: number;
  /** Kept as log_id_conflict in failed_logs beside an earlier text of the same log_id. */
  readonly conflicts: number;
  /** In failed_logs with another reason (expired, ...), by reason. */
  readonly deadLettered: number;
  readonly deadLetteredByReason: Readonly<Record<string, number>>;
  readonly missing: number;
  /** Records (accepted or in doubt) whose content is stored in more than one place. */
  readonly duplicated: number;
  /** Documents for an accepted id whose content is not any accepted text, or that are corrupt. */
  readonly wrongContent: number;
  /** Documents in the run's tenants for ids nobody sent. */
  readonly unexpected: number;
  readonly inDoubt: number;
  readonly inDoubtStored: number;
  readonly documents: { readonly processed: number; readonly failed: number };
  /** dead_letters/ documents (messages naming no usable tenant), when counted. */
  readonly deadLetters: number | null;
  readonly retries: {
    /** Documents written by a delivery attempt > 1. */
    readonly retried: number;
    readonly maxAttempt: number;
    /** Documents by delivery_attempt ("unknown" when absent). */
    readonly byAttempt: Readonly<Record<string, number>>;
  };
  readonly tenants: number;
  /** Up to ten examples of each finding, as paths or tenant/log_id. */
  readonly samples: {
    readonly missing: readonly string[];
    readonly duplicated: readonly string[];
    readonly wrongContent: readonly string[];
    readonly unexpected: readonly string[];
  };
  readonly drain: DrainResult | null;
  /** No missing, duplicated, wrong-content or unexpected record. */
  readonly ok: boolean;
}

const SAMPLE_LIMIT = 10;

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

const keyOf = (tenant: string, logId: string) => `${tenant}/${logId}`;

interface Examined {
  readonly doc: StoredDocument;
  /** The hash of the stored text; null when the document carries none. */
  readonly contentSha: string | null;
  readonly corrupt: boolean;
  explained: boolean;
}

function examine(doc: StoredDocument): Examined {
  const {
    original_text: text,
    text_sha256: claimed,
    tenant_id: tenantId,
    log_id: logId,
  } = doc.data;
  const computed = typeof text === "string" ? sha256Hex(text) : null;
  const contentSha = computed ?? (typeof claimed === "string" ? claimed : null);
  const corrupt =
    (computed !== null && typeof claimed === "string" && claimed !== computed) ||
    tenantId !== doc.tenant ||
    (doc.collection === "processed_logs" && logId !== doc.id);
  return { doc, contentSha, corrupt, explained: false };
}

/** The log id a document is about: its own field, else its document id. */
function logIdOf(doc: StoredDocument): string {
  return typeof doc.data.log_id === "string" ? doc.data.log_id : doc.id;
}

/** Pure: what the documents say about the accepted records. */
export function reconcile(
  input: ReconcileInput,
  documents: readonly StoredDocument[],
  extras: { readonly deadLetters?: number | null; readonly drain?: DrainResult | null } = {},
): ReconcileReport {
  const expected = new Map<string, { accepted: Set<string>; inDoubt: Set<string> }>();
  const expect = (record: ExpectedRecord, list: "accepted" | "inDoubt") => {
    const key = keyOf(record.tenant_id, record.log_id);
    let entry = expected.get(key);
    if (entry === undefined) {
      entry = { accepted: new Set(), inDoubt: new Set() };
      expected.set(key, entry);
    }
    entry[list].add(record.text_sha256);
  };
  input.accepted.forEach((record) => expect(record, "accepted"));
  (input.inDoubt ?? []).forEach((record) => expect(record, "inDoubt"));

  const byKey = new Map<string, Examined[]>();
  for (const doc of documents) {
    const key = keyOf(doc.tenant, logIdOf(doc));
    const list = byKey.get(key) ?? [];
    list.push(examine(doc));
    byKey.set(key, list);
  }

  const n = { accepted: 0, stored: 0, conflicts: 0, inDoubt: 0, inDoubtStored: 0 };
  const samples = {
    missing: [] as string[],
    duplicated: [] as string[],
    wrongContent: [] as string[],
    unexpected: [] as string[],
  };
  const findings = { missing: 0, duplicated: 0, wrongContent: 0, unexpected: 0 };
  const found = (finding: keyof typeof findings, example: string) => {
    findings[finding] += 1;
    if (samples[finding].length < SAMPLE_LIMIT) samples[finding].push(example);
  };
  const deadLetteredByReason: Record<string, number> = {};

  for (const key of new Set([...expected.keys(), ...byKey.keys()])) {
    const wanted = expected.get(key);
    const docs = byKey.get(key) ?? [];
    /** Where a text is stored; each place is then explained. */
    const placesOf = (sha: string) => {
      const places = docs.filter((entry) => !entry.corrupt && entry.contentSha === sha);
      places.forEach((place) => (place.explained = true));
      if (places.length > 1) found("duplicated", places.map((place) => place.doc.path).join(" + "));
      return places;
    };
    for (const sha of wanted?.accepted ?? []) {
      n.accepted += 1;
      const places = placesOf(sha);
      const [only] = places;
      if (only === undefined) found("missing", key);
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
      found(wanted !== undefined || entry.corrupt ? "wrongContent" : "unexpected", entry.doc.path);
    }
  }

  const byAttempt: Record<string, number> = {};
  let retried = 0;
  let maxAttempt = 0;
  for (const doc of documents) {
    const attempt = doc.data.delivery_attempt;
    const label = typeof attempt === "number" ? String(attempt) : "unknown";
    byAttempt[label] = (byAttempt[label] ?? 0) + 1;
    if (typeof attempt === "number") {
      if (attempt > 1) retried += 1;
      maxAttempt = Math.max(maxAttempt, attempt);
    }
  }

  const { missing, duplicated, wrongContent, unexpected } = findings;
  return {
    ...n,
    acceptedRequests: input.accepted.length,
    deadLettered: Object.values(deadLetteredByReason).reduce((sum, count) => sum + count, 0),
    deadLetteredByReason,
    ...findings,
    documents: {
      processed: documents.filter((doc) => doc.collection === "processed_logs").length,
      failed: documents.filter((doc) => doc.collection === "failed_logs").length,
    },
    deadLetters: extras.deadLetters ?? null,
    retries: { retried, maxAttempt, byAttempt },
    tenants: new Set([...documents.map((doc) => doc.tenant), ...tenantsOf(input)]).size,
    samples,
    drain: extras.drain ?? null,
    ok: missing === 0 && duplicated === 0 && wrongContent === 0 && unexpected === 0,
  };
}

/** Tenants a reconciliation covers: those of the records, and any named besides. */
export function tenantsOf(input: ReconcileInput): string[] {
  return [
    ...new Set([
      ...input.accepted.map((record) => record.tenant_id),
      ...(input.inDoubt ?? []).map((record) => record.tenant_id),
      ...(input.tenants ?? []),
    ]),
  ].sort();
}

/** The distinct records that must each leave one document. */
export function expectedDocumentCount(input: ReconcileInput): number {
  return new Set(
    input.accepted.map(
      (record) => `${keyOf(record.tenant_id, record.log_id)}#${record.text_sha256}`,
    ),
  ).size;
}

// ---------------------------------------------------------------------------------------------
// Input and its file: JSONL, one record a line

/** What the reconcile CLI reads (rejected records are left out). */
export function toReconcileJsonl(run: {
  readonly accepted: readonly ExpectedRecord[];
  readonly inDoubt: readonly ExpectedRecord[];
}): string {
  const lines = [
    ...run.accepted.map((record) => ({ ...record, outcome: "accepted" })),
    ...run.inDoubt.map((record) => ({ ...record, outcome: "in_doubt" })),
  ].map((line) => `${JSON.stringify(line)}\n`);
  return lines.join("");
}

export function writeReconcileJsonl(file: string, run: Parameters<typeof toReconcileJsonl>[0]) {
  fs.writeFileSync(file, toReconcileJsonl(run));
}

export interface ParsedRecords {
  readonly accepted: ExpectedRecord[];
  readonly inDoubt: ExpectedRecord[];
}

/**
 * Reads the JSONL of a run: one `{"tenant_id","log_id","text_sha256"}` a line, with an optional
 * `"outcome": "accepted" | "in_doubt"` (default accepted). Blank lines are skipped; anything else
 * malformed throws with its line number, as a silently skipped record would hide a loss.
 */
export function parseRecordsJsonl(text: string): ParsedRecords {
  const parsed: ParsedRecords = { accepted: [], inDoubt: [] };
  text.split("\n").forEach((line, index) => {
    if (line.trim() === "") return;
    const fail = (why: string) => {
      throw new Error(`line ${index + 1}: ${why}`);
    };
    let value: Record<string, unknown> = {};
    try {
      value = Object(JSON.parse(line)) as Record<string, unknown>;
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

// ---------------------------------------------------------------------------------------------
// Waiting for the pipeline to drain

export interface DrainOptions {
  /** Longest wait. */
  readonly timeoutMs: number;
  /**
   * How long neither the document count nor the activity may change; keep it above the
   * subscription's longest redelivery delay (a message waiting for redelivery shows nothing).
   */
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
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
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
    const result = (drained: boolean, reason: DrainResult["reason"]): DrainResult => ({
      drained,
      reason,
      waitedMs,
      documents,
      expected,
    });
    if (documents >= expected && quietFor >= options.quietMs) return result(true, "complete");
    if (documents < expected && options.stallMs !== undefined && quietFor >= options.stallMs) {
      return result(false, "stalled");
    }
    if (waitedMs >= options.timeoutMs) return result(false, "timeout");
    await sleep(Math.min(options.pollMs ?? 500, Math.max(1, options.timeoutMs - waitedMs)));
  }
}

/** An activity signal from files that grow while the pipeline works (the worker's log). */
export function fileSizeActivity(files: readonly string[]): () => string {
  return () =>
    files
      .map((file) => {
        try {
          return String(fs.statSync(file).size);
        } catch {
          return "absent";
        }
      })
      .join(",");
}

// ---------------------------------------------------------------------------------------------
// Firestore

const FIELDS = ["tenant_id", "log_id", "text_sha256", "delivery_attempt", "message_id", "reason"];
const COLLECTIONS: readonly LogCollection[] = ["processed_logs", "failed_logs"];

/**
 * The tenants' processed_logs and failed_logs; with `logIdPrefix`, only the documents whose id
 * starts with it. A deployed tenant holds other runs' documents too, and every log id of a load
 * run starts with its run id (see scripts/measure/load.ts).
 */
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
  const counts = await Promise.all(
    logQueries(firestore, tenants, logIdPrefix).map(
      async ({ query }) => (await query.count().get()).data().count,
    ),
  );
  return counts.reduce((sum, n) => sum + n, 0);
}

/** With `rehash`, the stored texts too, to hash them again (see examine). */
export async function readDocuments(
  firestore: Firestore,
  tenants: readonly string[],
  logIdPrefix?: string,
  rehash = true,
): Promise<StoredDocument[]> {
  const fields = rehash ? [...FIELDS, "original_text"] : FIELDS;
  const lists = await Promise.all(
    logQueries(firestore, tenants, logIdPrefix).map(async ({ tenant, collection, query }) => {
      const snapshot = await query.select(...fields).get();
      return snapshot.docs.map((doc): StoredDocument => ({
        path: doc.ref.path,
        collection,
        tenant,
        id: doc.id,
        data: doc.data(),
      }));
    }),
  );
  return lists.flat();
}

/** dead_letters/ documents, optionally only those failed at or after `since`. */
export async function countDeadLetters(firestore: Firestore, since?: Date): Promise<number> {
  const collection = firestore.collection("dead_letters");
  const query = since === undefined ? collection : collection.where("failed_at", ">=", since);
  return (await query.count().get()).data().count;
}

export interface ReconcileRunOptions extends Partial<Omit<DrainOptions, "onProgress">> {
  /** false: check at once, without waiting for the pipeline to drain. */
  readonly wait?: boolean;
  /** Count dead_letters/ documents failed since then (they name no tenant); null: skip. */
  readonly deadLettersSince?: Date | null;
  /** Check only the documents whose log id starts with this (see logQueries). */
  readonly logIdPrefix?: string;
  /**
   * false: trust each document's text_sha256 instead of reading and hashing its text again
   * (the bench, whose phases store a hundred thousand records; default true).
   */
  readonly rehash?: boolean;
  readonly onProgress?: (documents: number, expected: number) => void;
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
  const documents = await readDocuments(
    firestore,
    tenants,
    options.logIdPrefix,
    options.rehash ?? true,
  );
  const deadLetters =
    options.deadLettersSince === undefined || options.deadLettersSince === null
      ? null
      : await countDeadLetters(firestore, options.deadLettersSince);
  return reconcile(input, documents, { deadLetters, drain });
}

/** The bench's reconciler: the pipeline has drained already, the stored hashes are trusted. */
export function firestoreReconciler(
  firestore: Firestore,
): (input: ReconcileInput) => Promise<ReconcileReport> {
  return (input) => reconcileRun(firestore, input, { wait: false, rehash: false });
}

// ---------------------------------------------------------------------------------------------
// Output

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

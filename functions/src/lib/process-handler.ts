/**
 * The worker: decode a Pub/Sub message, validate, redact and create each record's document,
 * each record settled on its own. Transient failures throw, so Pub/Sub redelivers (records
 * already stored are found stored then); permanent ones are recorded (failed_logs, or
 * dead_letters when no tenant can be named) and the message is acked by returning normally.
 * A record ends in exactly one place: processed_logs, or failed_logs when it cannot be stored.
 */
import { createHash } from "node:crypto";
import type { AttemptTracker } from "./attempts";
import type { Config } from "./config";
import { schemaViolations } from "./errors";
import type { DeliveryFaults, FaultInjector } from "./faults";
import { isLogId, isTenantId } from "./ids";
import { errorFields, type Logger } from "./logger";
import { redactOtlpFields } from "./otlp";
import { redact } from "./redaction";
import type { PipelineRecord, RecordSource, Validators } from "./schema";
import type { CreateResult, FailedLog, FailureReason, ProcessedLog, RecordStore } from "./store";
import type { TenantSettingsSource } from "./tenant-settings";

/** What the trigger knows about one delivery of a Pub/Sub message. */
export interface Delivery {
  readonly messageId: string;
  readonly publishTime: string | undefined;
  /** The message data, base64-encoded as Pub/Sub push and Eventarc deliver it. */
  readonly dataBase64: string | undefined;
  /** Set by Pub/Sub only where the subscription has a dead-letter policy. */
  readonly deliveryAttempt: number | undefined;
}

export interface ProcessDeps {
  readonly config: Config;
  readonly validators: Validators;
  readonly store: RecordStore;
  readonly logger: Logger;
  readonly attempts: AttemptTracker;
  readonly faults: FaultInjector;
  /** Each tenant's redaction policy and retention (cached tenant settings). */
  readonly tenantSettings: TenantSettingsSource;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now?: () => Date;
}

/** gRPC status of a write Firestore refuses however often it is retried. */
const INVALID_ARGUMENT = 3;

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * When a document written now is deleted by the TTL policy on `expire_at`: after the tenant's
 * `retention_days`, or RETENTION_DAYS. The worker's clock, as Firestore has no server-side
 * "now plus": a few seconds of skew do not matter against days.
 */
function expireAt(retentionDays: number | undefined, deps: ProcessDeps): Date {
  const now = (deps.now?.() ?? new Date()).getTime();
  return new Date(now + (retentionDays ?? deps.config.retentionDays) * DAY_MS);
}

interface AttemptContext {
  readonly delivery: Delivery;
  readonly attempt: number;
  readonly faults: DeliveryFaults;
  readonly deps: ProcessDeps;
}

/** A record this attempt could not settle for a reason that may pass: retried, or given up. */
interface TransientFailure {
  readonly record: PipelineRecord;
  readonly error: unknown;
}

export async function processDelivery(delivery: Delivery, deps: ProcessDeps): Promise<void> {
  const attempt = deps.attempts.attemptOf(delivery.messageId, delivery.deliveryAttempt);
  const faults = deps.faults.forDelivery(attempt);
  const context: AttemptContext = { delivery, attempt, faults, deps };
  try {
    const decoded = decode(delivery.dataBase64, deps.validators);
    const [, transient] = await Promise.all([
      Promise.all(decoded.unusable.map((item) => recordUnusable(item, context))),
      storeRecords(decoded.records, context),
    ]);
    if (transient.length > 0) await retryOrGiveUp(transient, context);
    deps.attempts.forget(delivery.messageId);
  } catch (error) {
    deps.attempts.recordFailure(delivery.messageId);
    deps.logger.warn("processing attempt failed; Pub/Sub will redeliver", {
      message_id: delivery.messageId,
      attempt,
      ...errorFields(error),
    });
    throw error;
  }
}

/**
 * Prepares each distinct record (work, redaction, fault point), creates the ready ones in one
 * round of writes, then settles each on its own: one record's failure never hides another's
 * result. Of two records with one log id, the first in message order is written; a later one
 * with the same text is the same record, one with another text a conflict.
 */
async function storeRecords(
  records: readonly PipelineRecord[],
  context: AttemptContext,
): Promise<TransientFailure[]> {
  const firsts = new Map<string, PipelineRecord>();
  const repeats: { record: PipelineRecord; first: PipelineRecord }[] = [];
  for (const record of records) {
    const key = `${record.tenant_id}/${record.log_id}`;
    const first = firsts.get(key);
    if (first === undefined) firsts.set(key, record);
    else repeats.push({ record, first });
  }
  const distinct = [...firsts.values()];

  const prepared = await Promise.allSettled(distinct.map((record) => prepare(record, context)));
  const ready = prepared.flatMap((result, index) =>
    result.status === "fulfilled"
      ? [{ record: distinct[index] as PipelineRecord, log: result.value }]
      : [],
  );
  const results: readonly CreateResult[] =
    ready.length > 0
      ? await context.deps.store.createProcessedLogs(ready.map(({ log }) => log))
      : [];

  const transient: TransientFailure[] = prepared.flatMap((result, index) =>
    result.status === "rejected"
      ? [{ record: distinct[index] as PipelineRecord, error: result.reason }]
      : [],
  );
  await Promise.all([
    ...ready.map(async ({ record, log }, index) => {
      const failure = await settle(record, log, results[index] as CreateResult, context);
      if (failure !== undefined) transient.push(failure);
    }),
    ...repeats.map(({ record, first }) => settleRepeat(record, first, context)),
  ]);
  return transient;
}

async function prepare(record: PipelineRecord, context: AttemptContext): Promise<ProcessedLog> {
  const { deps, delivery, attempt, faults } = context;
  if (deps.config.simulatedWorkMsPerChar > 0) {
    await deps.sleep(record.text.length * deps.config.simulatedWorkMsPerChar);
  }
  const settings = await deps.tenantSettings.settingsFor(record.tenant_id);
  const policy = settings.redaction;
  const redaction = redact(record.text, policy);
  // An OTLP record's attributes are redacted like its text, and counted with it.
  const otlp =
    record.otlp === undefined
      ? undefined
      : redactOtlpFields(record.otlp, (text) => redact(text, policy));
  const counts = { ...redaction.counts };
  for (const [kind, found] of Object.entries(otlp?.counts ?? {})) {
    counts[kind as keyof typeof counts] += found;
  }
  faults.beforeWrite(record.text);
  return {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    source: record.source,
    original_text: record.text,
    modified_data: redaction.text,
    redactions: counts,
    text_sha256: sha256(record.text),
    received_at: new Date(record.received_at),
    message_id: delivery.messageId,
    delivery_attempt: attempt,
    expire_at: expireAt(settings.retentionDays, deps),
    ...(otlp === undefined ? {} : { otlp: otlp.fields }),
  };
}

/** Settles one write; a transient failure is returned, to be retried or given up on. */
async function settle(
  record: PipelineRecord,
  log: ProcessedLog,
  result: CreateResult,
  context: AttemptContext,
): Promise<TransientFailure | undefined> {
  const { deps, delivery, attempt } = context;
  const ids = {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    message_id: delivery.messageId,
    attempt,
  };
  if ("error" in result) {
    if ((result.error as { code?: unknown }).code !== INVALID_ARGUMENT) {
      return { record, error: result.error };
    }
    await recordFailure(
      salvage(record),
      "rejected_by_store",
      "Firestore refused the document",
      context,
    );
  } else if (result.created) {
    deps.logger.recordSuccess("stored", ids);
  } else if (result.existingSha256 === log.text_sha256) {
    deps.logger.info("record already stored; duplicate delivery ignored", ids);
  } else {
    // First write wins; the later version is kept in failed_logs for the tenant to resolve.
    await recordFailure(
      salvage(record),
      "log_id_conflict",
      "A record with this log_id and different text is already stored",
      context,
    );
  }
  return undefined;
}

/** A later record of the message with a log id an earlier one has: the first one wins. */
async function settleRepeat(
  record: PipelineRecord,
  first: PipelineRecord,
  context: AttemptContext,
): Promise<void> {
  if (record.text === first.text) {
    context.deps.logger.info("record repeated in its message; the first is stored", {
      tenant_id: record.tenant_id,
      log_id: record.log_id,
      message_id: context.delivery.messageId,
    });
    return;
  }
  await recordFailure(
    salvage(record),
    "log_id_conflict",
    "An earlier record of the same message has this log_id and different text",
    context,
  );
}

/**
 * Transient failures are retried until the last attempt Pub/Sub would make before
 * dead-lettering, or until the event is older than MAX_EVENT_AGE_SECONDS; then each record not
 * stored meanwhile is kept in failed_logs, where its tenant can see it, and the message acked.
 */
async function retryOrGiveUp(
  failures: readonly TransientFailure[],
  context: AttemptContext,
): Promise<void> {
  const { deps, delivery } = context;
  const [firstFailure] = failures;
  const expired = isExpired(delivery.publishTime, deps);
  const failedAttempts = expired ? context.attempt : await countFailedAttempt(failures, context);
  if (!expired && failedAttempts < deps.config.maxDeliveryAttempts) throw firstFailure?.error;

  const reason: FailureReason = expired ? "expired" : "retries_exhausted";
  // The error's name only: a message could quote the record.
  const cause = firstFailure?.error instanceof Error ? firstFailure.error.name : "unknown error";
  const detail = expired
    ? `The event outlived MAX_EVENT_AGE_SECONDS; the last attempt failed with ${cause}`
    : `Failed ${failedAttempts} attempts (MAX_DELIVERY_ATTEMPTS); the last with ${cause}`;
  const given = { ...context, attempt: failedAttempts };
  await Promise.all(
    failures.map(({ record }) =>
      recordFailure(salvage(record), reason, detail, given, { unlessStored: true }),
    ),
  );
}

/**
 * Which failed attempt this one is. Pub/Sub reports the attempt where the subscription has a
 * dead-letter policy; otherwise the failures are counted in Firestore, so the limit holds
 * across instances, scale to zero and restarts (one write per failed attempt, none on success).
 */
async function countFailedAttempt(
  failures: readonly TransientFailure[],
  context: AttemptContext,
): Promise<number> {
  const { delivery, deps } = context;
  if (delivery.deliveryAttempt !== undefined && delivery.deliveryAttempt > 0) {
    return delivery.deliveryAttempt;
  }
  try {
    return await deps.store.countFailedAttempt(delivery.messageId);
  } catch {
    // Nothing can be recorded now either: the redelivery is counted once the store answers.
    throw failures[0]?.error;
  }
}

type SalvagedRecord = Pick<
  FailedLog,
  "tenant_id" | "log_id" | "source" | "original_text" | "received_at"
>;

function salvage(record: PipelineRecord): SalvagedRecord {
  return {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    source: record.source,
    original_text: record.text,
    received_at: new Date(record.received_at),
  };
}

async function recordFailure(
  record: SalvagedRecord,
  reason: FailureReason,
  detail: string,
  { delivery, attempt, deps }: AttemptContext,
  options: { unlessStored?: boolean } = {},
): Promise<void> {
  const ids = {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    message_id: delivery.messageId,
    attempt,
    reason,
  };
  // Kept as long as the tenant's stored records; an unreadable setting fails the delivery.
  const { retentionDays } = await deps.tenantSettings.settingsFor(record.tenant_id);
  const outcome = await deps.store.recordFailedLog(
    {
      ...record,
      reason,
      detail,
      text_sha256: record.original_text === null ? null : sha256(record.original_text),
      message_id: delivery.messageId,
      delivery_attempt: attempt,
      expire_at: expireAt(retentionDays, deps),
    },
    options,
  );
  if (outcome === "already_stored") {
    deps.logger.info("record found stored by an earlier attempt; no failure recorded", ids);
  } else {
    deps.logger.warn("record failed permanently; recorded in failed_logs", ids);
  }
}

/** A record, or a whole message, that cannot be processed as it stands. */
interface Unusable {
  readonly reason: Extract<FailureReason, "invalid_message" | "invalid_record">;
  readonly detail: string;
  /** The record with a usable tenant and log id, so the failure lands in that tenant. */
  readonly record: SalvagedRecord | undefined;
  /** Its position in the message; undefined when the message itself is unreadable. */
  readonly index: number | undefined;
  readonly raw: unknown;
}

interface Decoded {
  readonly records: readonly PipelineRecord[];
  readonly unusable: readonly Unusable[];
}

/**
 * Reads the envelope, then each record alone: a record that fails its schema is unusable on its
 * own, its neighbours are processed. An envelope of another shape (say, another version) makes
 * every record in it unusable, as its records cannot be read with certainty.
 */
function decode(dataBase64: string | undefined, validators: Validators): Decoded {
  let candidate: unknown;
  try {
    candidate = JSON.parse(Buffer.from(dataBase64 ?? "", "base64").toString("utf8"));
  } catch {
    return unreadable("The message data is not JSON", undefined);
  }
  const items = (candidate as { records?: unknown } | null)?.records;
  if (!validators.pipelineEnvelope(candidate)) {
    const detail =
      "The message does not match the pipeline envelope: " +
      describe(schemaViolations(validators.pipelineEnvelope.errors));
    if (!Array.isArray(items) || items.length === 0) return unreadable(detail, undefined);
    return {
      records: [],
      unusable: items.map((item, index) => unusableRecord("invalid_message", detail, item, index)),
    };
  }
  const records: PipelineRecord[] = [];
  const unusable: Unusable[] = [];
  candidate.records.forEach((item, index) => {
    if (validators.pipelineRecord(item)) {
      records.push(item);
      return;
    }
    const detail =
      "The record does not match the pipeline schema: " +
      describe(schemaViolations(validators.pipelineRecord.errors));
    unusable.push(unusableRecord("invalid_record", detail, item, index));
  });
  return { records, unusable };
}

function unreadable(detail: string, raw: unknown): Decoded {
  return {
    records: [],
    unusable: [{ reason: "invalid_message", detail, record: undefined, index: undefined, raw }],
  };
}

function unusableRecord(
  reason: Unusable["reason"],
  detail: string,
  item: unknown,
  index: number,
): Unusable {
  return { reason, detail, record: salvageUnknown(item), index, raw: item };
}

function describe(violations: readonly { pointer: string; detail: string }[]): string {
  return violations
    .map((violation) => `${violation.pointer || "/"} ${violation.detail}`)
    .join("; ");
}

function salvageUnknown(item: unknown): SalvagedRecord | undefined {
  const record = (typeof item === "object" && item !== null ? item : {}) as Record<string, unknown>;
  if (!isTenantId(record.tenant_id) || !isLogId(record.log_id)) return undefined;
  const receivedAt = typeof record.received_at === "string" ? new Date(record.received_at) : null;
  return {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    source: isSource(record.source) ? record.source : null,
    original_text: typeof record.text === "string" ? record.text : null,
    received_at: receivedAt !== null && Number.isFinite(receivedAt.getTime()) ? receivedAt : null,
  };
}

function isSource(value: unknown): value is RecordSource {
  return value === "json_upload" || value === "text_upload" || value === "otlp";
}

/** Into the tenant's failed_logs when a tenant can be named, else into dead_letters. */
async function recordUnusable(item: Unusable, context: AttemptContext): Promise<void> {
  if (item.record !== undefined) {
    await recordFailure(item.record, item.reason, item.detail, context);
    return;
  }
  const { delivery, attempt, deps } = context;
  await deps.store.recordDeadLetter({
    message_id: delivery.messageId,
    reason: item.reason,
    detail: item.detail,
    data_base64:
      item.index === undefined
        ? (delivery.dataBase64 ?? "")
        : Buffer.from(JSON.stringify(item.raw) ?? "null", "utf8").toString("base64"),
    record_index: item.index ?? null,
    delivery_attempt: attempt,
    // No tenant, so no tenant's retention: the default.
    expire_at: expireAt(undefined, deps),
  });
  deps.logger.warn("message or record names no usable tenant; recorded in dead_letters", {
    message_id: delivery.messageId,
    record_index: item.index,
    attempt,
  });
}

function isExpired(publishTime: string | undefined, deps: ProcessDeps): boolean {
  const published = publishTime === undefined ? NaN : Date.parse(publishTime);
  if (!Number.isFinite(published)) return false;
  const ageMs = (deps.now?.() ?? new Date()).getTime() - published;
  return ageMs > deps.config.maxEventAgeSeconds * 1000;
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

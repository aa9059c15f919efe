/**
 * The worker: decode and re-validate a Pub/Sub message, redact each record and
 * create its document. Transient failures throw, so Pub/Sub redelivers; permanent
 * ones are recorded (failed_logs, or dead_letters when no tenant can be named) and
 * the message is acked by returning normally.
 */
import { createHash } from "node:crypto";
import type { AttemptTracker } from "./attempts";
import type { Config } from "./config";
import { schemaViolations } from "./errors";
import type { DeliveryFaults, FaultInjector } from "./faults";
import { isLogId, isTenantId } from "./ids";
import { errorFields, type Logger } from "./logger";
import { redact } from "./redaction";
import type { RedactionPolicies } from "./redaction-policies";
import type { PipelineMessage, PipelineRecord, RecordSource, Validators } from "./schema";
import type { CreateResult, FailedLog, FailureReason, ProcessedLog, RecordStore } from "./store";

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
  readonly redactionPolicies: RedactionPolicies;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now?: () => Date;
}

/** gRPC status of a write Firestore refuses however often it is retried. */
const INVALID_ARGUMENT = 3;

interface AttemptContext {
  readonly delivery: Delivery;
  readonly attempt: number;
  readonly faults: DeliveryFaults;
  readonly deps: ProcessDeps;
}

export async function processDelivery(delivery: Delivery, deps: ProcessDeps): Promise<void> {
  const attempt = deps.attempts.attemptOf(delivery.messageId, delivery.deliveryAttempt);
  const faults = deps.faults.forDelivery(attempt);
  const context: AttemptContext = { delivery, attempt, faults, deps };
  try {
    const decoded = decode(delivery.dataBase64, deps.validators);
    if (!decoded.valid) {
      await recordInvalidMessage(decoded, context);
    } else if (isExpired(delivery.publishTime, deps)) {
      await Promise.all(
        decoded.message.records.map((record) =>
          recordFailure(
            salvage(record),
            "expired",
            "The event outlived MAX_EVENT_AGE_SECONDS",
            context,
          ),
        ),
      );
    } else {
      await storeRecords(decoded.message.records, context);
    }
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
 * Prepares every record (work, redaction, fault point), creates the ready ones in one round of
 * writes, then settles each on its own: one record's failure never hides another's result.
 */
async function storeRecords(
  records: readonly PipelineRecord[],
  context: AttemptContext,
): Promise<void> {
  const prepared = await Promise.allSettled(records.map((record) => prepare(record, context)));
  const ready = prepared.flatMap((result, index) =>
    result.status === "fulfilled"
      ? [{ record: records[index] as PipelineRecord, log: result.value }]
      : [],
  );
  let results: readonly CreateResult[] = [];
  if (ready.length > 0) {
    try {
      results = await context.deps.store.createProcessedLogs(ready.map(({ log }) => log));
    } catch (error) {
      results = ready.map(() => ({ error }));
    }
  }
  await Promise.all([
    ...prepared.flatMap((result, index) =>
      result.status === "rejected"
        ? [giveUpOnLastAttempt(records[index] as PipelineRecord, result.reason, context)]
        : [],
    ),
    ...ready.map(({ record, log }, index) =>
      settle(record, log, results[index] as CreateResult, context).catch((error: unknown) =>
        giveUpOnLastAttempt(record, error, context),
      ),
    ),
  ]);
}

async function prepare(record: PipelineRecord, context: AttemptContext): Promise<ProcessedLog> {
  const { deps, delivery, attempt, faults } = context;
  if (deps.config.simulatedWorkMsPerChar > 0) {
    await deps.sleep(record.text.length * deps.config.simulatedWorkMsPerChar);
  }
  const redaction = redact(record.text, await deps.redactionPolicies.policyFor(record.tenant_id));
  faults.beforeWrite(record.text);
  return {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    source: record.source,
    original_text: record.text,
    modified_data: redaction.text,
    redactions: redaction.counts,
    text_sha256: sha256(record.text),
    received_at: new Date(record.received_at),
    message_id: delivery.messageId,
    delivery_attempt: attempt,
  };
}

async function settle(
  record: PipelineRecord,
  log: ProcessedLog,
  result: CreateResult,
  context: AttemptContext,
): Promise<void> {
  const { deps, delivery, attempt } = context;
  const ids = {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    message_id: delivery.messageId,
    attempt,
  };
  if ("error" in result) {
    if ((result.error as { code?: unknown }).code !== INVALID_ARGUMENT) throw result.error;
    await recordFailure(
      salvage(record),
      "rejected_by_store",
      "Firestore refused the document",
      context,
    );
  } else if (result.created) {
    deps.logger.info("record stored", ids);
  } else if (result.existingSha256 === log.text_sha256) {
    deps.logger.info("record already stored; duplicate delivery ignored", ids);
  } else {
    // First write wins; the later version is kept beside it for the tenant to resolve.
    await recordFailure(
      salvage(record),
      "log_id_conflict",
      "A record with this log_id and different text is already stored",
      context,
      `conflict-${log.text_sha256.slice(0, 16)}`,
    );
  }
}

/**
 * A transient failure is retried until the last attempt Pub/Sub would make before
 * dead-lettering; then the record is kept in failed_logs, where its tenant can see it, and acked.
 */
async function giveUpOnLastAttempt(
  record: PipelineRecord,
  error: unknown,
  context: AttemptContext,
): Promise<void> {
  if (context.attempt < context.deps.config.maxDeliveryAttempts) throw error;
  // The error's name only: a message could quote the record.
  const cause = error instanceof Error ? error.name : "unknown error";
  await recordFailure(
    salvage(record),
    "retries_exhausted",
    `Failed ${context.attempt} attempts (MAX_DELIVERY_ATTEMPTS); the last with ${cause}`,
    context,
  );
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
  variant?: string,
): Promise<void> {
  await deps.store.recordFailedLog(
    {
      ...record,
      reason,
      detail,
      text_sha256: record.original_text === null ? null : sha256(record.original_text),
      message_id: delivery.messageId,
      delivery_attempt: attempt,
    },
    variant,
  );
  deps.logger.warn("record failed permanently; recorded in failed_logs", {
    tenant_id: record.tenant_id,
    log_id: record.log_id,
    message_id: delivery.messageId,
    attempt,
    reason,
  });
}

type Decoded =
  | { readonly valid: true; readonly message: PipelineMessage }
  | {
      readonly valid: false;
      readonly detail: string;
      /** Records whose tenant and log id are usable, so the failure lands in that tenant. */
      readonly attributable: readonly SalvagedRecord[];
      /** True when some part of the message cannot be attributed to any tenant. */
      readonly needsDeadLetter: boolean;
    };

function decode(dataBase64: string | undefined, validators: Validators): Decoded {
  let candidate: unknown;
  try {
    candidate = JSON.parse(Buffer.from(dataBase64 ?? "", "base64").toString("utf8"));
  } catch {
    return {
      valid: false,
      detail: "The message data is not JSON",
      attributable: [],
      needsDeadLetter: true,
    };
  }
  if (validators.pipelineMessage(candidate)) return { valid: true, message: candidate };

  const detail =
    "The message does not match the pipeline schema: " +
    schemaViolations(validators.pipelineMessage.errors)
      .map((violation) => `${violation.pointer || "/"} ${violation.detail}`)
      .join("; ");
  const items = (candidate as { records?: unknown } | null)?.records;
  const records: unknown[] = Array.isArray(items) ? items : [];
  const attributable = records.flatMap((item) => salvageUnknown(item));
  return {
    valid: false,
    detail,
    attributable,
    needsDeadLetter: attributable.length < Math.max(records.length, 1),
  };
}

function salvageUnknown(item: unknown): SalvagedRecord[] {
  const record = (typeof item === "object" && item !== null ? item : {}) as Record<string, unknown>;
  if (!isTenantId(record.tenant_id) || !isLogId(record.log_id)) return [];
  const receivedAt = typeof record.received_at === "string" ? new Date(record.received_at) : null;
  return [
    {
      tenant_id: record.tenant_id,
      log_id: record.log_id,
      source: isSource(record.source) ? record.source : null,
      original_text: typeof record.text === "string" ? record.text : null,
      received_at: receivedAt !== null && Number.isFinite(receivedAt.getTime()) ? receivedAt : null,
    },
  ];
}

function isSource(value: unknown): value is RecordSource {
  return value === "json_upload" || value === "text_upload";
}

async function recordInvalidMessage(
  decoded: Extract<Decoded, { valid: false }>,
  context: AttemptContext,
): Promise<void> {
  const { delivery, attempt, deps } = context;
  await Promise.all(
    decoded.attributable.map((record) =>
      recordFailure(record, "invalid_message", decoded.detail, context),
    ),
  );
  if (decoded.needsDeadLetter) {
    await deps.store.recordDeadLetter({
      message_id: delivery.messageId,
      reason: "invalid_message",
      detail: decoded.detail,
      data_base64: delivery.dataBase64 ?? "",
      delivery_attempt: attempt,
    });
    deps.logger.warn("message names no usable tenant; recorded in dead_letters", {
      message_id: delivery.messageId,
      attempt,
    });
  }
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

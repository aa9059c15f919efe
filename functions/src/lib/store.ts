/**
 * Firestore writes of the worker. Processed records are created, never overwritten:
 * `create` fails with ALREADY_EXISTS on a redelivery, which is how a record is
 * stored exactly once whatever Pub/Sub redelivers. Failure records are created the same
 * way, so none is ever overwritten.
 */
import {
  FieldValue,
  Timestamp,
  type BulkWriter,
  type DocumentData,
  type DocumentReference,
  type Firestore,
} from "@google-cloud/firestore";
import { deadlineAfter, withDeadline } from "./deadline";
import { deadLetterPath, deliveryAttemptsPath, failedLogPath, processedLogPath } from "./paths";
import type { OtlpFields } from "./otlp-schema";
import type { RedactionCounts } from "./redaction";
import type { RecordSource } from "./schema";

export interface ProcessedLog {
  readonly tenant_id: string;
  readonly log_id: string;
  readonly source: RecordSource;
  readonly original_text: string;
  readonly modified_data: string;
  readonly redactions: RedactionCounts;
  readonly text_sha256: string;
  readonly received_at: Date;
  readonly message_id: string;
  readonly delivery_attempt: number | null;
  /** When the TTL policy deletes it: the time of writing plus the tenant's retention. */
  readonly expire_at: Date;
  /** An OTLP record's severity, times, ids and attributes, redacted like the text. */
  readonly otlp?: OtlpFields;
}

export type FailureReason =
  | "invalid_message"
  | "invalid_record"
  | "expired"
  | "log_id_conflict"
  | "rejected_by_store"
  | "retries_exhausted";

export interface FailedLog {
  readonly tenant_id: string;
  readonly log_id: string;
  readonly reason: FailureReason;
  readonly detail: string;
  readonly source: RecordSource | null;
  /** Kept so nothing accepted is lost; null when the message carried no usable text. */
  readonly original_text: string | null;
  readonly text_sha256: string | null;
  readonly received_at: Date | null;
  readonly message_id: string;
  readonly delivery_attempt: number | null;
  /** As ProcessedLog's: a failure is kept as long as the tenant's stored records. */
  readonly expire_at: Date;
}

export interface DeadLetter {
  readonly message_id: string;
  readonly reason: FailureReason;
  readonly detail: string;
  /** The undecodable payload (the message, or the one record), base64, for an operator. */
  readonly data_base64: string;
  /** Which record of the message, when only that record names no usable tenant. */
  readonly record_index: number | null;
  readonly delivery_attempt: number | null;
  /** The default retention (no tenant is known). */
  readonly expire_at: Date;
}

/** What happened to one create: stored, already there (with its text's hash), or failed. */
export type CreateResult =
  | { readonly created: true }
  | { readonly created: false; readonly existingSha256: string | null }
  | { readonly error: unknown };

/** What a failure record became: written now or before, or not needed (the record is stored). */
export type FailureOutcome = "recorded" | "already_stored";

export interface RecordStore {
  /**
   * Create-if-absent for each log, in one round of writes; one result per log, in order.
   * Never rejects as a whole: a write that missed the deadline has an error result, and
   * the results of the others are kept.
   */
  createProcessedLogs(logs: readonly ProcessedLog[]): Promise<CreateResult[]>;
  /**
   * Create-if-absent: recording the same failure twice leaves one document, and a failure is
   * never overwritten. With `unlessStored`, in one transaction with a read of the record's
   * processed document: a record already stored with this text gets no failure record.
   */
  recordFailedLog(failed: FailedLog, options?: { unlessStored?: boolean }): Promise<FailureOutcome>;
  recordDeadLetter(letter: DeadLetter): Promise<void>;
  /** Counts one more failed attempt of a message; resolves with the failures counted so far. */
  countFailedAttempt(messageId: string): Promise<number>;
}

/** gRPC status of Firestore's "document already exists". */
const ALREADY_EXISTS = 6;
/** ABORTED, UNAVAILABLE, RESOURCE_EXHAUSTED. */
const RETRIED_BY_WRITER = new Set([10, 14, 8]);

const codeOf = (error: unknown): unknown => (error as { code?: unknown } | null)?.code;

/** Transient: the delivery fails and Pub/Sub redelivers it. */
export class StoreTimeoutError extends Error {
  override readonly name = "StoreTimeoutError";
}

type WriteOutcome = { created: true } | { exists: true } | { error: unknown };

export interface StoreOptions {
  /** FIRESTORE_THROTTLING: false only in a local stack (config.ts refuses it elsewhere). */
  readonly throttling: boolean;
}

export function createFirestoreStore(
  firestore: Firestore,
  timeoutMs: number,
  options: StoreOptions = { throttling: true },
): RecordStore {
  const timeout = () => new StoreTimeoutError(`Firestore did not answer within ${timeoutMs} ms`);
  // A write that lands after its deadline is harmless: the redelivery finds it and, create()
  // being create-if-absent, counts it as already stored.
  const bounded = <T>(work: Promise<T>): Promise<T> => withDeadline(work, timeoutMs, timeout);
  const createOnce = async (ref: DocumentReference, data: DocumentData): Promise<void> => {
    try {
      await ref.create(data);
    } catch (error) {
      if (codeOf(error) !== ALREADY_EXISTS) throw error;
    }
  };

  // Processed records are created with a BulkWriter: its creates travel in BatchWrite calls of
  // up to 20, not one commit each, and each keeps its own result. Measured on the emulator with
  // 100 records a message: about 5,400-6,100 documents/s, against 910-980 for single creates.
  //
  // One writer for the instance's life, shared by its deliveries, because of its throttling:
  // it starts at 500 writes/s and adds 50 % every 5 minutes of the writer's life (up to 10,000),
  // which is Firestore's 500/50/5 ramp-up rule for traffic to new collections (every new
  // tenant's processed_logs is one, and document ids here are not spread evenly). Without it a
  // burst into a cold key range is answered with contention and RESOURCE_EXHAUSTED errors. A
  // writer per delivery would restart at 500 each time, capping each delivery and never ramping
  // up. The ramp is per instance, so N worker instances start at N x 500 writes/s. It stays on
  // in production; only the local stack turns it off (FIRESTORE_THROTTLING=false), because the
  // emulator has no such limit and the benchmarks measure the code, not the ramp.
  let sharedWriter: BulkWriter | undefined;
  const bulkWriter = (): BulkWriter => {
    if (sharedWriter === undefined) {
      sharedWriter = firestore.bulkWriter({ throttling: options.throttling });
      // Transient errors get two quick retries here; beyond that, Pub/Sub redelivers.
      sharedWriter.onWriteError(
        (error) => error.failedAttempts < 3 && RETRIED_BY_WRITER.has(error.code as number),
      );
    }
    return sharedWriter;
  };

  return {
    async createProcessedLogs(logs) {
      const deadline = deadlineAfter(timeoutMs, timeout);
      try {
        const writer = bulkWriter();
        const refs = logs.map((log) => firestore.doc(processedLogPath(log.tenant_id, log.log_id)));
        const writes = logs.map((log, index) =>
          writer
            .create(refs[index] as DocumentReference, {
              ...log,
              received_at: Timestamp.fromDate(log.received_at),
              expire_at: Timestamp.fromDate(log.expire_at),
              processed_at: FieldValue.serverTimestamp(),
            })
            .then(
              (): WriteOutcome => ({ created: true }),
              (error: unknown): WriteOutcome =>
                codeOf(error) === ALREADY_EXISTS ? { exists: true } : { error },
            ),
        );
        // Sends this delivery's writes now (a batch not yet full would otherwise wait).
        writer.flush().catch(() => undefined);
        // Each write keeps its own result; only those still pending at the deadline fail.
        const outcomes = await Promise.all(
          writes.map((write) =>
            Promise.race([write, deadline.expired]).catch((error: unknown) => ({ error })),
          ),
        );

        const existingRefs = refs.filter((_, index) => "exists" in (outcomes[index] ?? {}));
        let existingSha = new Map<string, string | null>();
        let readError: unknown;
        if (existingRefs.length > 0) {
          try {
            const snapshots = await Promise.race([
              firestore.getAll(...existingRefs),
              deadline.expired,
            ]);
            existingSha = new Map(
              snapshots.map((snapshot) => {
                const sha: unknown = snapshot.get("text_sha256");
                return [snapshot.ref.path, typeof sha === "string" ? sha : null];
              }),
            );
          } catch (error) {
            readError = error;
          }
        }
        return outcomes.map((outcome, index): CreateResult => {
          if ("created" in outcome) return { created: true };
          if ("error" in outcome) return { error: outcome.error };
          if (readError !== undefined) return { error: readError };
          const path = (refs[index] as DocumentReference).path;
          return { created: false, existingSha256: existingSha.get(path) ?? null };
        });
      } finally {
        deadline.clear();
      }
    },

    recordFailedLog(failed, options = {}) {
      const failedRef = firestore.doc(
        failedLogPath(failed.tenant_id, failed.log_id, failed.reason, failed.text_sha256),
      );
      const data = {
        ...failed,
        received_at: failed.received_at ? Timestamp.fromDate(failed.received_at) : null,
        expire_at: Timestamp.fromDate(failed.expire_at),
        failed_at: FieldValue.serverTimestamp(),
      };
      if (options.unlessStored !== true) {
        return bounded(createOnce(failedRef, data).then(() => "recorded" as const));
      }
      const processedRef = firestore.doc(processedLogPath(failed.tenant_id, failed.log_id));
      return bounded(
        firestore.runTransaction(
          async (transaction): Promise<FailureOutcome> => {
            const [processed, existing] = await transaction.getAll(processedRef, failedRef);
            if (processed?.exists === true && processed.get("text_sha256") === failed.text_sha256) {
              return "already_stored";
            }
            if (existing?.exists !== true) transaction.create(failedRef, data);
            return "recorded";
          },
          { maxAttempts: 3 },
        ),
      );
    },

    recordDeadLetter(letter) {
      const ref = firestore.doc(
        deadLetterPath(letter.message_id, letter.record_index ?? undefined),
      );
      return bounded(
        createOnce(ref, {
          ...letter,
          expire_at: Timestamp.fromDate(letter.expire_at),
          failed_at: FieldValue.serverTimestamp(),
        }),
      );
    },

    countFailedAttempt(messageId) {
      const ref = firestore.doc(deliveryAttemptsPath(messageId));
      return bounded(
        firestore.runTransaction(
          async (transaction) => {
            const snapshot = await transaction.get(ref);
            const counted: unknown = snapshot.get("failed_attempts");
            const failures = (typeof counted === "number" ? counted : 0) + 1;
            transaction.set(ref, {
              message_id: messageId,
              failed_attempts: failures,
              updated_at: FieldValue.serverTimestamp(),
            });
            return failures;
          },
          { maxAttempts: 3 },
        ),
      );
    },
  };
}

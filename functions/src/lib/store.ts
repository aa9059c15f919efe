/**
 * Firestore writes of the worker. Processed records are created, never overwritten:
 * `create` fails with ALREADY_EXISTS on a redelivery, which is how a record is
 * stored exactly once whatever Pub/Sub redelivers.
 */
import {
  FieldValue,
  Timestamp,
  type DocumentReference,
  type Firestore,
} from "@google-cloud/firestore";
import { withDeadline } from "./deadline";
import { deadLetterPath, failedLogPath, processedLogPath } from "./paths";
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
}

export type FailureReason =
  "invalid_message" | "expired" | "log_id_conflict" | "rejected_by_store" | "retries_exhausted";

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
}

export interface DeadLetter {
  readonly message_id: string;
  readonly reason: FailureReason;
  readonly detail: string;
  /** The undecodable payload, base64, so an operator can still recover it. */
  readonly data_base64: string;
  readonly delivery_attempt: number | null;
}

/** What happened to one create: stored, already there (with its text's hash), or failed. */
export type CreateResult =
  | { readonly created: true }
  | { readonly created: false; readonly existingSha256: string | null }
  | { readonly error: unknown };

export interface RecordStore {
  /** Create-if-absent for each log, in one round of writes; one result per log, in order. */
  createProcessedLogs(logs: readonly ProcessedLog[]): Promise<CreateResult[]>;
  /** Idempotent: the same failure recorded twice leaves one document. */
  recordFailedLog(failed: FailedLog, variant?: string): Promise<void>;
  recordDeadLetter(letter: DeadLetter): Promise<void>;
}

/** gRPC status of Firestore's "document already exists". */
const ALREADY_EXISTS = 6;
/** ABORTED, UNAVAILABLE, RESOURCE_EXHAUSTED. */
const RETRIED_BY_WRITER = new Set([10, 14, 8]);

function isAlreadyExists(result: PromiseSettledResult<unknown> | undefined): boolean {
  return (
    result?.status === "rejected" && (result.reason as { code?: unknown }).code === ALREADY_EXISTS
  );
}

/** Transient: the delivery fails and Pub/Sub redelivers it. */
export class StoreTimeoutError extends Error {
  override readonly name = "StoreTimeoutError";
}

export function createFirestoreStore(firestore: Firestore, timeoutMs: number): RecordStore {
  // A write that lands after its deadline is harmless: the redelivery finds it and, create()
  // being create-if-absent, counts it as already stored.
  const bounded = <T>(work: Promise<T>): Promise<T> =>
    withDeadline(
      work,
      timeoutMs,
      () => new StoreTimeoutError(`Firestore did not answer within ${timeoutMs} ms`),
    );
  const store: RecordStore = {
    async createProcessedLogs(logs) {
      // One BulkWriter per delivery: its creates travel in BatchWrite calls of up to 20, not
      // one commit each, and each keeps its own result. Measured on the emulator with 100
      // records a message: about 5,400-6,100 documents/s, against 910-980 for single creates.
      const writer = firestore.bulkWriter({ throttling: false });
      // Transient errors get two quick retries here; beyond that, Pub/Sub redelivers.
      writer.onWriteError(
        (error) => error.failedAttempts < 3 && RETRIED_BY_WRITER.has(error.code as number),
      );
      const refs = logs.map((log) => firestore.doc(processedLogPath(log.tenant_id, log.log_id)));
      const writes = Promise.allSettled(
        logs.map((log, index) =>
          writer.create(refs[index] as DocumentReference, {
            ...log,
            received_at: Timestamp.fromDate(log.received_at),
            processed_at: FieldValue.serverTimestamp(),
          }),
        ),
      );
      await writer.close();
      const results = await writes;

      const existingRefs = refs.filter((_, index) => isAlreadyExists(results[index]));
      const existing =
        existingRefs.length > 0 ? await firestore.getAll(...existingRefs) : ([] as const);
      const existingSha = new Map(
        existing.map((snapshot) => {
          const sha: unknown = snapshot.get("text_sha256");
          return [snapshot.ref.path, typeof sha === "string" ? sha : null] as const;
        }),
      );
      return results.map((result, index): CreateResult => {
        if (result.status === "fulfilled") return { created: true };
        if (isAlreadyExists(result)) {
          return {
            created: false,
            existingSha256: existingSha.get((refs[index] as DocumentReference).path) ?? null,
          };
        }
        return { error: result.reason };
      });
    },

    async recordFailedLog(failed, variant) {
      await firestore.doc(failedLogPath(failed.tenant_id, failed.log_id, variant)).set({
        ...failed,
        received_at: failed.received_at ? Timestamp.fromDate(failed.received_at) : null,
        failed_at: FieldValue.serverTimestamp(),
      });
    },

    async recordDeadLetter(letter) {
      await firestore.doc(deadLetterPath(letter.message_id)).set({
        ...letter,
        failed_at: FieldValue.serverTimestamp(),
      });
    },
  };
  return {
    createProcessedLogs: (logs) => bounded(store.createProcessedLogs(logs)),
    recordFailedLog: (failed, variant) => bounded(store.recordFailedLog(failed, variant)),
    recordDeadLetter: (letter) => bounded(store.recordDeadLetter(letter)),
  };
}

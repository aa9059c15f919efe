/**
 * Firestore writes of the worker. Processed records are created, never overwritten:
 * `create` fails with ALREADY_EXISTS on a redelivery, which is how a record is
 * stored exactly once whatever Pub/Sub redelivers.
 */
import { FieldValue, Timestamp, type Firestore } from "@google-cloud/firestore";
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

export type CreateOutcome =
  { readonly created: true } | { readonly created: false; readonly existingSha256: string | null };

export interface RecordStore {
  createProcessedLog(log: ProcessedLog): Promise<CreateOutcome>;
  /** Idempotent: the same failure recorded twice leaves one document. */
  recordFailedLog(failed: FailedLog, variant?: string): Promise<void>;
  recordDeadLetter(letter: DeadLetter): Promise<void>;
}

/** gRPC status of Firestore's "document already exists". */
const ALREADY_EXISTS = 6;

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
    async createProcessedLog(log) {
      const ref = firestore.doc(processedLogPath(log.tenant_id, log.log_id));
      try {
        await ref.create({
          ...log,
          received_at: Timestamp.fromDate(log.received_at),
          processed_at: FieldValue.serverTimestamp(),
        });
        return { created: true };
      } catch (error) {
        if ((error as { code?: unknown }).code !== ALREADY_EXISTS) throw error;
        const existing = await ref.get();
        const sha = existing.get("text_sha256");
        return { created: false, existingSha256: typeof sha === "string" ? sha : null };
      }
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
    createProcessedLog: (log) => bounded(store.createProcessedLog(log)),
    recordFailedLog: (failed, variant) => bounded(store.recordFailedLog(failed, variant)),
    recordDeadLetter: (letter) => bounded(store.recordDeadLetter(letter)),
  };
}

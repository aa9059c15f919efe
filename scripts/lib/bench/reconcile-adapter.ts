/**
 * The reconciliation a load phase ends with: every accepted record must be stored exactly once
 * with its text, and nothing else may appear in the phase's tenants. The benchmark and the
 * load scenarios call it through this one signature.
 */
import type { Firestore } from "@google-cloud/firestore";
import type { ExpectedRecord } from "../load-driver";

export interface ReconcileInput {
  readonly accepted: readonly ExpectedRecord[];
  /** Records that may or may not have been stored (5xx, no answer): neither outcome is wrong. */
  readonly inDoubt: readonly ExpectedRecord[];
  /** The phase's tenants, whose collections must hold nothing unexpected. */
  readonly tenants: readonly string[];
}

export interface ReconcileSummary {
  readonly accepted: number;
  /** Accepted records stored with their own text. */
  readonly stored: number;
  readonly missing: number;
  /** Records stored more than once (a second document for the same accepted record). */
  readonly duplicated: number;
  /** Documents no accepted or in-doubt record accounts for, or stored with a different text. */
  readonly unexpected: number;
  readonly inDoubt: number;
  readonly inDoubtStored: number;
  /** True when nothing accepted is missing, duplicated or unexpected. */
  readonly ok: boolean;
  /** A few examples of what went wrong, for the summary. */
  readonly examples: readonly string[];
}

export type Reconciler = (input: ReconcileInput) => Promise<ReconcileSummary>;

const READ_CHUNK = 300;

/**
 * Reads every accepted record's document (in chunks, only `text_sha256`), then lists each
 * tenant's processed_logs and failed_logs ids to find duplicates and strays. A document id is
 * the log id, so "duplicated" here means a second document for an accepted record: a failed_logs
 * entry for a record that was also stored.
 */
export function firestoreReconciler(firestore: Firestore): Reconciler {
  return async ({ accepted, inDoubt, tenants }) => {
    const examples: string[] = [];
    const note = (text: string) => {
      if (examples.length < 5) examples.push(text);
    };
    const key = (record: { tenant_id: string; log_id: string }) =>
      `${record.tenant_id}/${record.log_id}`;
    const expected = new Map(accepted.map((record) => [key(record), record]));
    const doubtful = new Map(inDoubt.map((record) => [key(record), record]));

    let stored = 0;
    let missing = 0;
    let unexpected = 0;
    const records = [...expected.values()];
    for (let start = 0; start < records.length; start += READ_CHUNK) {
      const chunk = records.slice(start, start + READ_CHUNK);
      const refs = chunk.map((record) =>
        firestore.doc(`tenants/${record.tenant_id}/processed_logs/${record.log_id}`),
      );
      const snapshots = await firestore.getAll(...refs, { fieldMask: ["text_sha256"] });
      snapshots.forEach((snapshot, index) => {
        const record = chunk[index] as ExpectedRecord;
        if (!snapshot.exists) {
          missing += 1;
          note(`missing ${key(record)}`);
        } else if (snapshot.get("text_sha256") !== record.text_sha256) {
          missing += 1;
          unexpected += 1;
          note(`${key(record)} stored with another text`);
        } else {
          stored += 1;
        }
      });
    }

    let duplicated = 0;
    let inDoubtStored = 0;
    for (const tenant of tenants) {
      const processed = await firestore
        .collection(`tenants/${tenant}/processed_logs`)
        .select()
        .get();
      for (const doc of processed.docs) {
        const id = `${tenant}/${doc.id}`;
        if (expected.has(id)) continue;
        if (doubtful.has(id)) inDoubtStored += 1;
        else {
          unexpected += 1;
          note(`unexpected ${id}`);
        }
      }
      const failed = await firestore
        .collection(`tenants/${tenant}/failed_logs`)
        .select("log_id")
        .get();
      for (const doc of failed.docs) {
        const id = `${tenant}/${String(doc.get("log_id"))}`;
        if (expected.has(id)) {
          duplicated += 1;
          note(`second document for ${id}: failed_logs/${doc.id}`);
        } else if (!doubtful.has(id)) {
          unexpected += 1;
          note(`unexpected failed_logs/${doc.id} in ${tenant}`);
        }
      }
    }

    return {
      accepted: expected.size,
      stored,
      missing,
      duplicated,
      unexpected,
      inDoubt: doubtful.size,
      inDoubtStored,
      ok: missing === 0 && duplicated === 0 && unexpected === 0,
      examples,
    };
  };
}

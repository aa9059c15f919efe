/**
 * Erasure, for `npm run tenant -- purge|erase`: everything of one tenant, or one record of it.
 *
 * A tenant's data: tenants/{t} with every subcollection (processed_logs, failed_logs, ...),
 * tenant_settings/{t}, the api_keys documents naming it, and the dead_letters documents whose
 * payload names it (those name no usable tenant in a field, so each payload is read).
 * delivery_attempts documents hold only message ids and counts: nothing of a tenant.
 */
import type { DocumentReference, Firestore } from "@google-cloud/firestore";
import { API_KEYS } from "../../../functions/src/lib/api-keys";
import {
  DEAD_LETTERS,
  FAILED_LOGS,
  TENANTS,
  TENANT_SETTINGS,
  processedLogPath,
  tenantSettingsPath,
} from "../../../functions/src/lib/paths";
import { countOf } from "./operator-cli";

/** Whether a dead letter's payload (a record, or a message of records) names the tenant. */
export function namesTenant(dataBase64: unknown, tenantId: string): boolean {
  try {
    const payload = JSON.parse(Buffer.from(String(dataBase64), "base64").toString("utf8"));
    const records: unknown[] = Array.isArray(payload?.records) ? payload.records : [payload];
    return records.some((record) => (record as { tenant_id?: unknown })?.tenant_id === tenantId);
  } catch {
    return false;
  }
}

/** Deletes (unless dryRun) everything of the tenant; the documents found, per collection. */
export async function purgeTenant(firestore: Firestore, tenantId: string, dryRun: boolean) {
  const tenant = firestore.doc(`${TENANTS}/${tenantId}`);
  const settings = firestore.doc(tenantSettingsPath(tenantId));
  const counts: Record<string, number> = {};
  const count = async (ref: DocumentReference, name: string) => {
    const exists = (await ref.get()).exists;
    if (exists || name !== TENANTS) counts[name] = exists ? 1 : 0;
    for (const sub of await ref.listCollections()) counts[sub.id] = await countOf(sub);
  };
  // tenants/{t} itself usually does not exist: only its subcollections (processed_logs, ...).
  await count(tenant, TENANTS);
  await count(settings, TENANT_SETTINGS);
  const keys = await firestore.collection(API_KEYS).where("tenant_id", "==", tenantId).get();
  const letters = (await firestore.collection(DEAD_LETTERS).select("data_base64").get()).docs
    .filter((doc) => namesTenant(doc.get("data_base64"), tenantId))
    .map((doc) => doc.ref);
  counts[API_KEYS] = keys.size;
  counts[DEAD_LETTERS] = letters.length;
  if (!dryRun) {
    const writer = firestore.bulkWriter();
    for (const ref of [tenant, settings, ...keys.docs.map((doc) => doc.ref), ...letters]) {
      await firestore.recursiveDelete(ref, writer);
    }
    await writer.close();
  }
  return counts;
}

/** Deletes (unless dryRun) one record's processed document and failure entries; their paths. */
export async function eraseRecord(
  firestore: Firestore,
  tenantId: string,
  logId: string,
  dryRun: boolean,
): Promise<string[]> {
  const processed = firestore.doc(processedLogPath(tenantId, logId));
  const failures = await firestore
    .collection(`${TENANTS}/${tenantId}/${FAILED_LOGS}`)
    .where("log_id", "==", logId)
    .get();
  const found = [
    ...((await processed.get()).exists ? [processed] : []),
    ...failures.docs.map((doc) => doc.ref),
  ];
  if (!dryRun && found.length > 0) {
    const batch = firestore.batch();
    found.forEach((ref) => batch.delete(ref));
    await batch.commit();
  }
  return found.map((ref) => ref.path);
}

/**
 * The CLI's side of a tenant's redaction policy: the `redaction` field of
 * `tenant_settings/{tenant}`, read and replaced whole. The instances read it with the tenant's
 * other settings, through one cache (tenant-settings.ts): a record is never redacted under a
 * policy the worker could not read, and a damaged policy redacts every kind.
 */
import type { Firestore } from "@google-cloud/firestore";
import { tenantSettingsPath } from "./paths";
import {
  storedPolicyErrors,
  validateStoredRedactionPolicy,
  type StoredRedactionPolicy,
} from "./redaction-policy";
import { createFirestoreTenantSettings } from "./tenant-settings";

export function createFirestoreRedactionPolicies(firestore: Firestore, timeoutMs: number) {
  const settings = createFirestoreTenantSettings(firestore, timeoutMs);
  return {
    /** The raw `redaction` field of the tenant's settings; undefined when there is none. */
    read: async (tenantId: string): Promise<unknown> =>
      (await settings.read(tenantId))?.redaction as unknown,

    /** Replaces the tenant's stored policy; `{}` returns the tenant to the default. */
    async write(tenantId: string, stored: StoredRedactionPolicy): Promise<void> {
      if (!validateStoredRedactionPolicy(stored)) {
        throw new Error(`invalid redaction policy: ${storedPolicyErrors().join("; ")}`);
      }
      await firestore
        .doc(tenantSettingsPath(tenantId))
        // mergeFields replaces the policy whole (a plain merge would keep a dropped key) and
        // leaves any other setting of the tenant alone. Plain Date, as in api-keys.ts: the CLI
        // passes a Firestore from another copy of the library.
        .set(
          { redaction: stored, updated_at: new Date() },
          { mergeFields: ["redaction", "updated_at"] },
        );
    },
  };
}

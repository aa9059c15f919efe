/**
 * Where the worker gets each tenant's redaction policy: `tenant_settings/{tenant}` in Firestore,
 * read through a bounded per-instance cache (a TTL, which bounds how long a change takes to
 * apply, and a maximum number of tenants). A read that fails or times out rejects, so the
 * delivery fails and Pub/Sub redelivers it: a record is never redacted under a policy the
 * worker could not read. A stored policy that fails its schema is a damaged document, not a
 * passing fault: the worker applies every kind (it fails closed) and says so in its log.
 */
import type { Firestore } from "@google-cloud/firestore";
import { withDeadline } from "./deadline";
import { tenantSettingsPath } from "./paths";
import { createPromiseCache } from "./promise-cache";
import {
  STRICTEST_REDACTION_POLICY,
  policyFromStored,
  storedPolicyErrors,
  validateStoredRedactionPolicy,
  type RedactionPolicy,
  type StoredRedactionPolicy,
} from "./redaction-policy";

export interface RedactionPolicies {
  policyFor(tenantId: string): Promise<RedactionPolicy>;
}

/** The raw `redaction` field of a tenant's settings; undefined when there is none. */
export type StoredPolicyRead = (tenantId: string) => Promise<unknown>;

export class PolicyReadTimeoutError extends Error {
  override readonly name = "PolicyReadTimeoutError";
}

export interface PolicyCacheOptions {
  readonly ttlSeconds: number;
  readonly maxEntries: number;
  /** Called once per read of a damaged policy, with the schema violations (no record text). */
  readonly onInvalid: (tenantId: string, violations: readonly string[]) => void;
  readonly now?: () => number;
}

export function createCachedRedactionPolicies(
  read: StoredPolicyRead,
  options: PolicyCacheOptions,
): RedactionPolicies {
  const cache = createPromiseCache<RedactionPolicy>({
    ttlMs: options.ttlSeconds * 1000,
    maxEntries: options.maxEntries,
    now: options.now,
  });
  return {
    policyFor: (tenantId) =>
      cache.get(tenantId, () =>
        read(tenantId).then((stored) => toPolicy(tenantId, stored, options)),
      ),
  };
}

function toPolicy(tenantId: string, stored: unknown, options: PolicyCacheOptions): RedactionPolicy {
  if (stored === undefined || stored === null) return policyFromStored(undefined);
  if (validateStoredRedactionPolicy(stored)) return policyFromStored(stored);
  options.onInvalid(tenantId, storedPolicyErrors());
  return STRICTEST_REDACTION_POLICY;
}

/** The Firestore side: the worker's read and the CLI's read and write. */
export function createFirestoreRedactionPolicies(firestore: Firestore, timeoutMs: number) {
  const read: StoredPolicyRead = async (tenantId) => {
    const snapshot = await withDeadline(
      firestore.doc(tenantSettingsPath(tenantId)).get(),
      timeoutMs,
      () => new PolicyReadTimeoutError(`reading the redaction policy took over ${timeoutMs} ms`),
    );
    return snapshot.exists ? snapshot.get("redaction") : undefined;
  };

  return {
    read,

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

/**
 * A tenant's settings, `tenant_settings/{tenant}` (written only by the tenant CLI): its redaction
 * policy (redaction-policy.ts), how long its records are kept and its ingest rate limit. Each
 * instance reads them through one bounded promise cache: a TTL (REDACTION_POLICY_CACHE_SECONDS)
 * bounds how long a change takes to apply, and a maximum number of tenants bounds the memory.
 * A read that fails or times out rejects and is not cached; the caller decides what that means
 * (the worker fails the delivery, ingest applies the default limit). A stored value that fails
 * its schema is a damaged document, not a passing fault: it is reported through `onInvalid`, and
 * the strictest redaction policy or the configured default applies in its place.
 */
import type { JSONSchemaType } from "ajv";
import type { DocumentData, Firestore } from "@google-cloud/firestore";
import { MAX_RATE_LIMIT_PER_SECOND, MAX_RETENTION_DAYS, MIN_RETENTION_DAYS } from "./config";
import { withDeadline } from "./deadline";
import { tenantSettingsPath } from "./paths";
import { createPromiseCache } from "./promise-cache";
import { lazyValidator } from "./schema";
import {
  STRICTEST_REDACTION_POLICY,
  policyFromStored,
  storedPolicyErrors,
  validateStoredRedactionPolicy,
  type RedactionPolicy,
} from "./redaction-policy";

export interface TenantSettings {
  readonly redaction: RedactionPolicy;
  /** Days the tenant's records are kept; undefined: RETENTION_DAYS applies. */
  readonly retentionDays: number | undefined;
  /** Records a second the tenant may send to one ingest instance; undefined: the default. */
  readonly rateLimitPerSecond: number | undefined;
}

export interface TenantSettingsSource {
  settingsFor(tenantId: string): Promise<TenantSettings>;
}

/** The stored limits of a tenant, beside its `redaction` field; absent means the default. */
export interface StoredTenantLimits {
  retention_days?: number;
  rate_limit_per_second?: number;
}

export type TenantSetting = "redaction" | keyof StoredTenantLimits;

export const storedTenantLimitsSchema: JSONSchemaType<StoredTenantLimits> = {
  $id: "StoredTenantLimits",
  type: "object",
  additionalProperties: false,
  properties: {
    retention_days: {
      type: "integer",
      nullable: true,
      minimum: MIN_RETENTION_DAYS,
      maximum: MAX_RETENTION_DAYS,
    },
    rate_limit_per_second: {
      type: "integer",
      nullable: true,
      minimum: 1,
      maximum: MAX_RATE_LIMIT_PER_SECOND,
    },
  },
};

const storedLimits = lazyValidator(storedTenantLimitsSchema);
export const validateStoredTenantLimits = storedLimits.validate;
export const storedLimitsErrors = storedLimits.errors;

/** The whole settings document of a tenant; undefined when there is none. */
export type StoredSettingsRead = (tenantId: string) => Promise<DocumentData | undefined>;

export type InvalidSettingReport = (
  tenantId: string,
  setting: TenantSetting,
  violations: readonly string[],
) => void;

export interface SettingsCacheOptions {
  readonly ttlSeconds: number;
  readonly maxEntries: number;
  /** Called once per read of a damaged setting, with the schema violations (no record text). */
  readonly onInvalid: InvalidSettingReport;
  readonly now?: () => number;
}

export function createCachedTenantSettings(
  read: StoredSettingsRead,
  options: SettingsCacheOptions,
): TenantSettingsSource {
  const cache = createPromiseCache<TenantSettings>({
    ttlMs: options.ttlSeconds * 1000,
    maxEntries: options.maxEntries,
    now: options.now,
  });
  return {
    settingsFor: (tenantId) =>
      cache.get(tenantId, () =>
        read(tenantId).then((stored) => settingsFromStored(tenantId, stored, options.onInvalid)),
      ),
  };
}

export function settingsFromStored(
  tenantId: string,
  stored: DocumentData | undefined,
  onInvalid: InvalidSettingReport,
): TenantSettings {
  return {
    redaction: redactionFromStored(tenantId, stored?.redaction, onInvalid),
    retentionDays: limitFromStored(tenantId, "retention_days", stored, onInvalid),
    rateLimitPerSecond: limitFromStored(tenantId, "rate_limit_per_second", stored, onInvalid),
  };
}

function redactionFromStored(
  tenantId: string,
  stored: unknown,
  onInvalid: InvalidSettingReport,
): RedactionPolicy {
  if (stored === undefined || stored === null) return policyFromStored(undefined);
  if (validateStoredRedactionPolicy(stored)) return policyFromStored(stored);
  // Fails closed: a policy that cannot be read redacts every kind.
  onInvalid(tenantId, "redaction", storedPolicyErrors());
  return STRICTEST_REDACTION_POLICY;
}

function limitFromStored(
  tenantId: string,
  setting: keyof StoredTenantLimits,
  stored: DocumentData | undefined,
  onInvalid: InvalidSettingReport,
): number | undefined {
  const value: unknown = stored?.[setting];
  if (value === undefined || value === null) return undefined;
  if (validateStoredTenantLimits({ [setting]: value })) return value as number;
  onInvalid(tenantId, setting, storedLimitsErrors());
  return undefined;
}

export class SettingsReadTimeoutError extends Error {
  override readonly name = "SettingsReadTimeoutError";
}

/** The Firestore side: the instances' read, and the CLI's read and write of the limits. */
export function createFirestoreTenantSettings(firestore: Firestore, timeoutMs: number) {
  const read: StoredSettingsRead = async (tenantId) => {
    const snapshot = await withDeadline(
      firestore.doc(tenantSettingsPath(tenantId)).get(),
      timeoutMs,
      () => new SettingsReadTimeoutError(`reading tenant settings took over ${timeoutMs} ms`),
    );
    return snapshot.exists ? snapshot.data() : undefined;
  };

  return {
    read,

    /** Sets the given limits; null removes one (the default applies again). Others stay. */
    async writeLimits(
      tenantId: string,
      change: { readonly [K in keyof StoredTenantLimits]?: number | null },
    ): Promise<void> {
      const set = Object.fromEntries(
        Object.entries(change).filter(([, value]) => value !== undefined && value !== null),
      );
      if (!validateStoredTenantLimits(set)) {
        throw new Error(`invalid tenant settings: ${storedLimitsErrors().join("; ")}`);
      }
      const fields = Object.keys(change);
      // Plain Date, as in api-keys.ts: the CLI passes a Firestore from another copy of the
      // library. A field given as null is written as null, which reads as "not set".
      await firestore
        .doc(tenantSettingsPath(tenantId))
        .set({ ...change, updated_at: new Date() }, { mergeFields: [...fields, "updated_at"] });
    },
  };
}

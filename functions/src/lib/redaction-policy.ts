/**
 * What the worker redacts for a tenant. The default is the brief's behaviour plus credentials;
 * a tenant may turn kinds on or off and name the regions whose national phone formats count
 * (numbers written with "+" or "00" are recognised whatever the regions).
 *
 * The stored form lives in `tenant_settings/{tenant}` (paths.ts) and is validated by one ajv
 * schema, which is also its TypeScript type; `policyFromStored` turns it into the policy.
 */
import type { JSONSchemaType } from "ajv";
import { getCountries, isSupportedCountry, type CountryCode } from "libphonenumber-js/max";
import { lazyValidator } from "./schema";

export const REDACTION_KINDS = ["email", "card", "ssn", "phone", "credential", "ip"] as const;
export type RedactionKind = (typeof REDACTION_KINDS)[number];

export interface RedactionPolicy {
  readonly enabled: Readonly<Record<RedactionKind, boolean>>;
  /** Regions tried, in order, for numbers written in national format (no "+" or "00"). */
  readonly phoneRegions: readonly CountryCode[];
}

/**
 * National formats of North America and the largest European and South American markets.
 * Each region costs one metadata lookup per phone-shaped candidate, so the list stays short.
 */
export const DEFAULT_PHONE_REGIONS: readonly CountryCode[] = Object.freeze([
  "US",
  "GB",
  "DE",
  "FR",
  "ES",
  "IT",
  "NL",
  "BR",
  "IN",
  "AU",
]);

export const DEFAULT_REDACTION_POLICY: RedactionPolicy = Object.freeze({
  enabled: Object.freeze({
    email: true,
    card: true,
    ssn: true,
    phone: true,
    credential: true,
    // Personal data under GDPR, but what operators debug with: a tenant opts in.
    ip: false,
  }),
  phoneRegions: DEFAULT_PHONE_REGIONS,
});

/** Every kind on: what the worker applies when a tenant's stored policy is damaged. */
export const STRICTEST_REDACTION_POLICY: RedactionPolicy = Object.freeze({
  enabled: Object.freeze(
    Object.fromEntries(REDACTION_KINDS.map((kind) => [kind, true])) as Record<
      RedactionKind,
      boolean
    >,
  ),
  phoneRegions: DEFAULT_PHONE_REGIONS,
});

export const MAX_PHONE_REGIONS = 20;

/** The `redaction` field of `tenant_settings/{tenant}`: only what differs from the default. */
export interface StoredRedactionPolicy {
  kinds?: Partial<Record<RedactionKind, boolean>>;
  phone_regions?: string[];
}

const kindProperties = Object.fromEntries(
  REDACTION_KINDS.map((kind) => [kind, { type: "boolean", nullable: true }]),
) as unknown as JSONSchemaType<StoredRedactionPolicy>["properties"];

export const storedRedactionPolicySchema: JSONSchemaType<StoredRedactionPolicy> = {
  $id: "StoredRedactionPolicy",
  type: "object",
  additionalProperties: false,
  properties: {
    kinds: {
      type: "object",
      additionalProperties: false,
      required: [],
      nullable: true,
      properties: kindProperties,
    },
    phone_regions: {
      type: "array",
      nullable: true,
      maxItems: MAX_PHONE_REGIONS,
      uniqueItems: true,
      items: { type: "string", enum: getCountries() },
    },
  },
} as JSONSchemaType<StoredRedactionPolicy>;

const storedPolicy = lazyValidator(storedRedactionPolicySchema);
export const validateStoredRedactionPolicy = storedPolicy.validate;
export const storedPolicyErrors = storedPolicy.errors;

export function policyFromStored(stored: StoredRedactionPolicy | undefined): RedactionPolicy {
  if (stored === undefined) return DEFAULT_REDACTION_POLICY;
  const enabled = { ...DEFAULT_REDACTION_POLICY.enabled };
  for (const kind of REDACTION_KINDS) {
    const value = stored.kinds?.[kind];
    if (typeof value === "boolean") enabled[kind] = value;
  }
  const regions = (stored.phone_regions ?? []).filter((region) => isSupportedCountry(region));
  return Object.freeze({
    enabled: Object.freeze(enabled),
    phoneRegions: Object.freeze(regions.length > 0 ? regions : [...DEFAULT_PHONE_REGIONS]),
  });
}

export interface PolicyChange {
  readonly enable?: readonly RedactionKind[];
  readonly disable?: readonly RedactionKind[];
  /** Replaces the region list; an empty list returns to the default regions. */
  readonly phoneRegions?: readonly string[];
}

/** Applies a CLI change to a stored policy, keeping only what differs from the default. */
export function changeStoredPolicy(
  stored: StoredRedactionPolicy | undefined,
  change: PolicyChange,
): StoredRedactionPolicy {
  const kinds: Partial<Record<RedactionKind, boolean>> = { ...(stored?.kinds ?? {}) };
  for (const kind of change.enable ?? []) kinds[kind] = true;
  for (const kind of change.disable ?? []) kinds[kind] = false;
  for (const kind of REDACTION_KINDS) {
    if (kinds[kind] === DEFAULT_REDACTION_POLICY.enabled[kind]) delete kinds[kind];
  }
  const regions = change.phoneRegions ?? stored?.phone_regions ?? [];
  const next: StoredRedactionPolicy = {};
  if (Object.keys(kinds).length > 0) next.kinds = kinds;
  if (regions.length > 0) next.phone_regions = [...regions];
  return next;
}

export function isRedactionKind(value: string): value is RedactionKind {
  return (REDACTION_KINDS as readonly string[]).includes(value);
}

/** The effective policy as the CLI prints it. */
export function describePolicy(policy: RedactionPolicy) {
  return {
    enabled: REDACTION_KINDS.filter((kind) => policy.enabled[kind]),
    disabled: REDACTION_KINDS.filter((kind) => !policy.enabled[kind]),
    phone_regions: [...policy.phoneRegions],
  };
}

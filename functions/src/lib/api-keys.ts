/**
 * Per-tenant API keys. A key is 256 random bits behind a recognisable prefix (so
 * secret scanners can find leaked ones); only its SHA-256 is stored, as the id of
 * `api_keys/{sha256}`. A lookup hashes the presented key and reads that document,
 * so no secret is ever compared in our code; results are cached per instance for
 * `cacheSeconds`, which bounds how long a revoked key keeps working.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Firestore } from "@google-cloud/firestore";
import type { Authenticator, Caller } from "./auth";
import { withDeadline } from "./deadline";
import { ServiceUnavailableError, UnauthorizedError } from "./errors";
import { headerValue, type IncomingHeaders } from "./http";
import { isTenantId } from "./ids";
import { createPromiseCache } from "./promise-cache";

export const API_KEY_PREFIX = "rdpk_";
export const API_KEYS = "api_keys";
const KEY_SHAPE = /^rdpk_[A-Za-z0-9_-]{43}$/;
const MAX_CACHED_KEYS = 10_000;

export interface ApiKeyRecord {
  readonly tenant_id: string;
  readonly label: string;
  readonly created_at: Date;
  readonly revoked_at: Date | null;
}

/** Reads a key record by the hash of its secret; undefined when there is none. */
export type ApiKeyLookup = (sha256: string) => Promise<ApiKeyRecord | undefined>;

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A short, non-secret handle for a key: safe to print, log and pass to revoke. */
export function keyIdOf(sha256: string): string {
  return sha256.slice(0, 16);
}

export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString("base64url");
}

export interface ApiKeyAuthenticatorOptions {
  readonly cacheSeconds: number;
  /** Longest wait for a key lookup; past it the request is answered 503. */
  readonly lookupTimeoutMs: number;
  readonly retryAfterSeconds: number;
  readonly now?: () => number;
}

export function createApiKeyAuthenticator(
  lookup: ApiKeyLookup,
  options: ApiKeyAuthenticatorOptions,
): Authenticator {
  const cache = createPromiseCache<string | null>({
    ttlMs: options.cacheSeconds * 1000,
    maxEntries: MAX_CACHED_KEYS,
    now: options.now,
  });
  const resolveTenant = (sha256: string): Promise<string | null> =>
    cache.get(sha256, () =>
      lookup(sha256).then((record) =>
        record && record.revoked_at === null && isTenantId(record.tenant_id)
          ? record.tenant_id
          : null,
      ),
    );

  const checkedKey = (headers: IncomingHeaders): string => {
    const key = presentedKey(headers);
    if (key === undefined) {
      throw new UnauthorizedError(
        "An API key is required: send Authorization: Bearer <key> or X-API-Key: <key>",
      );
    }
    if (!KEY_SHAPE.test(key)) throw new UnauthorizedError("The API key is not valid");
    return key;
  };

  return {
    checkPresented(headers) {
      checkedKey(headers);
    },

    async authenticate(headers: IncomingHeaders): Promise<Caller> {
      const sha256 = hashApiKey(checkedKey(headers));
      let tenantId: string | null;
      try {
        const pending = resolveTenant(sha256);
        tenantId = await withDeadline(pending, options.lookupTimeoutMs, () => {
          // A hung read is forgotten, so the next request for this key asks afresh instead
          // of waiting on it too.
          cache.forget(sha256, pending);
          return new Error("key lookup timed out");
        });
      } catch {
        throw new ServiceUnavailableError(
          "auth-unavailable",
          "API keys cannot be checked right now; nothing was accepted, retry later",
          options.retryAfterSeconds,
        );
      }
      if (tenantId === null) throw new UnauthorizedError("The API key is unknown or revoked");
      return { tenantId };
    },
  };
}

function presentedKey(headers: IncomingHeaders): string | undefined {
  const authorization = headerValue(headers, "authorization");
  if (authorization !== undefined) {
    const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(authorization);
    return match?.[1] ?? "";
  }
  return headerValue(headers, "x-api-key")?.trim();
}

/** Firestore-backed key records: the lookup for the edge and the admin calls for the CLI. */
export function createFirestoreApiKeys(firestore: Firestore) {
  const collection = firestore.collection(API_KEYS);

  const lookup: ApiKeyLookup = async (sha256) => {
    const snapshot = await collection.doc(sha256).get();
    if (!snapshot.exists) return undefined;
    // The document id is the hash; checking it again costs nothing and keeps the
    // only comparison that involves key material constant-time.
    const stored = Buffer.from(snapshot.id, "utf8");
    const presented = Buffer.from(sha256, "utf8");
    if (stored.length !== presented.length || !timingSafeEqual(stored, presented)) return undefined;
    const data = snapshot.data() ?? {};
    return {
      // Fail closed on a damaged record: a missing tenant must not read as "undefined"
      // (a valid tenant id), and a revocation mark of any other type still revokes.
      tenant_id: typeof data.tenant_id === "string" ? data.tenant_id : "",
      label: String(data.label ?? ""),
      created_at: toDate(data.created_at) ?? new Date(0),
      revoked_at:
        data.revoked_at === null || data.revoked_at === undefined
          ? null
          : (toDate(data.revoked_at) ?? new Date(0)),
    };
  };

  return {
    lookup,

    async create(tenantId: string, label: string) {
      if (!isTenantId(tenantId)) throw new Error("tenant id fails the id rules");
      const key = generateApiKey();
      const sha256 = hashApiKey(key);
      await collection.doc(sha256).create({
        tenant_id: tenantId,
        label,
        // Plain Dates, not FieldValue sentinels or Timestamp checks: the CLI and test scripts at
        // the repo root pass a Firestore from another copy of the library, whose serializer
        // refuses this copy's sentinel classes.
        created_at: new Date(),
        revoked_at: null,
      });
      return { key, key_id: keyIdOf(sha256), tenant_id: tenantId, label };
    },

    async list(tenantId: string) {
      const snapshot = await collection.where("tenant_id", "==", tenantId).get();
      return snapshot.docs.map((doc) => ({
        key_id: keyIdOf(doc.id),
        tenant_id: tenantId,
        label: String(doc.get("label") ?? ""),
        created_at: toDate(doc.get("created_at"))?.toISOString() ?? null,
        revoked_at: toDate(doc.get("revoked_at"))?.toISOString() ?? null,
      }));
    },

    /** Revokes the tenant's key whose key_id is given; false when there is none. */
    async revoke(tenantId: string, keyId: string): Promise<boolean> {
      const snapshot = await collection.where("tenant_id", "==", tenantId).get();
      const doc = snapshot.docs.find((candidate) => keyIdOf(candidate.id) === keyId);
      if (!doc) return false;
      // Revoking twice keeps the first revocation time.
      if (doc.get("revoked_at") === null || doc.get("revoked_at") === undefined) {
        await doc.ref.update({ revoked_at: new Date() });
      }
      return true;
    },
  };
}

/** A Firestore Timestamp of any copy of the library (duck-typed, see `create`). */
function toDate(value: unknown): Date | null {
  if (value instanceof Date) return value;
  const toDateMethod = (value as { toDate?: unknown } | null | undefined)?.toDate;
  if (typeof toDateMethod !== "function") return null;
  const date: unknown = toDateMethod.call(value);
  return date instanceof Date ? date : null;
}

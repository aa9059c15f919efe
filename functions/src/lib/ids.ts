/**
 * Tenant and log ids become Firestore document ids, so they are held to a small
 * safe alphabet: no '/', no '.' or '..' ids, no `__reserved__` ids (a valid id
 * starts with a letter or digit), no whitespace or control characters, bounded length.
 */
import { createHash, randomUUID } from "node:crypto";

export const TENANT_ID_PATTERN = "^[a-z0-9][a-z0-9_-]{0,62}$";
export const LOG_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";

export const TENANT_ID_RULE =
  "1-63 characters: lowercase letters, digits, '-' and '_', starting with a letter or digit";
export const LOG_ID_RULE =
  "1-128 characters: letters, digits, '-', '_', '.' and ':', starting with a letter or digit";

const tenantIdShape = new RegExp(TENANT_ID_PATTERN);
const logIdShape = new RegExp(LOG_ID_PATTERN);

export function isTenantId(value: unknown): value is string {
  return typeof value === "string" && tenantIdShape.test(value);
}

export function isLogId(value: unknown): value is string {
  return typeof value === "string" && logIdShape.test(value);
}

/** A random (UUID v4) id: never time-ordered, so writes spread over Firestore's key range. */
export function newLogId(): string {
  return randomUUID();
}

/**
 * The log id of the record on `line` of a request sent with an Idempotency-Key: the same
 * tenant, key and line always give the same id, so a resent request stores nothing twice.
 */
export function idempotentLogId(tenantId: string, idempotencyKey: string, line: number): string {
  const digest = createHash("sha256")
    .update(`${tenantId}\n${idempotencyKey}`, "utf8")
    .digest("hex");
  return `ik-${digest.slice(0, 32)}-${line}`;
}

/**
 * Every Firestore path the product touches is built here, from ids checked against
 * the id rules, so no request can name a path outside its own tenant's space.
 */
import { isLogId, isTenantId } from "./ids";

export const TENANTS = "tenants";
export const PROCESSED_LOGS = "processed_logs";
export const FAILED_LOGS = "failed_logs";
/** Messages so broken that no tenant can be named for them. */
export const DEAD_LETTERS = "dead_letters";
/** Per-tenant settings (the redaction policy), beside `api_keys`; written only by the CLI. */
export const TENANT_SETTINGS = "tenant_settings";

export class UnsafePathError extends Error {
  override readonly name = "UnsafePathError";
}

function tenantPath(tenantId: string): string {
  if (!isTenantId(tenantId)) throw new UnsafePathError("tenant id fails the id rules");
  return `${TENANTS}/${tenantId}`;
}

function logDocumentId(logId: string): string {
  if (!isLogId(logId)) throw new UnsafePathError("log id fails the id rules");
  return logId;
}

export function processedLogPath(tenantId: string, logId: string): string {
  return `${tenantPath(tenantId)}/${PROCESSED_LOGS}/${logDocumentId(logId)}`;
}

/**
 * A record that could not be stored. A conflicting record (same log id, other text)
 * gets its own document per text hash, so no accepted version is dropped.
 */
export function failedLogPath(tenantId: string, logId: string, variant?: string): string {
  const suffix = variant === undefined ? "" : `.${variant}`;
  if (variant !== undefined && !/^[a-z0-9-]{1,40}$/.test(variant)) {
    throw new UnsafePathError("failed-log variant fails the id rules");
  }
  return `${tenantPath(tenantId)}/${FAILED_LOGS}/${logDocumentId(logId)}${suffix}`;
}

export function tenantSettingsPath(tenantId: string): string {
  if (!isTenantId(tenantId)) throw new UnsafePathError("tenant id fails the id rules");
  return `${TENANT_SETTINGS}/${tenantId}`;
}

export function deadLetterPath(messageId: string): string {
  // Pub/Sub message ids are digits in production and the emulators.
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(messageId)) {
    throw new UnsafePathError("message id fails the id rules");
  }
  return `${DEAD_LETTERS}/${messageId}`;
}

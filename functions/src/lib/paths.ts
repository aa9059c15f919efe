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

/** The field whose time a Firestore TTL policy deletes a document after. */
export const EXPIRE_AT = "expire_at";
/** Collection groups whose documents carry `expire_at`; deploy turns on their TTL policies. */
export const RETAINED_COLLECTION_GROUPS = [PROCESSED_LOGS, FAILED_LOGS, DEAD_LETTERS] as const;

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
 * One failure of one record: the record's log id, the reason and a prefix of its text's hash,
 * joined by '~', which no log id contains. So no client id names another record's failure,
 * a redelivery finds the failure it already recorded, and another failure of the same record
 * (a conflicting text, another reason) gets a document of its own.
 */
export function failedLogPath(
  tenantId: string,
  logId: string,
  reason: string,
  textSha256: string | null,
): string {
  if (!/^[a-z_]{1,40}$/.test(reason))
    throw new UnsafePathError("failure reason fails the id rules");
  const text = textSha256 === null ? "none" : textSha256.slice(0, 16);
  if (!/^(none|[0-9a-f]{16})$/.test(text))
    throw new UnsafePathError("text hash fails the id rules");
  return `${tenantPath(tenantId)}/${FAILED_LOGS}/${logDocumentId(logId)}~${reason}~${text}`;
}

export function tenantSettingsPath(tenantId: string): string {
  if (!isTenantId(tenantId)) throw new UnsafePathError("tenant id fails the id rules");
  return `${TENANT_SETTINGS}/${tenantId}`;
}

const MESSAGE_ID = /^[A-Za-z0-9_-]{1,128}$/;

function messageDocumentId(messageId: string): string {
  // Pub/Sub message ids are digits in production and the emulators.
  if (!MESSAGE_ID.test(messageId)) throw new UnsafePathError("message id fails the id rules");
  return messageId;
}

/** A message, or one record of it (by index), so broken that no tenant can be named for it. */
export function deadLetterPath(messageId: string, recordIndex?: number): string {
  const suffix = recordIndex === undefined ? "" : `~${Math.trunc(recordIndex)}`;
  return `${DEAD_LETTERS}/${messageDocumentId(messageId)}${suffix}`;
}

/** Failed delivery attempts of a message, counted where every worker instance sees them. */
export const DELIVERY_ATTEMPTS = "delivery_attempts";

export function deliveryAttemptsPath(messageId: string): string {
  return `${DELIVERY_ATTEMPTS}/${messageDocumentId(messageId)}`;
}

/**
 * Typed errors of the ingest edge and the one mapping from error to HTTP answer
 * (RFC 9457 problem+json). Handlers throw; only `toProblemResponse` decides status
 * codes and headers.
 */
import type { ErrorObject } from "ajv";

/** Problem types are URNs: stable identifiers that do not pretend to be fetchable pages. */
const PROBLEM_BASE = "urn:rdp:problem:";

export abstract class IngestError extends Error {
  abstract readonly status: number;
  /** Short, stable slug that names the problem type. */
  abstract readonly slug: string;
  abstract readonly title: string;
  constructor(detail: string) {
    super(detail);
    this.name = new.target.name;
  }
  headers(): Record<string, string> {
    return {};
  }
  extensions(): Record<string, unknown> {
    return {};
  }
}

export class BadRequestError extends IngestError {
  readonly status = 400;
  readonly title = "Bad Request";
  constructor(
    readonly slug: string,
    detail: string,
  ) {
    super(detail);
  }
}

export interface SchemaViolation {
  /** JSON Pointer into the record, e.g. "/tenant_id" ("" for the record itself). */
  readonly pointer: string;
  readonly keyword: string;
  readonly detail: string;
}

export class SchemaError extends IngestError {
  readonly status = 400;
  readonly slug = "schema-violation";
  readonly title = "Record does not match the schema";
  constructor(
    detail: string,
    readonly violations: readonly SchemaViolation[],
  ) {
    super(detail);
  }
  override extensions(): Record<string, unknown> {
    return { errors: this.violations };
  }
}

export function schemaViolations(
  errors: readonly ErrorObject[] | null | undefined,
): SchemaViolation[] {
  return (errors ?? []).map((error) => ({
    pointer: error.instancePath,
    keyword: error.keyword,
    detail: error.message ?? error.keyword,
  }));
}

export class UnauthorizedError extends IngestError {
  readonly status = 401;
  readonly slug = "unauthorized";
  readonly title = "Unauthorized";
  override headers(): Record<string, string> {
    return { "WWW-Authenticate": 'Bearer realm="ingest"' };
  }
}

export class ForbiddenError extends IngestError {
  readonly status = 403;
  readonly slug = "forbidden";
  readonly title = "Forbidden";
}

export class MethodNotAllowedError extends IngestError {
  readonly status = 405;
  readonly slug = "method-not-allowed";
  readonly title = "Method Not Allowed";
  constructor(readonly method: string) {
    super(`${method} is not supported here; send records with POST`);
  }
  override headers(): Record<string, string> {
    return { Allow: "POST" };
  }
}

export class NotFoundError extends IngestError {
  readonly status = 404;
  readonly slug = "not-found";
  readonly title = "Not Found";
}

export class PayloadTooLargeError extends IngestError {
  readonly status = 413;
  readonly slug = "payload-too-large";
  readonly title = "Payload Too Large";
}

export class UnsupportedMediaTypeError extends IngestError {
  readonly status = 415;
  readonly slug = "unsupported-media-type";
  readonly title = "Unsupported Media Type";
  constructor(
    detail: string,
    readonly accepted: readonly string[] = [
      "application/json",
      "text/plain",
      "application/x-ndjson",
    ],
  ) {
    super(detail);
  }
  override headers(): Record<string, string> {
    return { "Accept-Post": this.accepted.join(", ") };
  }
}

/** A Content-Encoding the gate cannot inflate; the answer lists those it can. */
export class UnsupportedEncodingError extends IngestError {
  readonly status = 415;
  readonly slug = "unsupported-content-encoding";
  readonly title = "Unsupported Media Type";
  constructor(
    detail: string,
    readonly accepted: readonly string[],
  ) {
    super(detail);
  }
  override headers(): Record<string, string> {
    return { "Accept-Encoding": this.accepted.join(", ") };
  }
}

/**
 * The tenant sent more records than its rate limit allows (rate-limit.ts): nothing of the
 * request was accepted; the same request passes after Retry-After.
 */
export class RateLimitedError extends IngestError {
  readonly status = 429;
  readonly slug = "rate-limited";
  readonly title = "Too Many Requests";
  constructor(
    detail: string,
    readonly retryAfterSeconds: number,
    readonly rateLimitHeaders: Readonly<Record<string, string>>,
  ) {
    super(detail);
  }
  override headers(): Record<string, string> {
    return { "Retry-After": String(this.retryAfterSeconds), ...this.rateLimitHeaders };
  }
  override extensions(): Record<string, unknown> {
    return { "violated-policies": ["tenant"] };
  }
}

/**
 * A dependency (the key store) did not answer in time, or the instance is full: nothing was
 * accepted and the client should retry after the hinted delay.
 */
export class ServiceUnavailableError extends IngestError {
  readonly status = 503;
  readonly title = "Service Unavailable";
  constructor(
    readonly slug: string,
    detail: string,
    readonly retryAfterSeconds: number,
  ) {
    super(detail);
  }
  override headers(): Record<string, string> {
    return { "Retry-After": String(this.retryAfterSeconds) };
  }
}

/**
 * Pub/Sub did not confirm a publish in time, or failed it. The message may still have reached
 * it (a publish that timed out is abandoned, not cancelled), so the outcome is unknown.
 */
export class PublishUnconfirmedError extends ServiceUnavailableError {
  constructor(detail: string, retryAfterSeconds: number) {
    super("publish-unconfirmed", detail, retryAfterSeconds);
  }
}

/** How a client resends a record without risking a second document. */
export interface RecordRetry {
  readonly tenant_id: string;
  readonly log_id: string;
  /** One sentence: where to put the log_id when resending. */
  readonly advice: string;
}

/** One record's publish was not confirmed: the answer names it and how to retry it safely. */
export class RecordInDoubtError extends ServiceUnavailableError {
  constructor(
    cause: PublishUnconfirmedError,
    readonly record: RecordRetry,
  ) {
    super(
      "not-confirmed",
      `${cause.message}. The record may still be stored: ${record.advice}; ` +
        "a resend with the same log_id never creates a second document",
      cause.retryAfterSeconds,
    );
  }
  override extensions(): Record<string, unknown> {
    return { outcome: "unknown", tenant_id: this.record.tenant_id, log_id: this.record.log_id };
  }
}

export interface ProblemResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Record<string, unknown>;
}

export function toProblemResponse(error: unknown, instance?: string): ProblemResponse {
  const known = error instanceof IngestError ? error : null;
  const status = known?.status ?? 500;
  const body: Record<string, unknown> = {
    type: known ? PROBLEM_BASE + known.slug : "about:blank",
    title: known?.title ?? "Internal Server Error",
    status,
    // An unexpected error's message may carry internals; the client gets a generic detail.
    detail: known?.message ?? "The server failed to handle the request; it is safe to retry.",
    ...(instance ? { instance } : {}),
    ...(known?.extensions() ?? {}),
  };
  return {
    status,
    headers: { "Content-Type": "application/problem+json", ...(known?.headers() ?? {}) },
    body,
  };
}

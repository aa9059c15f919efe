/**
 * The ingest edge: authenticate, read and validate records (one JSON object, one
 * plain-text body, or an NDJSON batch), normalise them into pipeline messages,
 * publish, and answer 202 only once Pub/Sub has acknowledged every message that
 * carries an accepted record. Framework-free: a plain request and its dependencies.
 */
import type { Authenticator, Caller } from "./auth";
import type { Config } from "./config";
import {
  BadRequestError,
  ForbiddenError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  PublishUnconfirmedError,
  RecordInDoubtError,
  SchemaError,
  ServiceUnavailableError,
  UnsupportedMediaTypeError,
  schemaViolations,
  toProblemResponse,
  type SchemaViolation,
} from "./errors";
import {
  headerValue,
  parseMediaType,
  type IncomingHeaders,
  type IngestRequest,
  type IngestResponse,
} from "./http";
import { LOG_ID_RULE, TENANT_ID_RULE, idempotentLogId, newLogId } from "./ids";
import { errorFields, type Logger } from "./logger";
import { checkEncodingAndLength } from "./body-gate";
import { encodeRecord, type EncodedRecord, type RecordQueue } from "./coalescer";
import { handleOtlpLogs, otlpPreflight } from "./otlp-handler";
import { OTLP_LOGS_PATH } from "./otlp";
import { admitRecords, type TenantRateLimiter } from "./rate-limit";
import { type JsonUpload, type PipelineRecord, type RecordSource, type Validators } from "./schema";

export interface IngestDeps {
  readonly config: Config;
  readonly validators: Validators;
  readonly authenticator: Authenticator;
  /** Publishes records, packing those that arrive together into one message. */
  readonly queue: RecordQueue;
  readonly logger: Logger;
  /** Per-tenant rate limit in records; none when absent. */
  readonly rateLimiter?: TenantRateLimiter;
  readonly now?: () => Date;
}

const INGEST_PATHS = new Set(["/", "/ingest", "/ingest/"]);
const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain";
const NDJSON_TYPES = new Set(["application/x-ndjson", "application/jsonl"]);
const ACCEPTED_TYPES = "application/json, text/plain or application/x-ndjson";
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** What the ingest edge can check before it reads a body, in the order the handler checks it. */
export interface PreflightRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHeaders;
}

/**
 * The checks that need neither the body nor a lookup: the route, the method, that a
 * well-formed credential is present, the media type, the content coding and the declared
 * length. The body gate runs them before reading a byte; the handler runs them again.
 */
export function preflight(
  request: PreflightRequest,
  deps: Pick<IngestDeps, "authenticator" | "config">,
): void {
  if (request.path === OTLP_LOGS_PATH) otlpPreflight(request, deps);
  else checkRecordsRequest(request, deps);
}

/** The preflight of the records routes; the media type it accepted. */
function checkRecordsRequest(
  request: PreflightRequest,
  deps: Pick<IngestDeps, "authenticator" | "config">,
): string {
  if (!INGEST_PATHS.has(request.path)) {
    throw new NotFoundError(`Nothing is served at ${request.path}; POST records to / or /ingest`);
  }
  if (request.method !== "POST") throw new MethodNotAllowedError(request.method);
  deps.authenticator.checkPresented(request.headers);
  const mediaType = readMediaType(request.headers);
  checkEncodingAndLength(request.headers, bodyLimit(mediaType, deps.config));
  return mediaType;
}

/** Largest body of this request (an unknown type is refused by preflight). */
export function bodyLimitFor(request: PreflightRequest, config: Config): number {
  if (request.path === OTLP_LOGS_PATH) return config.maxBatchBodyBytes;
  const essence = parseMediaType(headerValue(request.headers, "content-type"))?.essence ?? "";
  return bodyLimit(essence, config);
}

function bodyLimit(mediaType: string, config: Config): number {
  return NDJSON_TYPES.has(mediaType) ? config.maxBatchBodyBytes : config.maxBodyBytes;
}

export async function handleIngest(
  request: IngestRequest,
  deps: IngestDeps,
): Promise<IngestResponse> {
  // OTLP/HTTP answers in its own encoding (google.rpc.Status), so it handles its own errors.
  if (request.path === OTLP_LOGS_PATH) return handleOtlpLogs(request, deps);
  try {
    const mediaType = checkRecordsRequest(request, deps);
    const caller = await deps.authenticator.authenticate(request.headers);
    const idempotencyKey = readIdempotencyKey(request.headers);
    const body = readBodyText(request.rawBody, bodyLimit(mediaType, deps.config));
    if (NDJSON_TYPES.has(mediaType)) {
      return await acceptBatch(body, caller, idempotencyKey, deps);
    }
    const rateLimit = await admitRecords(deps.rateLimiter, caller.tenantId, 1);
    const upload =
      mediaType === JSON_TYPE
        ? { ...validateUpload(parseJson(body), deps), source: "json_upload" as const }
        : {
            ...validateUpload(textUploadFields(body, request.headers), deps),
            source: "text_upload" as const,
          };
    const record = toRecord(upload, caller, { idempotencyKey, line: 1 }, deps);
    const messageId = await publishOne(record, idempotencyKey, deps);
    deps.logger.recordSuccess("accepted", {
      tenant_id: record.tenant_id,
      log_id: record.log_id,
      message_id: messageId,
    });
    return {
      status: 202,
      headers: { "Content-Type": "application/json", ...rateLimit },
      body: {
        status: "accepted",
        tenant_id: record.tenant_id,
        log_id: record.log_id,
        message_id: messageId,
      },
    };
  } catch (error) {
    const problem = toProblemResponse(error, request.path);
    if (error instanceof RecordInDoubtError) {
      // Not a rejection: the operator can match this line to the record if it turns up.
      deps.logger.warn("record not confirmed by Pub/Sub; in doubt", {
        status: problem.status,
        tenant_id: error.record.tenant_id,
        log_id: error.record.log_id,
      });
    } else {
      const log = problem.status >= 500 ? deps.logger.error : deps.logger.info;
      log("request rejected", { status: problem.status, ...errorFields(error) });
    }
    return problem;
  }
}

/** Publishes one record; an unconfirmed publish becomes an answer that names the record. */
async function publishOne(
  record: PipelineRecord,
  idempotencyKey: string | undefined,
  deps: IngestDeps,
): Promise<string> {
  try {
    return await deps.queue.enqueue(encodeRecord(record, deps.config.maxMessageBytes));
  } catch (error) {
    if (!(error instanceof PublishUnconfirmedError)) throw error;
    const advice =
      idempotencyKey !== undefined
        ? "resend the request unchanged with the same Idempotency-Key"
        : record.source === "text_upload"
          ? `resend it with the header X-Log-ID: ${record.log_id}`
          : `resend it with "log_id": "${record.log_id}" in the body`;
    throw new RecordInDoubtError(error, {
      tenant_id: record.tenant_id,
      log_id: record.log_id,
      advice,
    });
  }
}

function readMediaType(headers: IncomingHeaders): string {
  const mediaType = parseMediaType(headerValue(headers, "content-type"));
  if (mediaType === undefined) {
    throw new UnsupportedMediaTypeError(`Content-Type is missing; send ${ACCEPTED_TYPES}`);
  }
  const { essence, charset } = mediaType;
  if (essence !== JSON_TYPE && essence !== TEXT_TYPE && !NDJSON_TYPES.has(essence)) {
    throw new UnsupportedMediaTypeError(
      `Content-Type ${essence} is not accepted; send ${ACCEPTED_TYPES}`,
    );
  }
  if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
    throw new UnsupportedMediaTypeError(`charset=${charset} is not accepted; bodies are UTF-8`);
  }
  return essence;
}

function readBodyText(rawBody: Buffer | undefined, maxBytes: number): string {
  const bytes = rawBody ?? Buffer.alloc(0);
  if (bytes.length > maxBytes) {
    throw new PayloadTooLargeError(`The body is ${bytes.length} bytes; the limit is ${maxBytes}`);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw new BadRequestError("invalid-utf8", "The body is not valid UTF-8");
  }
}

function parseJson(body: string): unknown {
  if (body.trim() === "") {
    throw new BadRequestError(
      "empty-body",
      "The body is empty; send a JSON object with a text field",
    );
  }
  try {
    return JSON.parse(body);
  } catch {
    throw new BadRequestError("malformed-json", "The body is not well-formed JSON");
  }
}

/** A text/plain upload carries its ids in headers; they meet the same schema as JSON fields. */
function textUploadFields(body: string, headers: IncomingHeaders): Record<string, string> {
  const fields: Record<string, string> = { text: body };
  const tenantId = headerValue(headers, "x-tenant-id");
  const logId = headerValue(headers, "x-log-id");
  if (tenantId !== undefined) fields.tenant_id = tenantId;
  if (logId !== undefined) fields.log_id = logId;
  return fields;
}

function validateUpload(candidate: unknown, deps: IngestDeps): JsonUpload {
  const { jsonUpload } = deps.validators;
  if (!jsonUpload(candidate)) {
    const violations = schemaViolations(jsonUpload.errors);
    throw new SchemaError(summarise(violations), violations);
  }
  if (!candidate.text.isWellFormed()) {
    throw new BadRequestError("malformed-text", "text contains an unpaired UTF-16 surrogate");
  }
  return candidate;
}

const PATTERN_RULES: Readonly<Record<string, string>> = {
  "/tenant_id": `tenant_id must be ${TENANT_ID_RULE}`,
  "/log_id": `log_id must be ${LOG_ID_RULE}`,
  "/text": "text must not contain NUL characters",
};

/** One readable sentence for the `detail` member; the full list travels as `errors`. */
function summarise(violations: readonly SchemaViolation[]): string {
  const sentences = violations.map((violation) =>
    violation.keyword === "pattern"
      ? (PATTERN_RULES[violation.pointer] ?? `${violation.pointer} ${violation.detail}`)
      : `${violation.pointer.slice(1) || "the record"} ${violation.detail}`,
  );
  return `The record does not match the schema: ${[...new Set(sentences)].join("; ")}`;
}

/** How a record without a log_id gets one: from the Idempotency-Key and its line, or at random. */
interface IdSource {
  readonly idempotencyKey: string | undefined;
  /** The record's line in the body (1 for a single record). */
  readonly line: number;
}

function toRecord(
  upload: JsonUpload & { readonly source: RecordSource },
  caller: Caller,
  ids: IdSource,
  deps: IngestDeps,
): PipelineRecord {
  const tenantId = resolveTenant(caller, upload.tenant_id);
  return {
    tenant_id: tenantId,
    log_id:
      upload.log_id ??
      (ids.idempotencyKey === undefined
        ? newLogId()
        : idempotentLogId(tenantId, ids.idempotencyKey, ids.line)),
    source: upload.source,
    text: upload.text,
    received_at: (deps.now?.() ?? new Date()).toISOString(),
  };
}

/**
 * The Idempotency-Key request header (IETF httpapi draft): a Structured Field string, sent
 * quoted; a bare value is taken too. Printable ASCII, at most 255 characters.
 */
function readIdempotencyKey(headers: IncomingHeaders): string | undefined {
  const raw = headerValue(headers, "idempotency-key");
  if (raw === undefined) return undefined;
  const value = /^"(.*)"$/.exec(raw.trim())?.[1] ?? raw.trim();
  if (!/^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/.test(value) || /["\\]/.test(value)) {
    throw new BadRequestError(
      "invalid-idempotency-key",
      "Idempotency-Key must be 1-255 printable ASCII characters without quotes or backslashes, " +
        'sent as a quoted string: Idempotency-Key: "<key>"',
    );
  }
  return value;
}

function resolveTenant(caller: Caller, requested: string | undefined): string {
  if (caller.tenantId === null) {
    if (requested === undefined) {
      throw new BadRequestError(
        "missing-tenant",
        "No tenant given: send tenant_id in the JSON body or an X-Tenant-ID header",
      );
    }
    return requested;
  }
  if (requested !== undefined && requested !== caller.tenantId) {
    throw new ForbiddenError("The API key does not belong to the tenant named in the request");
  }
  return caller.tenantId;
}

type LineResult =
  | {
      readonly line: number;
      readonly status: "accepted";
      readonly tenant_id: string;
      readonly log_id: string;
    }
  | {
      readonly line: number;
      /** Pub/Sub did not confirm it: it may be stored; resend it with this log_id. */
      readonly status: "in_doubt";
      readonly tenant_id: string;
      readonly log_id: string;
      readonly problem: Record<string, unknown>;
    }
  | {
      readonly line: number;
      readonly status: "rejected";
      readonly problem: Record<string, unknown>;
    };

/**
 * An NDJSON batch: every line is validated alone and answered alone. The status speaks for the
 * whole batch: 202 only when every line was accepted; 503 with Retry-After when any line is in
 * doubt (retryable); 400 when lines were refused for good, whether or not others were accepted.
 * Accepted records travel in as few messages as the size and count limits allow.
 */
async function acceptBatch(
  body: string,
  caller: Caller,
  idempotencyKey: string | undefined,
  deps: IngestDeps,
): Promise<IngestResponse> {
  const lines = body
    .split("\n")
    .map((line, index) => ({ number: index + 1, text: line.replace(/\r$/, "") }));
  const nonBlank = lines.filter((line) => line.text.trim() !== "");
  if (nonBlank.length === 0) {
    throw new BadRequestError(
      "empty-body",
      "The batch has no records; send one JSON object a line",
    );
  }
  if (nonBlank.length > deps.config.maxBatchRecords) {
    throw new PayloadTooLargeError(
      `The batch has ${nonBlank.length} records; the limit is ${deps.config.maxBatchRecords}`,
    );
  }
  // Every line counts, valid or not, and the batch is admitted or refused whole: a client
  // resends a refused batch unchanged, and never has to work out which lines went through.
  const rateLimit = await admitRecords(deps.rateLimiter, caller.tenantId, nonBlank.length);

  const results = new Map<number, LineResult>();
  const encoded: { line: number; record: EncodedRecord }[] = [];
  for (const line of nonBlank) {
    try {
      const upload = {
        ...validateUpload(parseJson(line.text), deps),
        source: "json_upload" as const,
      };
      const ids = { idempotencyKey, line: line.number };
      encoded.push({
        line: line.number,
        record: encodeRecord(toRecord(upload, caller, ids, deps), deps.config.maxMessageBytes),
      });
    } catch (error) {
      results.set(line.number, rejectedLine(line.number, error));
    }
  }

  const messageIds = deps.queue.enqueueAll(encoded.map(({ record }) => record));
  await Promise.all(
    encoded.map(async ({ line, record }, index) => {
      const ids = { tenant_id: record.tenantId, log_id: record.logId };
      try {
        const messageId = await messageIds[index];
        results.set(line, { line, status: "accepted", ...ids });
        deps.logger.recordSuccess("accepted", { ...ids, message_id: messageId, line });
      } catch (error) {
        if (!(error instanceof PublishUnconfirmedError)) throw error;
        results.set(line, { line, status: "in_doubt", ...ids, problem: lineProblem(error) });
        deps.logger.warn("record not confirmed by Pub/Sub; in doubt", { ...ids, line });
      }
    }),
  );

  const ordered = nonBlank.map((line) => results.get(line.number) as LineResult);
  const count = (status: LineResult["status"]) =>
    ordered.filter((result) => result.status === status).length;
  const summary = {
    accepted: count("accepted"),
    in_doubt: count("in_doubt"),
    rejected: count("rejected"),
    results: ordered,
  };
  // One line a batch whatever LOG_RECORD_SUCCESS says, so every batch leaves its counts.
  deps.logger.info("batch answered", {
    tenant_id: caller.tenantId,
    accepted: summary.accepted,
    in_doubt: summary.in_doubt,
    rejected: summary.rejected,
  });
  if (summary.in_doubt === 0 && summary.rejected === 0) {
    return {
      status: 202,
      headers: { "Content-Type": "application/json", ...rateLimit },
      body: summary,
    };
  }
  const problem = toProblemResponse(batchProblem(summary, idempotencyKey, deps));
  return {
    ...problem,
    headers: { ...problem.headers, ...rateLimit },
    body: { ...problem.body, ...summary },
  };
}

function batchProblem(
  summary: { accepted: number; in_doubt: number; rejected: number },
  idempotencyKey: string | undefined,
  deps: IngestDeps,
): Error {
  const { accepted, in_doubt: inDoubt, rejected } = summary;
  const stored = `${accepted} line(s) were accepted and will be stored`;
  if (inDoubt > 0) {
    const resend =
      idempotencyKey !== undefined
        ? "resend the request unchanged with the same Idempotency-Key"
        : 'resend those lines with the "log_id" their result gives';
    return new ServiceUnavailableError(
      "batch-not-confirmed",
      `${inDoubt} line(s) were not confirmed by the message queue and may still be stored: ` +
        `${resend}, which never creates a second document. ${stored}; ` +
        `${rejected} line(s) were rejected and fail again unchanged. See results`,
      deps.config.retryAfterSeconds,
    );
  }
  if (accepted === 0) {
    return new BadRequestError("batch-rejected", "No line of the batch was accepted; see results");
  }
  return new BadRequestError(
    "batch-partially-rejected",
    `${rejected} line(s) were rejected and fail again unchanged; ${stored}: do not resend them ` +
      "(or resend them with their log_id, which is harmless). See results",
  );
}

function lineProblem(error: unknown): Record<string, unknown> {
  const { type, title, status, detail, errors } = toProblemResponse(error).body;
  return { type, title, status, detail, ...(errors ? { errors } : {}) };
}

function rejectedLine(line: number, error: unknown): LineResult {
  return { line, status: "rejected", problem: lineProblem(error) };
}

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
import { LOG_ID_RULE, TENANT_ID_RULE, newLogId } from "./ids";
import { errorFields, type Logger } from "./logger";
import { MESSAGE_OVERHEAD_BYTES, type EncodedRecord, type RecordQueue } from "./coalescer";
import { type JsonUpload, type PipelineRecord, type RecordSource, type Validators } from "./schema";

export interface IngestDeps {
  readonly config: Config;
  readonly validators: Validators;
  readonly authenticator: Authenticator;
  /** Publishes records, packing those that arrive together into one message. */
  readonly queue: RecordQueue;
  readonly logger: Logger;
  readonly now?: () => Date;
}

const INGEST_PATHS = new Set(["/", "/ingest", "/ingest/"]);
const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain";
const NDJSON_TYPES = new Set(["application/x-ndjson", "application/jsonl"]);
const ACCEPTED_TYPES = "application/json, text/plain or application/x-ndjson";
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

export async function handleIngest(
  request: IngestRequest,
  deps: IngestDeps,
): Promise<IngestResponse> {
  try {
    if (!INGEST_PATHS.has(request.path)) {
      throw new NotFoundError(`Nothing is served at ${request.path}; POST records to / or /ingest`);
    }
    if (request.method !== "POST") throw new MethodNotAllowedError(request.method);
    // Authenticate before reading the body: an unknown caller learns nothing about it.
    const caller = await deps.authenticator.authenticate(request.headers);
    const mediaType = readMediaType(request.headers);
    if (NDJSON_TYPES.has(mediaType)) {
      const body = readBodyText(request.rawBody, deps.config.maxBatchBodyBytes);
      return await acceptBatch(body, caller, deps);
    }
    const body = readBodyText(request.rawBody, deps.config.maxBodyBytes);
    const upload =
      mediaType === JSON_TYPE
        ? { ...validateUpload(parseJson(body), deps), source: "json_upload" as const }
        : {
            ...validateUpload(textUploadFields(body, request.headers), deps),
            source: "text_upload" as const,
          };
    const record = toRecord(upload, caller, deps);
    const messageId = await deps.queue.enqueue(encodeRecord(record, deps));
    deps.logger.info("record accepted", {
      tenant_id: record.tenant_id,
      log_id: record.log_id,
      message_id: messageId,
    });
    return {
      status: 202,
      headers: { "Content-Type": "application/json" },
      body: {
        status: "accepted",
        tenant_id: record.tenant_id,
        log_id: record.log_id,
        message_id: messageId,
      },
    };
  } catch (error) {
    const problem = toProblemResponse(error, request.path);
    const log = problem.status >= 500 ? deps.logger.error : deps.logger.info;
    log("request rejected", { status: problem.status, ...errorFields(error) });
    return problem;
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

function toRecord(
  upload: JsonUpload & { readonly source: RecordSource },
  caller: Caller,
  deps: IngestDeps,
): PipelineRecord {
  return {
    tenant_id: resolveTenant(caller, upload.tenant_id),
    log_id: upload.log_id ?? newLogId(),
    source: upload.source,
    text: upload.text,
    received_at: (deps.now?.() ?? new Date()).toISOString(),
  };
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

/** Encodes one record, refusing any that could not fit in a message on its own. */
function encodeRecord(record: PipelineRecord, deps: IngestDeps): EncodedRecord {
  const json = JSON.stringify(record);
  const size = Buffer.byteLength(json) + MESSAGE_OVERHEAD_BYTES;
  if (size > deps.config.maxMessageBytes) {
    throw new PayloadTooLargeError(
      `The record takes ${size} bytes once encoded for the queue; the limit is ` +
        `${deps.config.maxMessageBytes} (text with many control characters grows when escaped)`,
    );
  }
  return { tenantId: record.tenant_id, logId: record.log_id, json };
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
      readonly status: "rejected";
      readonly problem: Record<string, unknown>;
    };

/**
 * An NDJSON batch: every line is validated alone and answered alone, so a client
 * resends only the lines marked rejected. Accepted records travel in as few
 * messages as the size and count limits allow.
 */
async function acceptBatch(
  body: string,
  caller: Caller,
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

  const results = new Map<number, LineResult>();
  const encoded: { line: number; record: EncodedRecord }[] = [];
  for (const line of nonBlank) {
    try {
      const upload = {
        ...validateUpload(parseJson(line.text), deps),
        source: "json_upload" as const,
      };
      encoded.push({
        line: line.number,
        record: encodeRecord(toRecord(upload, caller, deps), deps),
      });
    } catch (error) {
      results.set(line.number, rejectedLine(line.number, error));
    }
  }

  const messageIds = deps.queue.enqueueAll(encoded.map(({ record }) => record));
  await Promise.all(
    encoded.map(async ({ line, record }, index) => {
      try {
        const messageId = await messageIds[index];
        results.set(line, {
          line,
          status: "accepted",
          tenant_id: record.tenantId,
          log_id: record.logId,
        });
        deps.logger.info("record accepted", {
          tenant_id: record.tenantId,
          log_id: record.logId,
          message_id: messageId,
          line,
        });
      } catch (error) {
        results.set(line, rejectedLine(line, error));
      }
    }),
  );

  const ordered = nonBlank.map((line) => results.get(line.number) as LineResult);
  const accepted = ordered.filter((result) => result.status === "accepted").length;
  const summary = { accepted, rejected: ordered.length - accepted, results: ordered };
  if (accepted > 0) {
    return { status: 202, headers: { "Content-Type": "application/json" }, body: summary };
  }
  const unavailable = ordered.some(
    (result) => result.status === "rejected" && result.problem.status === 503,
  );
  const problem = toProblemResponse(
    unavailable
      ? new ServiceUnavailableError(
          "publish-unavailable",
          "No record of the batch was accepted: the message queue did not confirm them; retry later",
          deps.config.retryAfterSeconds,
        )
      : new BadRequestError("batch-rejected", "No record of the batch was accepted; see results"),
  );
  return { ...problem, body: { ...problem.body, ...summary } };
}

function rejectedLine(line: number, error: unknown): LineResult {
  const { type, title, status, detail, errors } = toProblemResponse(error).body;
  return {
    line,
    status: "rejected",
    problem: { type, title, status, detail, ...(errors ? { errors } : {}) },
  };
}

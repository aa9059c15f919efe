/**
 * OTLP/HTTP logs (OTLP 1.x, `POST /v1/logs`): decodes an ExportLogsServiceRequest sent as
 * `application/x-protobuf` or `application/json` into one plain record per LogRecord, and
 * encodes the answers (ExportLogsServiceResponse with partial_success; google.rpc.Status for
 * failures) in the request's encoding. The wire format is protobufjs's, driven by the official
 * .proto files in functions/proto (see its README); nothing here parses protobuf by hand.
 *
 * Framework-free and pure: the caller has already bounded the body (wire and inflated bytes)
 * and authenticated the tenant.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import protobuf from "protobufjs";
import {
  BadRequestError,
  IngestError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  toProblemResponse,
} from "./errors";
import { isLogId } from "./ids";
import {
  DEFAULT_OTLP_FIELD_LIMITS,
  isStorableKey,
  type OtlpFieldLimits,
  type OtlpFields,
  type OtlpMap,
  type OtlpValue,
} from "./otlp-schema";
import { noRedactions, type RedactionCounts, type RedactionResult } from "./redaction";

export const OTLP_LOGS_PATH = "/v1/logs";
export const OTLP_PROTOBUF = "application/x-protobuf";
export const OTLP_JSON = "application/json";
export type OtlpMediaType = typeof OTLP_PROTOBUF | typeof OTLP_JSON;

/** OTLP/HTTP: only these answers tell an exporter to retry (with Retry-After when given). */
export const OTLP_RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

/** The semantic-conventions attribute that names a log record uniquely. */
export const LOG_RECORD_UID = "log.record.uid";

export interface OtlpLimits extends OtlpFieldLimits {
  /** LogRecords in one request (413 above it), e.g. MAX_BATCH_RECORDS. */
  readonly maxRecords: number;
  /** Characters of a record's text (its string body, or the JSON of a structured one). */
  readonly maxTextChars: number;
}

export const DEFAULT_OTLP_LIMITS: OtlpLimits = Object.freeze({
  ...DEFAULT_OTLP_FIELD_LIMITS,
  maxRecords: 1_000,
  maxTextChars: 100_000,
});

/** Where a LogRecord sat in the request: resource_logs, scope_logs and log_records indexes. */
export interface OtlpPosition {
  readonly resource: number;
  readonly scope: number;
  readonly record: number;
}

export interface OtlpLogRecord {
  /** `log.record.uid` when it is a valid log id, else derived (see `deriveOtlpLogId`). */
  readonly log_id: string;
  readonly text: string;
  readonly otlp: OtlpFields;
  readonly position: OtlpPosition;
}

export interface OtlpRejection {
  readonly position: OtlpPosition;
  readonly reason: string;
}

export interface DecodedOtlpLogs {
  /** Records in request order. */
  readonly records: OtlpLogRecord[];
  /** Records refused on their own (the rest of the request stands): for partial_success. */
  readonly rejected: OtlpRejection[];
}

/** The OTLP media type of a Content-Type essence (lower case, no parameters), if it is one. */
export function otlpMediaType(essence: string | undefined): OtlpMediaType | undefined {
  return essence === OTLP_PROTOBUF || essence === OTLP_JSON ? essence : undefined;
}

// The official definitions, loaded once per instance. __dirname is functions/src/lib under tsx
// and functions/lib/lib once built; both sit two levels below functions/.
const PROTO_DIR = path.join(__dirname, "..", "..", "proto");
const protoRoot = loadProtoRoot();
const ExportLogsServiceRequest = protoRoot.lookupType(
  "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
);
const ExportLogsServiceResponse = protoRoot.lookupType(
  "opentelemetry.proto.collector.logs.v1.ExportLogsServiceResponse",
);
const RpcStatus = protoRoot.lookupType("google.rpc.Status");

function loadProtoRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports name files relative to the proto root; google/protobuf/* are bundled in protobufjs.
  root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
  root.loadSync(
    ["opentelemetry/proto/collector/logs/v1/logs_service.proto", "google/rpc/status.proto"],
    { keepCase: false },
  );
  return root;
}

// The decoded message, as protobufjs builds it: camelCase members, Long for 64-bit integers,
// Uint8Array for bytes, and absent (prototype default) members for proto3 defaults.
/** protobufjs's Long (from the `long` package), as far as it is used here. */
interface Long {
  toNumber(): number;
  toString(): string;
}
interface KeyValue {
  key?: string;
  value?: AnyValue | null;
}
interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: Long | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] } | null;
  kvlistValue?: { values?: KeyValue[] } | null;
  bytesValue?: Uint8Array;
}
interface LogRecord {
  timeUnixNano?: Long | number;
  observedTimeUnixNano?: Long | number;
  severityNumber?: number;
  severityText?: string;
  body?: AnyValue | null;
  attributes?: KeyValue[];
  droppedAttributesCount?: number;
  flags?: number;
  traceId?: Uint8Array;
  spanId?: Uint8Array;
  eventName?: string;
}
interface ScopeLogs {
  scope?: {
    name?: string;
    version?: string;
    attributes?: KeyValue[];
    droppedAttributesCount?: number;
  } | null;
  logRecords?: LogRecord[];
  schemaUrl?: string;
}
interface ResourceLogs {
  resource?: { attributes?: KeyValue[]; droppedAttributesCount?: number } | null;
  scopeLogs?: ScopeLogs[];
  schemaUrl?: string;
}
interface ExportLogsRequest {
  resourceLogs?: ResourceLogs[];
}

/** A value past a bound: the record it belongs to is refused with this reason. */
class RecordRejected extends Error {}

/**
 * Decodes an ExportLogsServiceRequest. Throws BadRequestError for a body that is not one
 * (malformed protobuf or JSON, ids that are not hex of the right length) and
 * PayloadTooLargeError for more than `limits.maxRecords` LogRecords; refuses single records
 * (no body, text or attributes past the bounds) in `rejected`.
 *
 * A record without a body is refused: the pipeline stores text, and a record with nothing
 * to show would be an empty document. The exporter is told through partial_success.
 */
export function decodeExportLogsRequest(
  body: Uint8Array,
  mediaType: OtlpMediaType,
  tenantId: string,
  limits: OtlpLimits = DEFAULT_OTLP_LIMITS,
): DecodedOtlpLogs {
  const request =
    mediaType === OTLP_PROTOBUF
      ? decodeProtobuf(body, limits.maxRecords)
      : decodeJson(body, limits.maxRecords);
  const resourceLogs = request.resourceLogs ?? [];

  const records: OtlpLogRecord[] = [];
  const rejected: OtlpRejection[] = [];
  resourceLogs.forEach((resourceLogs, resourceIndex) => {
    const resource = attempt(() => resourceFields(resourceLogs, limits));
    (resourceLogs.scopeLogs ?? []).forEach((scopeLogs, scopeIndex) => {
      const scope = attempt(() => scopeFields(scopeLogs, limits));
      (scopeLogs.logRecords ?? []).forEach((logRecord, recordIndex) => {
        const position = { resource: resourceIndex, scope: scopeIndex, record: recordIndex };
        try {
          if (resource instanceof RecordRejected) throw resource;
          if (scope instanceof RecordRejected) throw scope;
          records.push(toRecord(logRecord, resource, scope, position, tenantId, limits));
        } catch (error) {
          if (!(error instanceof RecordRejected)) throw error;
          rejected.push({ position, reason: error.message });
        }
      });
    });
  });
  return { records, rejected };
}

function attempt<T>(build: () => T): T | RecordRejected {
  try {
    return build();
  } catch (error) {
    if (error instanceof RecordRejected) return error;
    throw error;
  }
}

// Field numbers of the three nesting levels down to a LogRecord, from the definitions.
const RECORD_PATH_FIELDS = [
  ExportLogsServiceRequest.fields.resourceLogs?.id,
  protoRoot.lookupType("opentelemetry.proto.logs.v1.ResourceLogs").fields.scopeLogs?.id,
  protoRoot.lookupType("opentelemetry.proto.logs.v1.ScopeLogs").fields.logRecords?.id,
];

/**
 * Counts the LogRecords of a protobuf body by walking the three outer levels with protobufjs's
 * Reader and skipping everything else. Decoding materialises every record (a 1 MiB body of
 * empty records is half a million objects, over 100 MB of heap), so the count is checked first.
 */
function countProtobufLogRecords(body: Uint8Array): number {
  const reader = protobuf.Reader.create(body);
  let count = 0;
  const walk = (end: number, level: number): void => {
    while (reader.pos < end) {
      const tag = reader.uint32();
      if ((tag & 7) === 2 && tag >>> 3 === RECORD_PATH_FIELDS[level]) {
        const length = reader.uint32();
        if (level === RECORD_PATH_FIELDS.length - 1) {
          count += 1;
          reader.skip(length);
        } else {
          walk(reader.pos + length, level + 1);
        }
      } else {
        reader.skipType(tag & 7);
      }
    }
  };
  walk(reader.len, 0);
  return count;
}

function checkRecordCount(count: number, maxRecords: number): void {
  if (count > maxRecords) {
    throw new PayloadTooLargeError(
      `The request has ${count} log records; the limit is ${maxRecords}`,
    );
  }
}

function decodeProtobuf(body: Uint8Array, maxRecords: number): ExportLogsRequest {
  let count: number;
  try {
    count = countProtobufLogRecords(body);
  } catch (error) {
    throw new BadRequestError(
      "malformed-otlp",
      `The body is not a protobuf ExportLogsServiceRequest (${describe(error)})`,
    );
  }
  checkRecordCount(count, maxRecords);
  try {
    return ExportLogsServiceRequest.decode(body) as unknown as ExportLogsRequest;
  } catch (error) {
    // protobufjs throws on truncated or mistyped fields, and a nesting deep enough to exhaust
    // the stack ends as a RangeError here too: either way the body is not a request.
    throw new BadRequestError(
      "malformed-otlp",
      `The body is not a protobuf ExportLogsServiceRequest (${describe(error)})`,
    );
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

function decodeJson(body: Uint8Array, maxRecords: number): ExportLogsRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(body));
  } catch {
    throw new BadRequestError("malformed-json", "The body is not well-formed UTF-8 JSON");
  }
  if (!isObject(parsed)) {
    throw new BadRequestError("malformed-otlp", "The body is not an ExportLogsServiceRequest");
  }
  checkRecordCount(hexIdsToBytes(parsed), maxRecords);
  try {
    // fromObject takes OTLP/JSON's lowerCamelCase keys, enums as integers, 64-bit integers as
    // strings or numbers and bytes as base64; unknown members are ignored, as OTLP requires.
    return ExportLogsServiceRequest.fromObject(parsed) as unknown as ExportLogsRequest;
  } catch (error) {
    throw new BadRequestError(
      "malformed-otlp",
      `The body is not an OTLP/JSON ExportLogsServiceRequest (${describe(error)})`,
    );
  }
}

/**
 * OTLP/JSON writes trace and span ids in hex, where protobuf JSON would use base64: they are
 * turned into bytes before protobufjs reads the request. Returns the number of log records.
 */
function hexIdsToBytes(request: Record<string, unknown>): number {
  let count = 0;
  for (const resource of arrayOf(request.resourceLogs)) {
    if (!isObject(resource)) continue;
    for (const scope of arrayOf(resource.scopeLogs)) {
      if (!isObject(scope)) continue;
      for (const record of arrayOf(scope.logRecords)) {
        count += 1;
        if (!isObject(record)) continue;
        record.traceId = hexId(record.traceId, 16, "traceId");
        record.spanId = hexId(record.spanId, 8, "spanId");
      }
    }
  }
  return count;
}

function hexId(value: unknown, bytes: number, name: string): Uint8Array | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string" || !new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`).test(value)) {
    throw new BadRequestError(
      "malformed-otlp",
      `${name} must be ${bytes * 2} hexadecimal digits in OTLP/JSON`,
    );
  }
  return Buffer.from(value, "hex");
}

function resourceFields(resourceLogs: ResourceLogs, limits: OtlpFieldLimits) {
  const resource = resourceLogs.resource ?? undefined;
  return compact({
    attributes: mapOf(resource?.attributes, limits, "resource attribute"),
    dropped_attributes_count: positive(resource?.droppedAttributesCount),
    schema_url: boundedString(resourceLogs.schemaUrl, limits, "resource schema_url"),
  });
}

function scopeFields(scopeLogs: ScopeLogs, limits: OtlpFieldLimits) {
  const scope = scopeLogs.scope ?? undefined;
  return compact({
    name: boundedString(scope?.name, limits, "scope name"),
    version: boundedString(scope?.version, limits, "scope version"),
    attributes: mapOf(scope?.attributes, limits, "scope attribute"),
    dropped_attributes_count: positive(scope?.droppedAttributesCount),
    schema_url: boundedString(scopeLogs.schemaUrl, limits, "scope schema_url"),
  });
}

function toRecord(
  logRecord: LogRecord,
  resource: OtlpFields["resource"],
  scope: OtlpFields["scope"],
  position: OtlpPosition,
  tenantId: string,
  limits: OtlpLimits,
): OtlpLogRecord {
  const text = bodyText(logRecord.body ?? undefined, limits);
  const otlp: OtlpFields = compact({
    severity_number: severityNumber(logRecord.severityNumber),
    severity_text: boundedString(logRecord.severityText, limits, "severity_text"),
    time: isoNanos(logRecord.timeUnixNano),
    observed_time: isoNanos(logRecord.observedTimeUnixNano),
    trace_id: protobufId(logRecord.traceId, 16, "trace_id"),
    span_id: protobufId(logRecord.spanId, 8, "span_id"),
    flags: positive(logRecord.flags),
    event_name: boundedString(logRecord.eventName, limits, "event_name"),
    attributes: mapOf(logRecord.attributes, limits, "attribute"),
    dropped_attributes_count: positive(logRecord.droppedAttributesCount),
    resource: resource && Object.keys(resource).length > 0 ? resource : undefined,
    scope: scope && Object.keys(scope).length > 0 ? scope : undefined,
  });
  const uid = otlp.attributes?.[LOG_RECORD_UID];
  const log_id = isLogId(uid) ? uid : deriveOtlpLogId(tenantId, position, text, otlp);
  return { log_id, text, otlp, position };
}

function bodyText(body: AnyValue | undefined, limits: OtlpLimits): string {
  const value = body === undefined ? undefined : plainValue(body, 0, limits, "body");
  if (value === undefined || value === null || value === "") {
    throw new RecordRejected("the log record has no body");
  }
  const text = typeof value === "string" ? value : JSON.stringify(value);
  // Code points, as MAX_TEXT_CHARS counts them in the pipeline's schema.
  if (text.length > limits.maxTextChars && [...text].length > limits.maxTextChars) {
    throw new RecordRejected(`the body is longer than ${limits.maxTextChars} characters`);
  }
  if (text.includes("\u0000")) throw new RecordRejected("the body contains a NUL character");
  if (!text.isWellFormed()) {
    throw new RecordRejected("the body contains an unpaired UTF-16 surrogate");
  }
  return text;
}

/**
 * A log id for a record without a usable `log.record.uid`: the same tenant, position and
 * content give the same id, so an exporter that resends a batch (after a 503 or a lost
 * answer) names the same documents, and the worker's duplicate check keeps one of each.
 */
export function deriveOtlpLogId(
  tenantId: string,
  position: OtlpPosition,
  text: string,
  otlp: OtlpFields,
): string {
  const digest = createHash("sha256")
    .update(
      JSON.stringify([
        "otlp-log-v1",
        tenantId,
        position.resource,
        position.scope,
        position.record,
        text,
        otlp,
      ]),
    )
    .digest("hex");
  return `otlp-${digest.slice(0, 40)}`;
}

function mapOf(
  keyValues: KeyValue[] | undefined,
  limits: OtlpFieldLimits,
  what: string,
): OtlpMap | undefined {
  if (keyValues === undefined || keyValues.length === 0) return undefined;
  return plainMap(keyValues, 1, limits, what);
}

function plainMap(
  keyValues: KeyValue[],
  depth: number,
  limits: OtlpFieldLimits,
  what: string,
): OtlpMap {
  if (depth > limits.maxAttributeDepth) {
    throw new RecordRejected(`${what} nests deeper than ${limits.maxAttributeDepth} levels`);
  }
  if (keyValues.length > limits.maxAttributeEntries) {
    throw new RecordRejected(
      `${what} map has ${keyValues.length} entries; the limit is ${limits.maxAttributeEntries}`,
    );
  }
  const entries = new Map<string, OtlpValue>();
  for (const { key = "", value } of keyValues) {
    if (key.length > limits.maxKeyChars || !isStorableKey(key)) {
      throw new RecordRejected(
        `${what} key is empty, longer than ${limits.maxKeyChars} characters or of the ` +
          `reserved form __name__`,
      );
    }
    // Keys are unique by the specification; where a sender repeats one, the first stands.
    if (entries.has(key)) continue;
    entries.set(key, plainValue(value ?? undefined, depth, limits, what) ?? null);
  }
  // fromEntries defines own properties, so a "__proto__" key is data, not a prototype.
  return Object.fromEntries(entries);
}

/** An AnyValue as plain JSON; undefined for an empty AnyValue. `depth`: enclosing levels. */
function plainValue(
  value: AnyValue | undefined,
  depth: number,
  limits: OtlpFieldLimits,
  what: string,
): OtlpValue | undefined {
  if (value === undefined) return undefined;
  if (has(value, "stringValue")) return boundedString(value.stringValue, limits, what) ?? "";
  if (has(value, "boolValue")) return value.boolValue === true;
  if (has(value, "intValue")) return plainInteger(value.intValue);
  if (has(value, "doubleValue")) {
    const number = Number(value.doubleValue);
    // JSON has no NaN or infinities; they are kept as the words OTLP/JSON uses for them.
    return Number.isFinite(number) ? number : String(number);
  }
  if (has(value, "bytesValue")) {
    const base64 = Buffer.from(value.bytesValue ?? []).toString("base64");
    return boundedString(base64, limits, what) ?? "";
  }
  if (has(value, "arrayValue")) {
    const values = value.arrayValue?.values ?? [];
    if (depth + 1 > limits.maxAttributeDepth) {
      throw new RecordRejected(`${what} nests deeper than ${limits.maxAttributeDepth} levels`);
    }
    if (values.length > limits.maxAttributeEntries) {
      throw new RecordRejected(
        `${what} array has ${values.length} entries; the limit is ${limits.maxAttributeEntries}`,
      );
    }
    return values.map((item) => plainValue(item, depth + 1, limits, what) ?? null);
  }
  if (has(value, "kvlistValue")) {
    return plainMap(value.kvlistValue?.values ?? [], depth + 1, limits, what);
  }
  return undefined;
}

/** protobufjs sets only the member of a oneof that was sent; defaults live on the prototype. */
function has<K extends keyof AnyValue>(value: AnyValue, key: K): boolean {
  return Object.prototype.hasOwnProperty.call(value, key) && value[key] !== null;
}

function plainInteger(value: Long | number | undefined): number | string {
  if (value === undefined) return 0;
  if (typeof value === "number") return value;
  const number = value.toNumber();
  // Beyond 2^53 a JSON number would silently change the value; the exact digits are kept.
  return Number.isSafeInteger(number) ? number : value.toString();
}

function boundedString(
  value: string | undefined,
  limits: OtlpFieldLimits,
  what: string,
): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (value.length > limits.maxStringChars) {
    throw new RecordRejected(`${what} is longer than ${limits.maxStringChars} characters`);
  }
  return value;
}

/** SeverityNumber is an enum: values past 24 are kept as sent (OTLP asks receivers to keep
 * unknown enum values); a negative one cannot be a severity. */
function severityNumber(value: number | undefined): number | undefined {
  if (value !== undefined && value < 0) {
    throw new RecordRejected("severity_number is negative");
  }
  return positive(value);
}

function positive(value: number | undefined): number | undefined {
  return value === undefined || value === 0 ? undefined : value;
}

const NANOS_PER_SECOND = 1_000_000_000n;

/** Unix nanoseconds as ISO 8601 UTC with all nine digits; absent for 0 ("unknown"). */
function isoNanos(value: Long | number | undefined): string | undefined {
  if (value === undefined) return undefined;
  const nanos = BigInt(value.toString());
  if (nanos <= 0n) return undefined;
  const seconds = nanos / NANOS_PER_SECOND;
  const fraction = (nanos % NANOS_PER_SECOND).toString().padStart(9, "0");
  // A fixed64 reaches year 2554 at most, so the year always has four digits.
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${fraction}Z`;
}

function protobufId(value: Uint8Array | undefined, bytes: number, name: string) {
  if (value === undefined || value.length === 0) return undefined;
  if (value.length !== bytes) {
    throw new BadRequestError("malformed-otlp", `${name} must be ${bytes} bytes`);
  }
  // All zeros is the specification's "invalid id", which means none.
  return value.every((byte) => byte === 0) ? undefined : Buffer.from(value).toString("hex");
}

function compact<T extends object>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as T;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function arrayOf(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 200 ? `${message.slice(0, 200)}...` : message;
}

/** The partial_success message: how many were refused and why, bounded in length. */
export function summariseRejections(rejected: readonly OtlpRejection[]): string {
  if (rejected.length === 0) return "";
  const shown = rejected.slice(0, 5).map(({ position, reason }) => {
    const { resource, scope, record } = position;
    return `resource_logs[${resource}].scope_logs[${scope}].log_records[${record}]: ${reason}`;
  });
  const more = rejected.length > shown.length ? `; and ${rejected.length - shown.length} more` : "";
  return `${rejected.length} log record(s) rejected: ${shown.join("; ")}${more}`;
}

export interface ExportLogsResult {
  readonly rejectedLogRecords: number;
  readonly errorMessage?: string;
}

/**
 * The body of a 200 answer. partial_success is set only when some records were refused (a
 * fully accepted request answers an empty message, as the specification asks).
 */
export function encodeExportLogsResponse(
  result: ExportLogsResult,
  mediaType: OtlpMediaType,
): Buffer {
  const partial =
    result.rejectedLogRecords > 0 || (result.errorMessage ?? "") !== ""
      ? {
          partialSuccess: {
            rejectedLogRecords: result.rejectedLogRecords,
            errorMessage: result.errorMessage ?? "",
          },
        }
      : {};
  return encodeMessage(ExportLogsServiceResponse, partial, mediaType);
}

/** gRPC codes for the Status body, by HTTP status (google.rpc.Code). */
const RPC_CODE_BY_STATUS: Readonly<Record<number, number>> = {
  400: 3, // INVALID_ARGUMENT
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  404: 5, // NOT_FOUND
  405: 12, // UNIMPLEMENTED
  413: 3, // INVALID_ARGUMENT: the same request can never succeed
  415: 3,
  429: 8, // RESOURCE_EXHAUSTED
  502: 14, // UNAVAILABLE
  503: 14,
  504: 4, // DEADLINE_EXCEEDED
};

/** A google.rpc.Status body, encoded like the request. */
export function encodeRpcStatus(
  status: { readonly code: number; readonly message: string },
  mediaType: OtlpMediaType,
): Buffer {
  return encodeMessage(RpcStatus, { code: status.code, message: status.message }, mediaType);
}

export interface OtlpErrorResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/**
 * The failure answer of `/v1/logs`: the status and headers the edge's one error mapping gives
 * (Retry-After included), with a google.rpc.Status body instead of problem+json, because
 * OTLP exporters read that. Only 429, 502, 503 and 504 make an exporter retry.
 */
export function toOtlpErrorResponse(error: unknown, mediaType: OtlpMediaType): OtlpErrorResponse {
  const problem = toProblemResponse(error);
  const headers = { ...problem.headers };
  delete headers["Content-Type"];
  const message =
    error instanceof IngestError
      ? error.message
      : "The server failed to handle the request; it is safe to retry.";
  const retryable = OTLP_RETRYABLE_STATUSES.has(problem.status);
  return {
    status: problem.status,
    headers: { ...headers, "Content-Type": mediaType },
    body: encodeRpcStatus(
      {
        code: RPC_CODE_BY_STATUS[problem.status] ?? (retryable ? 14 : 13),
        message:
          error instanceof ServiceUnavailableError
            ? `${message} (retry the same request: records are identified by their content and position, so a resent batch is stored once)`
            : message,
      },
      mediaType,
    ),
  };
}

function encodeMessage(
  type: protobuf.Type,
  fields: Record<string, unknown>,
  mediaType: OtlpMediaType,
): Buffer {
  const message = type.fromObject(fields);
  if (mediaType === OTLP_PROTOBUF) return Buffer.from(type.encode(message).finish());
  // OTLP/JSON: lowerCamelCase keys, 64-bit integers as decimal strings, defaults omitted.
  return Buffer.from(JSON.stringify(type.toObject(message, { longs: String })));
}

/**
 * Redacts every string value of a record's OTLP fields with `redact` (attribute values at any
 * depth, severity text, event name, scope name and version, schema URLs) and adds up the
 * counts. Keys, ids and timestamps are left alone: keys are names chosen by the
 * instrumentation (rewriting them could merge two), the others are validated hex and ISO forms.
 */
export function redactOtlpFields(
  fields: OtlpFields,
  redact: (text: string) => RedactionResult,
): { readonly fields: OtlpFields; readonly counts: RedactionCounts } {
  const counts = noRedactions();
  const text = <T extends string | undefined>(value: T): T => {
    if (value === undefined) return value;
    const result = redact(value);
    for (const kind of Object.keys(counts) as (keyof RedactionCounts)[]) {
      counts[kind] += result.counts[kind];
    }
    return result.text as T;
  };
  const value = (item: OtlpValue): OtlpValue => {
    if (typeof item === "string") return text(item);
    if (Array.isArray(item)) return item.map(value);
    if (item !== null && typeof item === "object") return entries(item);
    return item;
  };
  const entries = (attributes: OtlpMap): OtlpMap =>
    Object.fromEntries(Object.entries(attributes).map(([key, item]) => [key, value(item)]));
  const map = (attributes: OtlpMap | undefined) =>
    attributes === undefined ? undefined : entries(attributes);

  const redacted: OtlpFields = compact({
    ...fields,
    severity_text: text(fields.severity_text),
    event_name: text(fields.event_name),
    attributes: map(fields.attributes),
    resource:
      fields.resource &&
      compact({
        ...fields.resource,
        attributes: map(fields.resource.attributes),
        schema_url: text(fields.resource.schema_url),
      }),
    scope:
      fields.scope &&
      compact({
        ...fields.scope,
        name: text(fields.scope.name),
        version: text(fields.scope.version),
        attributes: map(fields.scope.attributes),
        schema_url: text(fields.scope.schema_url),
      }),
  });
  return { fields: redacted, counts };
}

/**
 * One schema per payload: each is the ajv validator and, through JSONSchemaType,
 * is checked by the compiler against the TypeScript type it validates, so the two
 * cannot drift. Validators are compiled once per instance.
 */
import Ajv, { type JSONSchemaType, type ValidateFunction } from "ajv";
import { LOG_ID_PATTERN, TENANT_ID_PATTERN } from "./ids";
import { otlpFieldsSchema, type OtlpFields } from "./otlp-schema";

/** Text may not contain NUL; everything else printable or not is the tenant's data. */
const TEXT_PATTERN = "^[^\\u0000]*$";
const ISO_UTC_TIMESTAMP = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?Z$";

/** The body of a `Content-Type: application/json` upload. */
export interface JsonUpload {
  tenant_id?: string;
  log_id?: string;
  text: string;
}

export type RecordSource = "json_upload" | "text_upload" | "otlp";

/** One record as it travels through Pub/Sub. */
export interface PipelineRecord {
  tenant_id: string;
  log_id: string;
  source: RecordSource;
  text: string;
  /** When ingest accepted the record (ISO 8601, UTC). */
  received_at: string;
  /** What an OTLP LogRecord carries besides its body (source "otlp" only). */
  otlp?: OtlpFields;
}

/** The Pub/Sub message body: one or more records, written one document each. */
export interface PipelineMessage {
  v: 1;
  records: PipelineRecord[];
}

/**
 * The message as the worker first reads it: the envelope only. Each record is then validated
 * on its own, so one record that fails its schema never fails its neighbours.
 */
export interface PipelineEnvelope {
  v: 1;
  records: unknown[];
}

/** Most records one message carries: a Firestore batch write takes at most 500 operations. */
export const MAX_RECORDS_PER_MESSAGE = 500;

export interface SchemaLimits {
  readonly maxTextChars: number;
}

export function jsonUploadSchema(limits: SchemaLimits): JSONSchemaType<JsonUpload> {
  return {
    $id: "JsonUpload",
    type: "object",
    additionalProperties: false,
    required: ["text"],
    properties: {
      tenant_id: { type: "string", pattern: TENANT_ID_PATTERN, nullable: true },
      log_id: { type: "string", pattern: LOG_ID_PATTERN, nullable: true },
      text: { type: "string", minLength: 1, maxLength: limits.maxTextChars, pattern: TEXT_PATTERN },
    },
  };
}

export function pipelineRecordSchema(limits: SchemaLimits): JSONSchemaType<PipelineRecord> {
  return {
    $id: "PipelineRecord",
    type: "object",
    additionalProperties: false,
    required: ["tenant_id", "log_id", "source", "text", "received_at"],
    properties: {
      tenant_id: { type: "string", pattern: TENANT_ID_PATTERN },
      log_id: { type: "string", pattern: LOG_ID_PATTERN },
      source: { type: "string", enum: ["json_upload", "text_upload", "otlp"] },
      text: {
        type: "string",
        minLength: 1,
        maxLength: limits.maxTextChars,
        pattern: TEXT_PATTERN,
      },
      received_at: { type: "string", pattern: ISO_UTC_TIMESTAMP },
      // The attribute values are recursive, which JSONSchemaType cannot express.
      otlp: { ...otlpFieldsSchema(), nullable: true } as never,
    },
  };
}

export const pipelineEnvelopeSchema: JSONSchemaType<PipelineEnvelope> = {
  $id: "PipelineEnvelope",
  type: "object",
  additionalProperties: false,
  required: ["v", "records"],
  properties: {
    v: { type: "integer", const: 1 },
    // Any item: each record meets pipelineRecordSchema on its own.
    records: { type: "array", minItems: 1, maxItems: MAX_RECORDS_PER_MESSAGE, items: {} as never },
  },
};

export interface Validators {
  readonly jsonUpload: ValidateFunction<JsonUpload>;
  readonly pipelineEnvelope: ValidateFunction<PipelineEnvelope>;
  readonly pipelineRecord: ValidateFunction<PipelineRecord>;
}

/**
 * A validator of a stored settings document, compiled on first use (only the instances and CLIs
 * that read one pay for it), and its last errors as "path message" lines for a log or a CLI.
 */
export function lazyValidator<T>(schema: JSONSchemaType<T>): {
  readonly validate: (value: unknown) => value is T;
  readonly errors: () => string[];
} {
  let compiled: ValidateFunction<T> | undefined;
  return {
    validate: (value: unknown): value is T =>
      (compiled ??= new Ajv({ allErrors: true, strict: true }).compile(schema))(value),
    errors: () =>
      (compiled?.errors ?? []).map(
        (error) => `${error.instancePath || "/"} ${error.message ?? error.keyword}`,
      ),
  };
}

export function compileValidators(limits: SchemaLimits): Validators {
  // allErrors: a client fixing a rejected record sees every problem at once.
  const ajv = new Ajv({ allErrors: true, strict: true });
  return {
    jsonUpload: ajv.compile(jsonUploadSchema(limits)),
    pipelineEnvelope: ajv.compile(pipelineEnvelopeSchema),
    pipelineRecord: ajv.compile(pipelineRecordSchema(limits)),
  };
}

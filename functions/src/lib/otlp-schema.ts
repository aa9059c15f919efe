/**
 * The `otlp` object a pipeline record carries when it came from OTLP/HTTP (`POST /v1/logs`):
 * what a LogRecord says besides its body, converted to plain JSON values. Its TypeScript type
 * and its ajv schema live side by side; the schema repeats the decoder's bounds (otlp.ts), so
 * the worker refuses what ingest would never have produced.
 */
import Ajv, { type JSONSchemaType, type ValidateFunction } from "ajv";

/** An OTLP AnyValue as plain JSON: kvlists become objects, bytes become base64 strings. */
export type OtlpValue = string | number | boolean | null | OtlpValue[] | OtlpMap;
export interface OtlpMap {
  [key: string]: OtlpValue;
}

export interface OtlpResourceFields {
  attributes?: OtlpMap;
  dropped_attributes_count?: number;
  schema_url?: string;
}

export interface OtlpScopeFields {
  name?: string;
  version?: string;
  attributes?: OtlpMap;
  dropped_attributes_count?: number;
  schema_url?: string;
}

/** Absent members were absent (or the proto3 default) in the request. */
export interface OtlpFields {
  /** SeverityNumber (1-24 are defined; other values are kept as sent). */
  severity_number?: number;
  severity_text?: string;
  /** time_unix_nano as ISO 8601 UTC with nanoseconds, e.g. 2026-12-02T03:04:05.123456789Z. */
  time?: string;
  observed_time?: string;
  /** Lower-case hex: 32 digits for a trace id, 16 for a span id. */
  trace_id?: string;
  span_id?: string;
  flags?: number;
  event_name?: string;
  attributes?: OtlpMap;
  dropped_attributes_count?: number;
  resource?: OtlpResourceFields;
  scope?: OtlpScopeFields;
}

/** Bounds of what one record's OTLP fields may hold; the decoder rejects a record past them. */
export interface OtlpFieldLimits {
  /** Nesting of kvlist and array values inside one attribute (1 = scalars only). */
  readonly maxAttributeDepth: number;
  /** Entries of one attribute map or array, at any level. */
  readonly maxAttributeEntries: number;
  /** Characters of one attribute key. */
  readonly maxKeyChars: number;
  /** Characters of one string value (attribute values, names, severity text, URLs). */
  readonly maxStringChars: number;
}

export const DEFAULT_OTLP_FIELD_LIMITS: OtlpFieldLimits = Object.freeze({
  // Firestore nests maps and arrays at most 20 deep; the record's own members take 3 of them.
  maxAttributeDepth: 8,
  maxAttributeEntries: 128,
  maxKeyChars: 256,
  maxStringChars: 8_192,
});

const ISO_UTC_NANOS = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{9}Z$";
/**
 * Firestore refuses empty field names and reserves `__name__`-shaped ones; a document with
 * such a key could never be written, so no attribute key may take those shapes.
 */
export const STORABLE_KEY_PATTERN = "^(?!__.*__$).+$";
const STORABLE_KEY = new RegExp(STORABLE_KEY_PATTERN, "s");

export function isStorableKey(key: string): boolean {
  return STORABLE_KEY.test(key);
}

/**
 * The schema's $id. Its references name it, so the schema can be embedded as it is (keeping its
 * $id) as the `otlp` property of the pipeline record schema, or added with `ajv.addSchema`.
 */
export const OTLP_FIELDS_SCHEMA_ID = "OtlpFields";

/**
 * The schema of `OtlpFields`. Attribute values are recursive, which JSONSchemaType cannot
 * express; they are checked by `$defs` built one per level (so the depth bound is the
 * schema's too), and that one member is typed by hand.
 */
export function otlpFieldsSchema(
  limits: OtlpFieldLimits = DEFAULT_OTLP_FIELD_LIMITS,
): JSONSchemaType<OtlpFields> {
  const text = { type: "string", maxLength: limits.maxStringChars, nullable: true } as const;
  const count = { type: "integer", minimum: 0, maximum: 4_294_967_295, nullable: true } as const;
  const map = {
    $ref: `${OTLP_FIELDS_SCHEMA_ID}#/$defs/map${limits.maxAttributeDepth}`,
  } as unknown as JSONSchemaType<OtlpMap> & { nullable: true };
  return {
    $id: OTLP_FIELDS_SCHEMA_ID,
    type: "object",
    additionalProperties: false,
    required: [],
    $defs: attributeDefs(limits) as JSONSchemaType<OtlpFields>["$defs"],
    properties: {
      severity_number: { type: "integer", minimum: 0, maximum: 2_147_483_647, nullable: true },
      severity_text: text,
      time: { type: "string", pattern: ISO_UTC_NANOS, nullable: true },
      observed_time: { type: "string", pattern: ISO_UTC_NANOS, nullable: true },
      trace_id: { type: "string", pattern: "^[0-9a-f]{32}$", nullable: true },
      span_id: { type: "string", pattern: "^[0-9a-f]{16}$", nullable: true },
      flags: count,
      event_name: text,
      attributes: map,
      dropped_attributes_count: count,
      resource: {
        type: "object",
        additionalProperties: false,
        required: [],
        nullable: true,
        properties: { attributes: map, dropped_attributes_count: count, schema_url: text },
      },
      scope: {
        type: "object",
        additionalProperties: false,
        required: [],
        nullable: true,
        properties: {
          name: text,
          version: text,
          attributes: map,
          dropped_attributes_count: count,
          schema_url: text,
        },
      },
    },
  };
}

/** `map<d>`: a map whose values nest at most d levels; `value<d>` likewise. */
function attributeDefs(limits: OtlpFieldLimits): Record<string, object> {
  const defs: Record<string, object> = {
    value0: {
      anyOf: [
        { type: "string", maxLength: limits.maxStringChars },
        { type: "number" },
        { type: "boolean" },
        { type: "null" },
      ],
    },
  };
  for (let depth = 1; depth <= limits.maxAttributeDepth; depth += 1) {
    defs[`map${depth}`] = {
      type: "object",
      maxProperties: limits.maxAttributeEntries,
      propertyNames: { maxLength: limits.maxKeyChars, pattern: STORABLE_KEY_PATTERN },
      additionalProperties: { $ref: `${OTLP_FIELDS_SCHEMA_ID}#/$defs/value${depth - 1}` },
    };
    defs[`value${depth}`] = {
      anyOf: [
        { $ref: `${OTLP_FIELDS_SCHEMA_ID}#/$defs/value0` },
        {
          type: "array",
          maxItems: limits.maxAttributeEntries,
          items: { $ref: `${OTLP_FIELDS_SCHEMA_ID}#/$defs/value${depth - 1}` },
        },
        { $ref: `${OTLP_FIELDS_SCHEMA_ID}#/$defs/map${depth}` },
      ],
    };
  }
  return defs;
}

/** A validator of `OtlpFields` alone, compiled as the pipeline's validators are. */
export function compileOtlpFieldsValidator(
  limits: OtlpFieldLimits = DEFAULT_OTLP_FIELD_LIMITS,
): ValidateFunction<OtlpFields> {
  return new Ajv({ allErrors: true, strict: true }).compile(otlpFieldsSchema(limits));
}

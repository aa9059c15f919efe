import { expect } from "chai";
import path from "node:path";
import protobuf from "protobufjs";
// The functions' ajv (8), as the pipeline schema compiles with it; the root one is older.
import Ajv from "../../../functions/node_modules/ajv";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { JsonLogsSerializer, ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  InMemoryLogRecordExporter,
  LoggerProvider,
  SimpleLogRecordProcessor,
  type ReadableLogRecord,
} from "@opentelemetry/sdk-logs";
import {
  BadRequestError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnauthorizedError,
} from "../../../functions/src/lib/errors";
import { isLogId } from "../../../functions/src/lib/ids";
import {
  DEFAULT_OTLP_LIMITS,
  OTLP_JSON,
  OTLP_PROTOBUF,
  decodeExportLogsRequest,
  encodeExportLogsResponse,
  otlpMediaType,
  redactOtlpFields,
  summariseRejections,
  toOtlpErrorResponse,
  type OtlpMediaType,
} from "../../../functions/src/lib/otlp";
import {
  compileOtlpFieldsValidator,
  otlpFieldsSchema,
} from "../../../functions/src/lib/otlp-schema";
import { redact } from "../../../functions/src/lib/redaction";

const TENANT = "acme";
const TRACE_ID = "5b8efff798038103d269b633813fc60c";
const SPAN_ID = "eee19b7ec3c1b174";

/** Log records as the OpenTelemetry JS SDK hands them to an exporter. */
async function sdkRecords(
  emit: (logger: ReturnType<LoggerProvider["getLogger"]>) => void,
): Promise<ReadableLogRecord[]> {
  const exporter = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": "checkout", "host.name": "web-1" }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  emit(provider.getLogger("checkout.payments", "2.1.0"));
  await provider.forceFlush();
  return exporter.getFinishedLogRecords();
}

/** The request bytes the SDK's own OTLP serializers produce (what its exporters send). */
function serialize(records: ReadableLogRecord[], mediaType: OtlpMediaType): Uint8Array {
  const bytes =
    mediaType === OTLP_PROTOBUF
      ? ProtobufLogsSerializer.serializeRequest(records)
      : JsonLogsSerializer.serializeRequest(records);
  if (bytes === undefined) throw new Error("the serializer produced nothing");
  return bytes;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** An OTLP/JSON request with one resource and one scope holding `logRecords`. */
function jsonRequest(logRecords: unknown[], resourceAttributes: unknown[] = []) {
  return {
    resourceLogs: [
      {
        resource: { attributes: resourceAttributes },
        scopeLogs: [{ scope: { name: "scope" }, logRecords }],
      },
    ],
  };
}

const decodeJson = (request: unknown, limits = DEFAULT_OTLP_LIMITS) =>
  decodeExportLogsRequest(json(request), OTLP_JSON, TENANT, limits);

function expectThrows(run: () => unknown, type: new (...args: never[]) => Error): Error {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(type);
    return error as Error;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}

describe("otlp", () => {
  describe("decodeExportLogsRequest on requests of the OpenTelemetry JS SDK", () => {
    let records: ReadableLogRecord[];
    before(async () => {
      records = await sdkRecords((logger) => {
        logger.emit({
          body: "card declined for jane@example.com",
          severityNumber: SeverityNumber.WARN,
          severityText: "WARN",
          timestamp: new Date("2026-12-02T03:04:05.678Z"),
          eventName: "payment.declined",
          attributes: { "http.status_code": 402, retry: false, tags: ["a", "b"], ratio: 0.5 },
          context: undefined,
        });
        logger.emit({ body: { order: 42, items: [{ sku: "x-1" }] } });
      });
    });

    for (const mediaType of [OTLP_PROTOBUF, OTLP_JSON] as const) {
      it(`keeps body, severity, times, attributes, resource and scope (${mediaType})`, () => {
        const decoded = decodeExportLogsRequest(serialize(records, mediaType), mediaType, TENANT);
        expect(decoded.rejected).to.deep.equal([]);
        expect(decoded.records).to.have.length(2);
        const [first, second] = decoded.records;
        expect(first?.text).to.equal("card declined for jane@example.com");
        expect(first?.otlp).to.deep.include({
          severity_number: 13,
          severity_text: "WARN",
          time: "2026-12-02T03:04:05.678000000Z",
          event_name: "payment.declined",
          attributes: { "http.status_code": 402, retry: false, tags: ["a", "b"], ratio: 0.5 },
          resource: { attributes: { "service.name": "checkout", "host.name": "web-1" } },
          scope: { name: "checkout.payments", version: "2.1.0" },
        });
        expect(first?.otlp.observed_time).to.match(/^\d{4}-\d\d-\d\dT[\d:]{8}\.\d{9}Z$/);
        expect(first?.position).to.deep.equal({ resource: 0, scope: 0, record: 0 });
        // A structured body becomes the record's text as JSON.
        expect(JSON.parse(second?.text ?? "")).to.deep.equal({
          order: 42,
          items: [{ sku: "x-1" }],
        });
        expect(second?.position).to.deep.equal({ resource: 0, scope: 0, record: 1 });
        for (const record of decoded.records) expect(isLogId(record.log_id)).to.equal(true);
      });
    }

    it("gives the same records and ids whether the batch came as protobuf or JSON", () => {
      const fromProtobuf = decodeExportLogsRequest(
        serialize(records, OTLP_PROTOBUF),
        OTLP_PROTOBUF,
        TENANT,
      );
      const fromJson = decodeExportLogsRequest(serialize(records, OTLP_JSON), OTLP_JSON, TENANT);
      expect(fromJson).to.deep.equal(fromProtobuf);
    });

    it("derives the same ids when a batch is resent, and other ids for another tenant", () => {
      const body = serialize(records, OTLP_PROTOBUF);
      const ids = (tenant: string) =>
        decodeExportLogsRequest(body, OTLP_PROTOBUF, tenant).records.map((r) => r.log_id);
      expect(ids(TENANT)).to.deep.equal(ids(TENANT));
      expect(new Set(ids(TENANT)).size).to.equal(2);
      expect(ids("other")).to.not.have.members(ids(TENANT));
    });

    it("produces fields the otlp schema accepts", () => {
      const validate = compileOtlpFieldsValidator();
      const decoded = decodeExportLogsRequest(serialize(records, OTLP_JSON), OTLP_JSON, TENANT);
      for (const record of decoded.records) {
        expect(validate(record.otlp), JSON.stringify(validate.errors)).to.equal(true);
      }
    });

    it("has a schema that works embedded as a property of another schema", () => {
      const validate = new Ajv({ allErrors: true, strict: true }).compile({
        $id: "Envelope",
        type: "object",
        additionalProperties: false,
        required: ["text"],
        properties: { text: { type: "string" }, otlp: otlpFieldsSchema() },
      });
      expect(validate({ text: "x", otlp: { attributes: { a: { b: [1, "c"] } } } })).to.equal(true);
      expect(validate({ text: "x", otlp: { attributes: { __a__: 1 } } })).to.equal(false);
    });

    it("has a schema that refuses what the decoder never produces", () => {
      const validate = compileOtlpFieldsValidator();
      let deep: Record<string, unknown> = { leaf: "x" };
      for (let level = 1; level < DEFAULT_OTLP_LIMITS.maxAttributeDepth; level += 1) {
        deep = { k: deep };
      }
      expect(validate({ attributes: deep }), JSON.stringify(validate.errors)).to.equal(true);
      const refused = [
        { attributes: { k: deep } },
        { attributes: { __name__: "x" } },
        { attributes: { "": "x" } },
        { resource: { attributes: { s: "y".repeat(DEFAULT_OTLP_LIMITS.maxStringChars + 1) } } },
        { trace_id: "ABC" },
        { time: "2026-12-02T03:04:05Z" },
        { text: "not an otlp member" },
      ];
      for (const fields of refused) {
        expect(validate(fields), JSON.stringify(fields).slice(0, 80)).to.equal(false);
      }
    });
  });

  describe("decodeExportLogsRequest on OTLP/JSON as the specification writes it", () => {
    it("reads hex ids, int64 strings, enums as integers and every AnyValue kind", () => {
      const decoded = decodeJson(
        jsonRequest([
          {
            timeUnixNano: "1796180645123456789",
            observedTimeUnixNano: 1796180645123456800,
            severityNumber: 17,
            traceId: TRACE_ID.toUpperCase(),
            spanId: SPAN_ID,
            flags: 1,
            body: {
              kvlistValue: {
                values: [
                  { key: "big", value: { intValue: "9007199254740993" } },
                  { key: "small", value: { intValue: "-7" } },
                  { key: "raw", value: { bytesValue: "AQID" } },
                  { key: "nan", value: { doubleValue: "NaN" } },
                  { key: "list", value: { arrayValue: { values: [{ boolValue: true }, {}] } } },
                ],
              },
            },
            attributes: [
              { key: "constructor", value: { stringValue: "data, not a prototype" } },
              { key: "dup", value: { stringValue: "first" } },
              { key: "dup", value: { stringValue: "second" } },
            ],
            unknownMember: "ignored, as OTLP/JSON receivers must",
          },
        ]),
      );
      expect(decoded.rejected).to.deep.equal([]);
      const [record] = decoded.records;
      expect(record?.otlp).to.deep.include({
        time: "2026-12-02T03:04:05.123456789Z",
        severity_number: 17,
        trace_id: TRACE_ID,
        span_id: SPAN_ID,
        flags: 1,
      });
      expect(JSON.parse(record?.text ?? "")).to.deep.equal({
        big: "9007199254740993",
        small: -7,
        raw: "AQID",
        nan: "NaN",
        list: [true, null],
      });
      const attributes = record?.otlp.attributes ?? {};
      expect(Object.getPrototypeOf(attributes)).to.equal(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(attributes, "constructor")?.value).to.equal(
        "data, not a prototype",
      );
      expect(attributes.dup).to.equal("first");
    });

    it("takes log.record.uid as the log id when it is a valid one, and derives one otherwise", () => {
      const uid = "01JDZ8W7Q0Y3K6ZV7J3H5T8M2N";
      const decoded = decodeJson(
        jsonRequest([
          {
            body: { stringValue: "a" },
            attributes: [{ key: "log.record.uid", value: { stringValue: uid } }],
          },
          {
            body: { stringValue: "b" },
            attributes: [{ key: "log.record.uid", value: { stringValue: "no/slash" } }],
          },
          {
            body: { stringValue: "c" },
            attributes: [{ key: "log.record.uid", value: { intValue: 5 } }],
          },
        ]),
      );
      expect(decoded.records.map((r) => r.log_id)[0]).to.equal(uid);
      expect(decoded.records[1]?.log_id).to.match(/^otlp-[0-9a-f]{40}$/);
      expect(decoded.records[2]?.log_id).to.match(/^otlp-[0-9a-f]{40}$/);
    });

    it("tells identical records at different positions apart", () => {
      const same = { body: { stringValue: "retrying" }, timeUnixNano: "1796180645000000000" };
      const ids = decodeJson(jsonRequest([same, same])).records.map((r) => r.log_id);
      expect(new Set(ids).size).to.equal(2);
    });

    it("refuses records without a body alone, with a reason for partial_success", () => {
      const decoded = decodeJson(
        jsonRequest([
          { body: { stringValue: "kept" } },
          { severityText: "INFO" },
          { body: { stringValue: "" } },
          { body: {} },
        ]),
      );
      expect(decoded.records.map((r) => r.text)).to.deep.equal(["kept"]);
      expect(decoded.rejected).to.have.length(3);
      expect(decoded.rejected[0]).to.deep.equal({
        position: { resource: 0, scope: 0, record: 1 },
        reason: "the log record has no body",
      });
      expect(summariseRejections(decoded.rejected)).to.match(
        /^3 log record\(s\) rejected: resource_logs\[0\]\.scope_logs\[0\]\.log_records\[1\]: the log record has no body/,
      );
    });

    it("refuses records whose text is too long, has NUL or lone surrogates, or a negative severity", () => {
      const limits = { ...DEFAULT_OTLP_LIMITS, maxTextChars: 10 };
      const decoded = decodeJson(
        jsonRequest([
          { body: { stringValue: "x".repeat(11) } },
          { body: { stringValue: "a\u0000b" } },
          { body: { stringValue: "\ud800" } },
          { body: { stringValue: "ok" }, severityNumber: -3 },
          { body: { stringValue: "x".repeat(10) } },
        ]),
        limits,
      );
      expect(decoded.records).to.have.length(1);
      expect(decoded.rejected.map((r) => r.reason)).to.deep.equal([
        "the body is longer than 10 characters",
        "the body contains a NUL character",
        "the body contains an unpaired UTF-16 surrogate",
        "severity_number is negative",
      ]);
    });
  });

  describe("bounds against hostile bodies", () => {
    const nested = (depth: number): unknown =>
      depth === 0
        ? { stringValue: "leaf" }
        : { kvlistValue: { values: [{ key: "k", value: nested(depth - 1) }] } };
    const withAttribute = (value: unknown, key = "a") => ({
      body: { stringValue: "x" },
      attributes: [{ key, value }],
    });

    it("refuses a record whose attributes nest deeper than the limit, keeps one at it", () => {
      const limit = DEFAULT_OTLP_LIMITS.maxAttributeDepth;
      const decoded = decodeJson(
        jsonRequest([withAttribute(nested(limit - 1)), withAttribute(nested(limit))]),
      );
      expect(decoded.records.map((r) => r.position.record)).to.deep.equal([0]);
      expect(decoded.rejected[0]?.reason).to.equal(`attribute nests deeper than ${limit} levels`);
    });

    it("refuses over-large maps and arrays, long strings and unstorable keys", () => {
      const many = DEFAULT_OTLP_LIMITS.maxAttributeEntries + 1;
      const decoded = decodeJson(
        jsonRequest([
          {
            body: { stringValue: "x" },
            attributes: Array.from({ length: many }, (_, i) => ({ key: `k${i}`, value: {} })),
          },
          withAttribute({ arrayValue: { values: Array.from({ length: many }, () => ({})) } }),
          withAttribute({ stringValue: "y".repeat(DEFAULT_OTLP_LIMITS.maxStringChars + 1) }),
          withAttribute({ stringValue: "v" }, "__name__"),
          withAttribute({ stringValue: "v" }, ""),
          withAttribute({ stringValue: "v" }, "k".repeat(DEFAULT_OTLP_LIMITS.maxKeyChars + 1)),
        ]),
      );
      expect(decoded.records).to.deep.equal([]);
      expect(decoded.rejected.map((r) => r.reason)).to.deep.equal([
        `attribute map has ${many} entries; the limit is ${many - 1}`,
        `attribute array has ${many} entries; the limit is ${many - 1}`,
        `attribute is longer than ${DEFAULT_OTLP_LIMITS.maxStringChars} characters`,
        ...Array(3).fill(
          `attribute key is empty, longer than ${DEFAULT_OTLP_LIMITS.maxKeyChars} characters ` +
            "or of the reserved form __name__",
        ),
      ]);
    });

    it("refuses every record of a resource whose attributes are past the limits", () => {
      const request = jsonRequest(
        [{ body: { stringValue: "a" } }, { body: { stringValue: "b" } }],
        [{ key: "deep", value: nested(DEFAULT_OTLP_LIMITS.maxAttributeDepth) }],
      );
      const decoded = decodeJson(request);
      expect(decoded.records).to.deep.equal([]);
      expect(decoded.rejected.map((r) => r.reason)).to.deep.equal([
        `resource attribute nests deeper than ${DEFAULT_OTLP_LIMITS.maxAttributeDepth} levels`,
        `resource attribute nests deeper than ${DEFAULT_OTLP_LIMITS.maxAttributeDepth} levels`,
      ]);
    });

    it("answers 413 for more records than the limit, before decoding them (protobuf and JSON)", async () => {
      const limits = { ...DEFAULT_OTLP_LIMITS, maxRecords: 3 };
      const records = await sdkRecords((logger) => {
        for (let i = 0; i < 4; i += 1) logger.emit({ body: `line ${i}` });
      });
      for (const mediaType of [OTLP_PROTOBUF, OTLP_JSON] as const) {
        const error = expectThrows(
          () => decodeExportLogsRequest(serialize(records, mediaType), mediaType, TENANT, limits),
          PayloadTooLargeError,
        );
        expect(error.message).to.equal("The request has 4 log records; the limit is 3");
      }
      const three = await sdkRecords((logger) => {
        for (let i = 0; i < 3; i += 1) logger.emit({ body: `line ${i}` });
      });
      const body = serialize(three, OTLP_PROTOBUF);
      expect(decodeExportLogsRequest(body, OTLP_PROTOBUF, TENANT, limits).records).to.have.length(
        3,
      );
    });

    it("answers 400 for bodies that are not an ExportLogsServiceRequest", async () => {
      const valid = serialize(
        await sdkRecords((logger) => logger.emit({ body: "hello" })),
        OTLP_PROTOBUF,
      );
      const bodies: [string, Uint8Array, OtlpMediaType][] = [
        ["truncated protobuf", valid.subarray(0, valid.length - 3), OTLP_PROTOBUF],
        ["random bytes", Buffer.from("ffffffffffffffffffff", "hex"), OTLP_PROTOBUF],
        ["a string where a message is", Buffer.from([0x0a, 0x02, 0x12, 0x05]), OTLP_PROTOBUF],
        ["malformed JSON", Buffer.from('{"resourceLogs": ['), OTLP_JSON],
        ["JSON that is not an object", Buffer.from("[1,2]"), OTLP_JSON],
        ["a number where an array is", json({ resourceLogs: 5 }), OTLP_JSON],
        ["bad hex trace id", json(jsonRequest([{ traceId: "zz" }])), OTLP_JSON],
        ["short span id", json(jsonRequest([{ spanId: "abcd" }])), OTLP_JSON],
        ["invalid base64 bytes", json(jsonRequest([{ body: { bytesValue: "%%%" } }])), OTLP_JSON],
        ["invalid UTF-8", Buffer.from([0x7b, 0xff, 0x7d]), OTLP_JSON],
      ];
      for (const [name, body, mediaType] of bodies) {
        const error = expectThrows(
          () => decodeExportLogsRequest(body, mediaType, TENANT),
          BadRequestError,
        );
        expect(error.message, name).to.be.a("string").and.not.equal("");
      }
    });

    it("answers 400, without exhausting the stack, for a protobuf nested thousands deep", () => {
      // AnyValue{kvlist_value{values[KeyValue{value: AnyValue{...}}]}}, 3,000 levels.
      const lengthDelimited = (field: number, payload: Buffer) => {
        const writer = protobuf.Writer.create();
        writer.uint32((field << 3) | 2).bytes(payload);
        return Buffer.from(writer.finish());
      };
      let value = Buffer.alloc(0);
      for (let level = 0; level < 3_000; level += 1) {
        value = lengthDelimited(6, lengthDelimited(1, lengthDelimited(2, value)));
      }
      const record = lengthDelimited(5, value);
      const body = lengthDelimited(1, lengthDelimited(2, lengthDelimited(2, record)));
      expectThrows(() => decodeExportLogsRequest(body, OTLP_PROTOBUF, TENANT), BadRequestError);
    });
  });

  describe("answers", () => {
    it("recognises the two OTLP media types only", () => {
      expect(otlpMediaType("application/x-protobuf")).to.equal(OTLP_PROTOBUF);
      expect(otlpMediaType("application/json")).to.equal(OTLP_JSON);
      expect(otlpMediaType("application/x-ndjson")).to.equal(undefined);
      expect(otlpMediaType(undefined)).to.equal(undefined);
    });

    it("encodes partial_success so the SDK's deserializers read it (protobuf and JSON)", () => {
      const result = { rejectedLogRecords: 2, errorMessage: "2 log record(s) rejected" };
      const fromProtobuf = ProtobufLogsSerializer.deserializeResponse(
        encodeExportLogsResponse(result, OTLP_PROTOBUF),
      );
      expect(Number(fromProtobuf.partialSuccess?.rejectedLogRecords)).to.equal(2);
      expect(fromProtobuf.partialSuccess?.errorMessage).to.equal(result.errorMessage);
      const fromJson = JsonLogsSerializer.deserializeResponse(
        encodeExportLogsResponse(result, OTLP_JSON),
      );
      expect(fromJson).to.deep.equal({
        partialSuccess: { rejectedLogRecords: "2", errorMessage: result.errorMessage },
      });
    });

    it("leaves partial_success out when every record was accepted", () => {
      const accepted = { rejectedLogRecords: 0 };
      expect(encodeExportLogsResponse(accepted, OTLP_PROTOBUF)).to.have.length(0);
      expect(encodeExportLogsResponse(accepted, OTLP_JSON).toString()).to.equal("{}");
    });

    it("answers failures with a google.rpc.Status encoded like the request", () => {
      const statusType = protobuf
        .loadSync(path.join(__dirname, "../../../functions/proto/google/rpc/status.proto"))
        .lookupType("google.rpc.Status");

      const unavailable = toOtlpErrorResponse(
        new ServiceUnavailableError("publish-unavailable", "The queue did not confirm", 5),
        OTLP_PROTOBUF,
      );
      expect(unavailable.status).to.equal(503);
      expect(unavailable.headers).to.deep.equal({
        "Retry-After": "5",
        "Content-Type": OTLP_PROTOBUF,
      });
      const status = statusType.toObject(statusType.decode(unavailable.body));
      expect(status.code).to.equal(14);
      expect(status.message).to.match(/^The queue did not confirm \(retry the same request/);

      const unauthorized = toOtlpErrorResponse(new UnauthorizedError("No API key"), OTLP_JSON);
      expect(unauthorized.status).to.equal(401);
      expect(unauthorized.headers["Content-Type"]).to.equal(OTLP_JSON);
      expect(unauthorized.headers["WWW-Authenticate"]).to.equal('Bearer realm="ingest"');
      expect(JSON.parse(unauthorized.body.toString())).to.deep.equal({
        code: 16,
        message: "No API key",
      });

      const unexpected = toOtlpErrorResponse(new Error("internal detail"), OTLP_JSON);
      expect(unexpected.status).to.equal(500);
      expect(unexpected.body.toString()).to.not.include("internal detail");
    });
  });

  describe("redactOtlpFields", () => {
    it("redacts every string value at any depth, keeps keys and ids, and adds up counts", () => {
      const { fields, counts } = redactOtlpFields(
        {
          severity_text: "WARN",
          trace_id: TRACE_ID,
          event_name: "signup jane@example.com",
          attributes: {
            "user.email": "jane@example.com",
            nested: { phones: ["555-0199", 7], ok: true },
          },
          resource: { attributes: { owner: "ops@example.com" }, schema_url: "https://x.test/1" },
          scope: { name: "scope", version: "1.0.0", attributes: { ssn: "123-45-6789" } },
        },
        redact,
      );
      expect(fields).to.deep.equal({
        severity_text: "WARN",
        trace_id: TRACE_ID,
        event_name: "signup [REDACTED]",
        attributes: { "user.email": "[REDACTED]", nested: { phones: ["[REDACTED]", 7], ok: true } },
        resource: { attributes: { owner: "[REDACTED]" }, schema_url: "https://x.test/1" },
        scope: { name: "scope", version: "1.0.0", attributes: { ssn: "[REDACTED]" } },
      });
      expect(counts).to.deep.equal({ email: 3, card: 0, ssn: 1, phone: 1, credential: 0, ip: 0 });
    });
  });
});

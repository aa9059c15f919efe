/**
 * The bodies the load engine sends on the batch paths, and how each answer says which records
 * were accepted: NDJSON, gzip NDJSON, and OTLP/HTTP protobuf as an OpenTelemetry JS exporter
 * sends it (the SDK's own serializer), each record's log id in `log.record.uid`.
 */
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, type ReadableLogRecord } from "@opentelemetry/sdk-logs";

export type BatchEncoding = "ndjson" | "ndjson+gzip" | "otlp-protobuf";

export type BatchRecord = Readonly<{ log_id: string; text: string }>;
/** A tenant without an API key names itself in each line. */
type BatchTenant = Readonly<{ tenantId: string; apiKey: string | null }>;

export interface EncodedRequest {
  /** Relative to the ingest URL ("" for the URL itself). */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array;
}

export interface BatchVerdict {
  /** Positions (0-based) of the records the answer accepted. */
  readonly accepted: ReadonlySet<number>;
  /** The answer does not say what became of the others: they may or may not be stored. */
  readonly othersInDoubt: boolean;
}

export interface BatchEncoder {
  /** What the phase table calls the path. */
  readonly label: string;
  encode(records: readonly BatchRecord[], tenant: BatchTenant): Promise<EncodedRequest>;
  verdict(status: number, answer: Uint8Array, records: number): BatchVerdict;
}

const LOG_RECORD_UID = "log.record.uid";

function ndjson(records: readonly BatchRecord[], tenant: BatchTenant): Uint8Array {
  const lines = records.map(({ log_id, text }) =>
    JSON.stringify(
      tenant.apiKey === null ? { tenant_id: tenant.tenantId, log_id, text } : { log_id, text },
    ),
  );
  return Buffer.from(`${lines.join("\n")}\n`);
}

function authorization(tenant: BatchTenant): Record<string, string> {
  return tenant.apiKey === null ? {} : { authorization: `Bearer ${tenant.apiKey}` };
}

/** The batch answer lists each line's fate; a 5xx without it may have published any line. */
function ndjsonVerdict(status: number, answer: Uint8Array, records: number): BatchVerdict {
  let results: readonly { line: number; status: string }[] = [];
  try {
    const parsed = JSON.parse(Buffer.from(answer).toString("utf8")) as { results?: typeof results };
    results = parsed.results ?? [];
  } catch {
    // Not the batch answer: no line's fate is known.
  }
  return {
    accepted: new Set(
      results.filter((result) => result.status === "accepted").map((result) => result.line - 1),
    ),
    // A 503 lists its unconfirmed lines as in_doubt: they may or may not be stored.
    othersInDoubt:
      results.some((result) => result.status === "in_doubt") ||
      (results.length !== records && status >= 500),
  };
}

const gzipAsync = promisify(gzip);

/** SDK log records, collected as a processor receives them (synchronously, on emit). */
const emitted: ReadableLogRecord[] = [];
const logger = new LoggerProvider({
  resource: resourceFromAttributes({ "service.name": "rdp-bench" }),
  processors: [
    {
      onEmit: (record) => void emitted.push(record),
      forceFlush: async () => {},
      shutdown: async () => {},
    },
  ],
}).getLogger("rdp-bench");

export function otlpLogRecords(records: readonly BatchRecord[]): ReadableLogRecord[] {
  for (const { log_id, text } of records) {
    logger.emit({
      body: text,
      severityNumber: SeverityNumber.INFO,
      attributes: { [LOG_RECORD_UID]: log_id },
    });
  }
  return emitted.splice(0);
}

/**
 * 200 accepts every record unless partial_success rejected some, and then it does not say
 * which: all of them are in doubt. 503 and the other 5xx confirm nothing.
 */
function otlpVerdict(status: number, answer: Uint8Array, records: number): BatchVerdict {
  if (status === 200) {
    const rejected = Number(
      ProtobufLogsSerializer.deserializeResponse(answer).partialSuccess?.rejectedLogRecords ?? 0,
    );
    if (rejected === 0) {
      return {
        accepted: new Set(Array.from({ length: records }, (_, i) => i)),
        othersInDoubt: false,
      };
    }
  }
  return { accepted: new Set(), othersInDoubt: status === 200 || status >= 500 };
}

export const BATCH_ENCODINGS: Readonly<Record<BatchEncoding, BatchEncoder>> = {
  ndjson: {
    label: "NDJSON",
    encode: async (records, tenant) => ({
      path: "",
      headers: { "content-type": "application/x-ndjson", ...authorization(tenant) },
      body: ndjson(records, tenant),
    }),
    verdict: ndjsonVerdict,
  },
  "ndjson+gzip": {
    label: "gzip NDJSON",
    encode: async (records, tenant) => {
      const { headers, body } = await BATCH_ENCODINGS.ndjson.encode(records, tenant);
      const gzipped = await gzipAsync(body);
      return { path: "", headers: { ...headers, "content-encoding": "gzip" }, body: gzipped };
    },
    verdict: ndjsonVerdict,
  },
  "otlp-protobuf": {
    label: "OTLP protobuf",
    encode: async (records, tenant) => {
      if (tenant.apiKey === null) throw new Error("OTLP requests name their tenant by API key");
      const body = ProtobufLogsSerializer.serializeRequest(otlpLogRecords(records));
      if (body === undefined) throw new Error("the OTLP serializer produced nothing");
      return {
        path: "v1/logs",
        headers: { "content-type": "application/x-protobuf", ...authorization(tenant) },
        body,
      };
    },
    verdict: otlpVerdict,
  },
};

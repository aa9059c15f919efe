/**
 * The OpenTelemetry JS SDK as a tenant's service runs it: @opentelemetry/sdk-logs with the
 * OTLP/HTTP exporters (JSON and protobuf, gzip on and off) sending to `<ingest>/v1/logs` with
 * the API key header. Every emitted record must end as exactly one document, also when an
 * answer is lost: a proxy in front of ingest lets the first export through and then answers
 * 503 + Retry-After in its place (what the client sees when a publish is not confirmed), so
 * the SDK resends a batch ingest has already accepted.
 */
import { expect } from "chai";
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Firestore } from "@google-cloud/firestore";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { OTLPLogExporter as JsonLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPLogExporter as ProtobufLogExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type LogRecordExporter,
  type ReadableLogRecord,
} from "@opentelemetry/sdk-logs";
import { createFirestoreApiKeys } from "../../../functions/src/lib/api-keys";
import { RUN_ID, pollUntil, sharedTestStack, type TestStack } from "../support/stack";

type ExporterConfig = NonNullable<ConstructorParameters<typeof JsonLogExporter>[0]>;
type Compression = NonNullable<ExporterConfig["compression"]>;

interface Variant {
  readonly name: string;
  readonly encoding: "json" | "protobuf";
  readonly compression: "gzip" | "none";
}

const VARIANTS: readonly Variant[] = [
  { name: "json", encoding: "json", compression: "none" },
  { name: "json-gzip", encoding: "json", compression: "gzip" },
  { name: "protobuf", encoding: "protobuf", compression: "none" },
  { name: "protobuf-gzip", encoding: "protobuf", compression: "gzip" },
];
const RECORDS_PER_VARIANT = 120;

/** Passes every call to the real exporter and keeps what each export ended with. */
class ObservedExporter implements LogRecordExporter {
  readonly results: ExportResult[] = [];
  constructor(private readonly inner: LogRecordExporter) {}
  export(logs: ReadableLogRecord[], done: (result: ExportResult) => void): void {
    this.inner.export(logs, (result) => {
      this.results.push(result);
      done(result);
    });
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
  failures(): string[] {
    return this.results
      .filter((result) => result.code !== ExportResultCode.SUCCESS)
      .map((result) => String(result.error ?? "failed without an error"));
  }
}

/**
 * Forwards every request to ingest; for the first `loseAnswers` requests it throws ingest's
 * answer away and answers 503 with Retry-After instead. Records each request body's hash.
 */
const HOP_BY_HOP = new Set([
  "host",
  "connection",
  "keep-alive",
  "content-length",
  "transfer-encoding",
]);

async function startAnswerLosingProxy(target: string, loseAnswers: number) {
  const bodies: string[] = [];
  const answers: number[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const body = Buffer.concat(chunks);
      bodies.push(createHash("sha256").update(body).digest("hex"));
      forward(request, body)
        .then(({ status, contentType, payload }) => {
          answers.push(status);
          if (bodies.length <= loseAnswers) {
            response.writeHead(503, { "Retry-After": "1", "Content-Type": "text/plain" });
            response.end("answer lost in transit");
            return;
          }
          response.writeHead(status, contentType ? { "Content-Type": contentType } : {});
          response.end(payload);
        })
        .catch((error: unknown) => {
          response.writeHead(502, { "Content-Type": "text/plain" });
          response.end(`proxy could not reach ingest: ${String(error)}`);
        });
    });
  });
  const forward = async (request: http.IncomingMessage, body: Buffer) => {
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      if (typeof value === "string" && !HOP_BY_HOP.has(name)) headers.set(name, value);
    }
    const upstream = await fetch(new URL(request.url ?? "/", target), {
      method: request.method,
      headers,
      body,
    });
    return {
      status: upstream.status,
      contentType: upstream.headers.get("content-type"),
      payload: Buffer.from(await upstream.arrayBuffer()),
    };
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    bodies,
    answers,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function exporterFor(variant: Variant, baseUrl: string, apiKey: string): LogRecordExporter {
  const config: ExporterConfig = {
    url: new URL("v1/logs", baseUrl).href,
    headers: { Authorization: `Bearer ${apiKey}` },
    compression: variant.compression as Compression,
    timeoutMillis: 15_000,
  };
  return variant.encoding === "json"
    ? new JsonLogExporter(config)
    : new ProtobufLogExporter(config);
}

/** Emits `count` records through a BatchLogRecordProcessor and flushes them all out. */
async function emitRecords(
  exporter: ObservedExporter,
  service: string,
  bodies: readonly string[],
): Promise<void> {
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": service }),
    processors: [
      new BatchLogRecordProcessor({
        exporter,
        maxExportBatchSize: 50,
        scheduledDelayMillis: 100,
        exportTimeoutMillis: 30_000,
      }),
    ],
  });
  const logger = provider.getLogger("rdp.clients.test", "1.0.0");
  bodies.forEach((body, index) =>
    logger.emit({
      body,
      severityNumber: SeverityNumber.INFO,
      severityText: "INFO",
      attributes: { "test.index": index, "user.email": "jane@example.com" },
    }),
  );
  await provider.forceFlush();
  await provider.shutdown();
}

describe("OpenTelemetry JS SDK exporting logs to /v1/logs", function () {
  this.timeout(240_000);
  let stack: TestStack;
  let firestore: Firestore;

  before(async () => {
    stack = await sharedTestStack();
    firestore = new Firestore({ projectId: stack.project });
  });
  after(async () => {
    await firestore?.terminate();
  });

  /** Waits for the tenant's documents to reach `expected`, then checks they stay there. */
  async function storedDocuments(tenant: string, expected: number) {
    const collection = firestore.collection(`tenants/${tenant}/processed_logs`);
    await pollUntil(
      async (note) => {
        const stored = (await collection.count().get()).data().count;
        note(`${stored} of ${expected} stored`);
        return stored >= expected ? stored : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `${expected} documents of ${tenant}` },
    );
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    return (await collection.get()).docs.map((doc) => doc.data());
  }

  function expectEachBodyOnce(docs: FirebaseFirestore.DocumentData[], bodies: string[]) {
    expect(docs).to.have.length(bodies.length);
    expect(docs.map((doc) => doc.original_text)).to.have.members(bodies);
    for (const doc of docs) {
      expect(doc.modified_data).to.equal(doc.original_text);
      // The record's OTLP fields are kept, their strings redacted like the text.
      expect(doc.otlp?.severity_number).to.equal(SeverityNumber.INFO);
      expect(doc.otlp?.attributes?.["user.email"]).to.equal("[REDACTED]");
      expect(doc.otlp?.resource?.attributes?.["service.name"]).to.be.a("string");
    }
  }

  for (const variant of VARIANTS) {
    it(`stores every record once (${variant.encoding}, compression ${variant.compression})`, async () => {
      const tenant = `otel-${variant.name}-${RUN_ID}`;
      const apiKey = (await createFirestoreApiKeys(firestore).create(tenant, "otel test")).key;
      const exporter = new ObservedExporter(exporterFor(variant, stack.ingestUrl, apiKey));
      const bodies = Array.from(
        { length: RECORDS_PER_VARIANT },
        (_, i) => `otel ${variant.name} record ${i} of run ${RUN_ID}`,
      );
      await emitRecords(exporter, `svc-${variant.name}`, bodies);
      expect(exporter.failures(), "exports the SDK reported as failed").to.deep.equal([]);
      expectEachBodyOnce(await storedDocuments(tenant, bodies.length), bodies);
    });
  }

  for (const encoding of ["json", "protobuf"] as const) {
    it(`stores a batch once when the SDK resends it after a 503 (${encoding}, gzip)`, async () => {
      const tenant = `otel-retry-${encoding}-${RUN_ID}`;
      const apiKey = (await createFirestoreApiKeys(firestore).create(tenant, "otel test")).key;
      const proxy = await startAnswerLosingProxy(stack.ingestUrl, 1);
      try {
        const variant = { name: `retry-${encoding}`, encoding, compression: "gzip" } as const;
        const exporter = new ObservedExporter(exporterFor(variant, proxy.url, apiKey));
        const bodies = Array.from({ length: 30 }, (_, i) => `retried ${encoding} ${i} ${RUN_ID}`);
        await emitRecords(exporter, `svc-retry-${encoding}`, bodies);

        expect(exporter.failures(), "exports the SDK reported as failed").to.deep.equal([]);
        // The SDK resent the very batch whose answer was lost, and ingest took both copies.
        expect(proxy.bodies.length).to.be.at.least(2);
        expect(proxy.bodies[1]).to.equal(proxy.bodies[0]);
        expect(proxy.answers.slice(0, 2)).to.deep.equal([200, 200]);
        expectEachBodyOnce(await storedDocuments(tenant, bodies.length), bodies);
      } finally {
        await proxy.close();
      }
    });
  }
});

import { expect } from "chai";
import type { Authenticator } from "../../../functions/src/lib/auth";
import { openDemoAuthenticator } from "../../../functions/src/lib/auth";
import { loadConfig } from "../../../functions/src/lib/config";
import { PublishUnconfirmedError, UnauthorizedError } from "../../../functions/src/lib/errors";
import type { IngestRequest } from "../../../functions/src/lib/http";
import { handleIngest, type IngestDeps } from "../../../functions/src/lib/ingest-handler";
import { createLogger } from "../../../functions/src/lib/logger";
import { createCoalescingQueue } from "../../../functions/src/lib/coalescer";
import { boundedPublisher } from "../../../functions/src/lib/publisher";
import { compileValidators, type PipelineMessage } from "../../../functions/src/lib/schema";

interface Published {
  readonly message: PipelineMessage;
  readonly attributes: Record<string, string>;
}

function setup(options: { env?: Record<string, string>; authenticator?: Authenticator } = {}) {
  const config = loadConfig({ MAX_BODY_BYTES: "2048", MAX_TEXT_CHARS: "1000", ...options.env });
  const published: Published[] = [];
  const logs: string[] = [];
  let failPublish: "reject" | "hang" | undefined;
  const deps: IngestDeps = {
    config,
    validators: compileValidators(config),
    authenticator: options.authenticator ?? openDemoAuthenticator,
    logger: createLogger((line) => logs.push(line), config),
    now: () => new Date("2026-11-28T12:00:00.000Z"),
    queue: createCoalescingQueue(
      boundedPublisher(async (data, attributes) => {
        if (failPublish === "reject") throw new Error("UNAVAILABLE");
        if (failPublish === "hang") return new Promise<string>(() => undefined);
        published.push({ message: JSON.parse(data.toString("utf8")), attributes });
        return String(published.length);
      }, config),
      { windowMs: 0, maxMessageBytes: config.maxMessageBytes },
    ),
  };
  return {
    deps,
    published,
    logs,
    failPublishWith: (mode: "reject" | "hang") => (failPublish = mode),
  };
}

function post(
  body: string | Buffer,
  contentType: string | null = "application/json",
  headers: Record<string, string> = {},
): IngestRequest {
  return {
    method: "POST",
    path: "/",
    headers: { ...(contentType === null ? {} : { "content-type": contentType }), ...headers },
    rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8"),
  };
}

const json = (value: unknown) => post(JSON.stringify(value));

describe("handleIngest", () => {
  it("accepts the brief's JSON record and publishes it unchanged", async () => {
    const { deps, published } = setup();
    const response = await handleIngest(
      json({ tenant_id: "acme", log_id: "123", text: "User 555-0199 accessed system" }),
      deps,
    );
    expect(response.status).to.equal(202);
    expect(response.body).to.deep.equal({
      status: "accepted",
      tenant_id: "acme",
      log_id: "123",
      message_id: "1",
    });
    expect(published).to.deep.equal([
      {
        message: {
          v: 1,
          records: [
            {
              tenant_id: "acme",
              log_id: "123",
              source: "json_upload",
              text: "User 555-0199 accessed system",
              received_at: "2026-11-28T12:00:00.000Z",
            },
          ],
        },
        attributes: { tenant_id: "acme", log_id: "123" },
      },
    ]);
  });

  it("normalises a text upload into the same message, ids from headers", async () => {
    const { deps, published } = setup();
    const response = await handleIngest(
      post("line one\nline two", "text/plain; charset=UTF-8", {
        "x-tenant-id": "acme",
        "x-log-id": "t-1",
      }),
      deps,
    );
    expect(response.status).to.equal(202);
    expect(published[0]?.message.records[0]).to.deep.include({
      tenant_id: "acme",
      log_id: "t-1",
      source: "text_upload",
      text: "line one\nline two",
    });
  });

  it("assigns a random log id when none is sent and returns it", async () => {
    const { deps, published } = setup();
    const first = await handleIngest(json({ tenant_id: "acme", text: "a" }), deps);
    const second = await handleIngest(post("b", "text/plain", { "x-tenant-id": "acme" }), deps);
    const ids = [first, second].map((response) => (response.body as { log_id: string }).log_id);
    expect(ids[0]).to.match(/^[0-9a-f-]{36}$/);
    expect(ids[0]).to.not.equal(ids[1]);
    expect(published.map((entry) => entry.message.records[0]?.log_id)).to.deep.equal(ids);
  });

  it("serves /ingest as well as the root path", async () => {
    const { deps } = setup();
    const request = { ...json({ tenant_id: "acme", text: "x" }), path: "/ingest" };
    expect((await handleIngest(request, deps)).status).to.equal(202);
  });

  interface RejectionCase {
    readonly name: string;
    readonly request: IngestRequest;
    readonly status: number;
    readonly detail: RegExp;
    readonly header?: [string, string];
  }
  const rejections: RejectionCase[] = [
    {
      name: "malformed JSON",
      request: post("{not json"),
      status: 400,
      detail: /not well-formed JSON/,
    },
    { name: "an empty JSON body", request: post(""), status: 400, detail: /body is empty/ },
    { name: "a JSON array", request: json([{ text: "x" }]), status: 400, detail: /must be object/ },
    { name: "a missing text", request: json({ tenant_id: "acme" }), status: 400, detail: /text/ },
    {
      name: "an empty text",
      request: json({ tenant_id: "acme", text: "" }),
      status: 400,
      detail: /text/,
    },
    {
      name: "a numeric text",
      request: json({ tenant_id: "acme", text: 5 }),
      status: 400,
      detail: /must be string/,
    },
    {
      name: "an extra field",
      request: json({ tenant_id: "acme", text: "x", admin: true }),
      status: 400,
      detail: /additional properties/,
    },
    {
      name: "a tenant id with a slash",
      request: json({ tenant_id: "a/b", text: "x" }),
      status: 400,
      detail: /tenant_id must be 1-63 characters/,
    },
    {
      name: "a reserved log id",
      request: json({ tenant_id: "acme", log_id: "__name__", text: "x" }),
      status: 400,
      detail: /log_id must be 1-128/,
    },
    {
      name: "a '..' log id",
      request: json({ tenant_id: "acme", log_id: "..", text: "x" }),
      status: 400,
      detail: /log_id/,
    },
    {
      name: "a NUL in the text",
      request: json({ tenant_id: "acme", text: "a\u0000b" }),
      status: 400,
      detail: /NUL/,
    },
    {
      name: "an unpaired surrogate",
      request: post('{"tenant_id":"acme","text":"\\ud800"}'),
      status: 400,
      detail: /surrogate/,
    },
    {
      name: "a missing tenant",
      request: json({ text: "x" }),
      status: 400,
      detail: /No tenant given/,
    },
    {
      name: "an empty text upload",
      request: post("", "text/plain", { "x-tenant-id": "acme" }),
      status: 400,
      detail: /text/,
    },
    {
      name: "a bad X-Tenant-ID",
      request: post("x", "text/plain", { "x-tenant-id": ".." }),
      status: 400,
      detail: /tenant_id/,
    },
    {
      name: "invalid UTF-8",
      request: post(Buffer.from([0x61, 0xff, 0x62]), "text/plain", { "x-tenant-id": "acme" }),
      status: 400,
      detail: /not valid UTF-8/,
    },
    {
      name: "a text over the limit",
      request: json({ tenant_id: "acme", text: "x".repeat(1001) }),
      status: 400,
      detail: /must NOT have more than 1000 characters/,
    },
    {
      name: "a body over the limit",
      request: post("x".repeat(2049), "text/plain", { "x-tenant-id": "acme" }),
      status: 413,
      detail: /2049 bytes; the limit is 2048/,
    },
    {
      name: "a missing content type",
      request: post("x", null),
      status: 415,
      detail: /Content-Type is missing/,
    },
    {
      name: "multipart",
      request: post("x", "multipart/form-data; boundary=x"),
      status: 415,
      detail: /multipart\/form-data is not accepted/,
      header: ["Accept-Post", "application/json, text/plain, application/x-ndjson"],
    },
    {
      name: "a non-UTF-8 charset",
      request: post("x", "text/plain; charset=latin1"),
      status: 415,
      detail: /charset=latin1/,
    },
    {
      name: "a GET",
      request: { ...json({ text: "x" }), method: "GET" },
      status: 405,
      detail: /GET is not supported/,
      header: ["Allow", "POST"],
    },
    {
      name: "another path",
      request: { ...json({ text: "x" }), path: "/admin" },
      status: 404,
      detail: /Nothing is served at \/admin/,
    },
  ];

  for (const { name, request, status, detail, header } of rejections) {
    it(`answers ${status} problem+json for ${name} and publishes nothing`, async () => {
      const { deps, published } = setup();
      const response = await handleIngest(request, deps);
      expect(response.status).to.equal(status);
      expect(response.headers["Content-Type"]).to.equal("application/problem+json");
      expect(response.body).to.include({ status });
      expect((response.body as { detail: string }).detail).to.match(detail);
      if (header) expect(response.headers[header[0]]).to.equal(header[1]);
      expect(published).to.have.length(0);
    });
  }

  it("lists every schema violation, with JSON pointers", async () => {
    const { deps } = setup();
    const response = await handleIngest(json({ tenant_id: "A B", log_id: "..", text: 1 }), deps);
    const errors = (response.body as { errors: { pointer: string }[] }).errors;
    expect(errors.map((error) => error.pointer)).to.include.members([
      "/tenant_id",
      "/log_id",
      "/text",
    ]);
  });

  it("answers 413 when escaping makes the queued message too large", async () => {
    const { deps, published } = setup({ env: { MAX_MESSAGE_BYTES: "1024" } });
    // Each ESC byte becomes six characters (\u001b) once encoded as JSON.
    const response = await handleIngest(
      post("\u001b".repeat(400), "text/plain", { "x-tenant-id": "acme" }),
      deps,
    );
    expect(response.status).to.equal(413);
    expect(published).to.have.length(0);
  });

  it("answers 503 with Retry-After, never 202, when the publish fails, naming the record", async () => {
    const { deps, failPublishWith, logs } = setup({ env: { RETRY_AFTER_SECONDS: "7" } });
    failPublishWith("reject");
    const response = await handleIngest(json({ tenant_id: "acme", text: "x" }), deps);
    expect(response.status).to.equal(503);
    expect(response.headers["Retry-After"]).to.equal("7");
    const body = response.body as Record<string, string>;
    expect(body).to.include({ type: "urn:rdp:problem:not-confirmed", outcome: "unknown" });
    expect(body.log_id).to.match(/^[0-9a-f-]{36}$/);
    // The outcome is unknown: the answer must not claim the record was refused.
    expect(body.detail).to.not.match(/not accepted/);
    expect(body.detail).to.include("may still be stored");
    expect(body.detail).to.include(`"log_id": "${body.log_id}"`);
    expect(JSON.parse(logs.at(-1) ?? "{}")).to.include({ status: 503, log_id: body.log_id });
  });

  it("tells a text upload whose publish was not confirmed to resend it with X-Log-ID", async () => {
    const { deps, failPublishWith } = setup();
    failPublishWith("reject");
    const response = await handleIngest(post("t", "text/plain", { "x-tenant-id": "acme" }), deps);
    const body = response.body as Record<string, string>;
    expect(body.detail).to.include(`X-Log-ID: ${body.log_id}`);
  });

  describe("with an Idempotency-Key", () => {
    const keyed = (key: string, text = "t") =>
      post(text, "text/plain", { "x-tenant-id": "acme", "idempotency-key": key });

    it("derives the log id from the tenant, the key and the line, the same on every resend", async () => {
      const { deps } = setup();
      const ids = [];
      for (const request of [keyed('"order-7"'), keyed('"order-7"'), keyed("order-7")]) {
        ids.push((await handleIngest(request, deps)).body as { log_id: string });
      }
      const [first] = ids;
      expect(first?.log_id).to.match(/^ik-[0-9a-f]{32}-1$/);
      expect(ids.map((id) => id.log_id)).to.deep.equal([
        first?.log_id,
        first?.log_id,
        first?.log_id,
      ]);
      const other = (await handleIngest(keyed('"order-8"'), deps)).body as { log_id: string };
      expect(other.log_id).to.not.equal(first?.log_id);
    });

    it("gives another tenant another id for the same key", async () => {
      const { deps } = setup();
      const acme = (await handleIngest(keyed('"k"'), deps)).body as { log_id: string };
      const globex = (
        await handleIngest(
          post("t", "text/plain", { "x-tenant-id": "globex", "idempotency-key": '"k"' }),
          deps,
        )
      ).body as { log_id: string };
      expect(acme.log_id).to.not.equal(globex.log_id);
    });

    it("keeps an explicit log id over the derived one", async () => {
      const { deps } = setup();
      const response = await handleIngest(
        post("t", "text/plain", {
          "x-tenant-id": "acme",
          "x-log-id": "mine",
          "idempotency-key": '"k"',
        }),
        deps,
      );
      expect(response.body).to.include({ log_id: "mine" });
    });

    it("tells the client to resend unchanged with the same key when unconfirmed", async () => {
      const { deps, failPublishWith } = setup();
      failPublishWith("reject");
      const response = await handleIngest(keyed('"k"'), deps);
      expect((response.body as { detail: string }).detail).to.include("same Idempotency-Key");
    });

    for (const bad of ['""', '"a\\b"', "x".repeat(256), '"tab\there"', "é"]) {
      it(`refuses the key ${JSON.stringify(bad).slice(0, 24)} with 400`, async () => {
        const { deps, published } = setup();
        const response = await handleIngest(keyed(bad), deps);
        expect(response.status).to.equal(400);
        expect(response.body).to.include({ type: "urn:rdp:problem:invalid-idempotency-key" });
        expect(published).to.have.length(0);
      });
    }
  });

  it("answers 503 within the publish timeout when Pub/Sub never acknowledges", async () => {
    const { deps, failPublishWith } = setup({ env: { PUBLISH_TIMEOUT_MS: "100" } });
    failPublishWith("hang");
    const started = Date.now();
    const response = await handleIngest(json({ tenant_id: "acme", text: "x" }), deps);
    expect(response.status).to.equal(503);
    expect(Date.now() - started).to.be.below(1500);
  });

  describe("with an authenticated caller", () => {
    const keyFor = (tenantId: string): Authenticator => ({
      checkPresented: () => undefined,
      authenticate: async (headers) => {
        if (headers.authorization !== "Bearer good")
          throw new UnauthorizedError("The API key is unknown or revoked");
        return { tenantId };
      },
    });

    it("takes the tenant from the key when the request names none", async () => {
      const { deps } = setup({ authenticator: keyFor("acme") });
      const response = await handleIngest(
        post("x", "text/plain", { authorization: "Bearer good" }),
        deps,
      );
      expect(response.status).to.equal(202);
      expect(response.body).to.include({ tenant_id: "acme" });
    });

    it("answers 403 when the request names another tenant", async () => {
      const { deps, published } = setup({ authenticator: keyFor("acme") });
      const request = post(JSON.stringify({ tenant_id: "globex", text: "x" }), "application/json", {
        authorization: "Bearer good",
      });
      const response = await handleIngest(request, deps);
      expect(response.status).to.equal(403);
      expect(published).to.have.length(0);
    });

    it("answers 401 with WWW-Authenticate before looking at the body", async () => {
      const { deps, published } = setup({ authenticator: keyFor("acme") });
      const response = await handleIngest(post("{broken", "application/json"), deps);
      expect(response.status).to.equal(401);
      expect(response.headers["WWW-Authenticate"]).to.match(/^Bearer/);
      expect(published).to.have.length(0);
    });
  });

  it("logs ids, never the record text", async () => {
    const { deps, logs } = setup({ env: { LOG_RECORD_SUCCESS: "true" } });
    await handleIngest(json({ tenant_id: "acme", log_id: "l-1", text: "secret-marker-42" }), deps);
    await handleIngest(json({ tenant_id: "acme", text: "secret-marker-42", extra: 1 }), deps);
    expect(logs).to.have.length(2);
    expect(logs.join("\n")).to.not.include("secret-marker-42");
    expect(JSON.parse(logs[0] ?? "{}")).to.include({
      severity: "DEBUG",
      message: "record accepted",
      tenant_id: "acme",
      log_id: "l-1",
    });
  });

  it("writes no line for an accepted record unless LOG_RECORD_SUCCESS is on, but counts it", async () => {
    const { deps, logs } = setup();
    const response = await handleIngest(
      json({ tenant_id: "acme", log_id: "l-1", text: "t" }),
      deps,
    );
    expect(response.status).to.equal(202);
    await handleIngest(json({ tenant_id: "acme", text: "t", extra: 1 }), deps);
    expect(logs.map((line) => (JSON.parse(line) as { message: string }).message)).to.deep.equal([
      "request rejected",
    ]);
    expect(deps.logger.takeRecordCounts()).to.deep.equal({ records_accepted: 1 });
    expect(deps.logger.takeRecordCounts()).to.deep.equal({});
  });
});

describe("handleIngest with an NDJSON batch", () => {
  const ndjson = (lines: readonly unknown[]) =>
    post(
      lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n") +
        "\n",
      "application/x-ndjson",
    );

  it("answers 202 only when every line was accepted", async () => {
    const { deps } = setup();
    const response = await handleIngest(
      ndjson([
        { tenant_id: "acme", text: "a" },
        { tenant_id: "acme", text: "b" },
      ]),
      deps,
    );
    expect(response.status).to.equal(202);
    expect(response.body).to.include({ accepted: 2, in_doubt: 0, rejected: 0 });
  });

  it("accepts valid lines, rejects invalid ones, says which is which, and answers 400", async () => {
    const { deps, published } = setup();
    const response = await handleIngest(
      ndjson([
        { tenant_id: "acme", log_id: "b-1", text: "first" },
        "{not json",
        { tenant_id: "acme", text: "" },
        "",
        { tenant_id: "acme", log_id: "b-4", text: "fourth" },
      ]),
      deps,
    );
    expect(response.status).to.equal(400);
    expect(response.headers["Content-Type"]).to.equal("application/problem+json");
    const body = response.body as {
      type: string;
      accepted: number;
      rejected: number;
      results: Record<string, unknown>[];
    };
    expect(body).to.include({
      type: "urn:rdp:problem:batch-partially-rejected",
      accepted: 2,
      in_doubt: 0,
      rejected: 2,
    });
    expect(body.results.map((result) => [result.line, result.status])).to.deep.equal([
      [1, "accepted"],
      [2, "rejected"],
      [3, "rejected"],
      [5, "accepted"],
    ]);
    expect(body.results[1]?.problem).to.include({ status: 400 });
    expect(body.results[2]?.problem).to.have.property("errors");
    // Both accepted records travel in one message.
    expect(published).to.have.length(1);
    expect(published[0]?.message.records.map((record) => record.log_id)).to.deep.equal([
      "b-1",
      "b-4",
    ]);
  });

  it("answers 400 problem+json, with the per-line results, when no line is accepted", async () => {
    const { deps, published } = setup();
    const response = await handleIngest(ndjson([{ text: 1 }, "[]"]), deps);
    expect(response.status).to.equal(400);
    expect(response.headers["Content-Type"]).to.equal("application/problem+json");
    expect(response.body).to.include({ accepted: 0, rejected: 2 });
    expect(published).to.have.length(0);
  });

  it("splits accepted records over messages that each stay under the size limit", async () => {
    const { deps, published } = setup({ env: { MAX_MESSAGE_BYTES: "1024" } });
    const lines = Array.from({ length: 10 }, (_, index) => ({
      tenant_id: "acme",
      log_id: `s-${index}`,
      text: "x".repeat(300),
    }));
    const response = await handleIngest(ndjson(lines), deps);
    expect(response.status).to.equal(202);
    expect(published.length).to.be.greaterThan(1);
    expect(
      published.flatMap((entry) => entry.message.records.map((record) => record.log_id)),
    ).to.deep.equal(lines.map((line) => line.log_id));
    for (const entry of published)
      expect(Buffer.byteLength(JSON.stringify(entry.message))).to.be.at.most(1024);
  });

  it("marks unconfirmed lines in doubt with their log ids, and answers 503", async () => {
    const { deps, failPublishWith } = setup();
    failPublishWith("reject");
    const response = await handleIngest(
      ndjson([
        { tenant_id: "acme", text: "x" },
        { tenant_id: "acme", log_id: "kept", text: "y" },
      ]),
      deps,
    );
    expect(response.status).to.equal(503);
    expect(response.headers["Retry-After"]).to.equal("5");
    const body = response.body as {
      type: string;
      results: { status: string; log_id: string; problem: { status: number } }[];
    };
    expect(body).to.include({ type: "urn:rdp:problem:batch-not-confirmed", in_doubt: 2 });
    expect(body.results.map((result) => result.status)).to.deep.equal(["in_doubt", "in_doubt"]);
    expect(body.results[0]?.log_id).to.match(/^[0-9a-f-]{36}$/);
    expect(body.results[1]?.log_id).to.equal("kept");
    expect(body.results[0]?.problem.status).to.equal(503);
  });

  it("answers 503 for a batch with accepted, rejected and unconfirmed lines, listing each", async () => {
    const { deps } = setup({ env: { MAX_MESSAGE_BYTES: "1024" } });
    let publishes = 0;
    const queue = deps.queue;
    const failing: IngestDeps = {
      ...deps,
      queue: {
        enqueue: (record) => queue.enqueue(record),
        // The first message is confirmed, the second is not.
        enqueueAll: (records) =>
          queue.enqueueAll(records).map((messageId) =>
            messageId.then((id) => {
              if (id !== "1") throw new PublishUnconfirmedError("not confirmed", 5);
              publishes += 1;
              return id;
            }),
          ),
      },
    };
    const lines = [
      { tenant_id: "acme", log_id: "a", text: "x".repeat(600) },
      { tenant_id: "acme", log_id: "b/bad", text: "x" },
      { tenant_id: "acme", log_id: "c", text: "y".repeat(600) },
    ];
    const response = await handleIngest(ndjson(lines), failing);
    expect(response.status).to.equal(503);
    expect(publishes).to.equal(1);
    const body = response.body as { results: { status: string; log_id?: string }[] };
    expect(body).to.include({ accepted: 1, in_doubt: 1, rejected: 1 });
    expect(body.results.map((result) => [result.status, result.log_id])).to.deep.equal([
      ["accepted", "a"],
      ["rejected", undefined],
      ["in_doubt", "c"],
    ]);
  });

  it("derives each line's log id from the Idempotency-Key and its line number", async () => {
    const { deps } = setup();
    const request = (): IngestRequest => ({
      ...ndjson([{ tenant_id: "acme", text: "a" }, "", { tenant_id: "acme", text: "b" }]),
      headers: { "content-type": "application/x-ndjson", "idempotency-key": '"batch-1"' },
    });
    const first = (await handleIngest(request(), deps)).body as { results: { log_id: string }[] };
    const again = (await handleIngest(request(), deps)).body as { results: { log_id: string }[] };
    const ids = first.results.map((result) => result.log_id);
    expect(ids[0]).to.match(/-1$/);
    expect(ids[1]).to.match(/-3$/);
    expect(again.results.map((result) => result.log_id)).to.deep.equal(ids);
  });

  it("refuses batches over the record limit with 413", async () => {
    const { deps } = setup({ env: { MAX_BATCH_RECORDS: "3" } });
    const lines = Array.from({ length: 4 }, () => ({ tenant_id: "acme", text: "x" }));
    expect((await handleIngest(ndjson(lines), deps)).status).to.equal(413);
  });

  it("applies the tenant check to every line", async () => {
    const { deps } = setup({
      authenticator: {
        checkPresented: () => undefined,
        authenticate: async () => ({ tenantId: "acme" }),
      },
    });
    const response = await handleIngest(
      ndjson([{ text: "mine" }, { tenant_id: "globex", text: "theirs" }]),
      deps,
    );
    const body = response.body as {
      results: { status: string; tenant_id?: string; problem?: { status: number } }[];
    };
    expect(body.results[0]).to.include({ status: "accepted", tenant_id: "acme" });
    expect(body.results[1]?.problem?.status).to.equal(403);
  });
});

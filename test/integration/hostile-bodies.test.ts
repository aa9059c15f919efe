/**
 * Bodies sent to take an ingest instance down, against the running local stack with the
 * deployed limits (256 KiB JSON/text, 1 MiB NDJSON): compression bombs, bursts of the largest
 * bodies Cloud Run lets through (32 MiB), chunked bodies without a length, and a burst of
 * maximum-size batches that a valid key gets parsed. Each is answered 4xx (or 503 when the
 * instance holds its budget of bodies), the same ingest process serves afterwards (a restart
 * would hide a crash: the supervisor replaces a dead instance), and nothing is stored.
 * The ingest's peak RSS is printed; docs/SECURITY.md quotes it.
 */
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import http from "node:http";
import { Readable } from "node:stream";
import { constants, deflateSync, gzipSync } from "node:zlib";
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { type TestStack, startTestStack } from "./support/stack";

const runId = randomUUID().slice(0, 8);
const MiB = 1024 * 1024;

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** One POST with a raw body (a Buffer, or a stream sent chunked, without Content-Length). */
function send(
  url: string,
  body: Buffer | Readable,
  headers: Record<string, string>,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // A new connection each time: a kept-alive one the server is closing would hang up.
    const request = http.request(url, { method: "POST", headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    request.on("error", reject);
    if (Buffer.isBuffer(body)) request.end(body);
    else body.pipe(request);
  });
}

/** `bytes` of the same line, streamed in 64 KiB chunks. */
function streamed(line: string, bytes: number): Readable {
  const chunk = Buffer.from(line.repeat(Math.ceil((64 * 1024) / line.length)));
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= bytes) return this.push(null);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return Math.round(kib / 1024);
}

describe("hostile bodies against the running ingest (deployed limits)", function () {
  this.timeout(180_000);
  let stack: TestStack;
  let firestore: Firestore;
  let key: string;
  let ingestPid: number;
  const tenant = `bodies-${runId}`;
  const answers: Array<{ name: string; statuses: number[] }> = [];

  const json = (logId: string, text: string) => JSON.stringify({ log_id: logId, text });
  /** 200 MiB of text once inflated, a few hundred KiB on the wire. */
  const bombText = "a".repeat(200 * MiB);
  /** Run-length matching compresses a run of one byte as tightly, in less than half the CPU. */
  const RUNS = { level: 1, strategy: constants.Z_RLE };

  async function expectRefused(
    name: string,
    requests: ReadonlyArray<() => Promise<Reply>>,
    allowed: readonly number[],
  ): Promise<Reply[]> {
    const replies = await Promise.all(requests.map((request) => request()));
    answers.push({ name, statuses: replies.map((reply) => reply.status) });
    for (const reply of replies) {
      expect(allowed, `${name}: ${reply.status} ${reply.body.slice(0, 200)}`).to.include(
        reply.status,
      );
      expect(reply.headers["content-type"]).to.match(/^application\/problem\+json/);
      expect(JSON.parse(reply.body)).to.have.property("detail").that.is.a("string");
    }
    // The instance that refused it is the one still serving.
    expect(stack.ingest.pid, `${name}: ingest was replaced`).to.equal(ingestPid);
    expect(stack.ingest.restarts).to.equal(0);
    return replies;
  }

  before(async () => {
    // No per-tenant rate limit: the burst below must make ingest parse every line of its
    // batches, which a limit of the default 2,000 records/s would refuse after four of them.
    stack = await startTestStack("hostile-bodies", { TENANT_RATE_LIMIT_PER_SECOND: "0" });
    firestore = new Firestore({ projectId: stack.project });
    key = (await createFirestoreApiKeys(firestore).create(tenant, "hostile bodies")).key;
    ingestPid = stack.ingest.pid as number;
  });
  after(async () => {
    console.log(`    answers: ${JSON.stringify(answers)}`);
    await firestore?.terminate();
    await stack?.stop();
  });

  const withKey = (headers: Record<string, string>) => ({
    authorization: `Bearer ${key}`,
    ...headers,
  });

  for (const [encoding, compress] of [
    ["gzip", gzipSync],
    ["deflate", deflateSync],
  ] as const) {
    it(`refuses ${encoding} bombs of JSON, text and NDJSON with 413, and without a key with 401`, async () => {
      const bombs = {
        "application/json": compress(json(`bomb-${runId}`, bombText), RUNS),
        "text/plain": compress(bombText, RUNS),
        "application/x-ndjson": compress(`${json(`bomb-nd-${runId}`, "x")}\n`.repeat(4 * MiB)),
      };
      for (const body of Object.values(bombs)) expect(body.length).to.be.below(1 * MiB);
      const requests = Object.entries(bombs).map(
        ([type, body]) =>
          () =>
            send(
              stack.ingestUrl,
              body,
              withKey({ "content-type": type, "content-encoding": encoding }),
            ),
      );
      const replies = await expectRefused(`${encoding} bombs`, requests, [413]);
      for (const reply of replies) expect(reply.body).to.include("inflates to more than");
      await expectRefused(
        `${encoding} bomb without a key`,
        [
          () =>
            send(stack.ingestUrl, bombs["application/json"], {
              "content-type": "application/json",
              "content-encoding": encoding,
            }),
        ],
        [401],
      );
    });
  }

  it("refuses a burst of 32 MiB bodies: 401 without a key, 413 with one", async () => {
    const body = Buffer.alloc(32 * MiB, 0x61);
    const burst = (headers: Record<string, string>) =>
      Array.from({ length: 12 }, () => () => send(stack.ingestUrl, body, headers));
    await expectRefused(
      "32 MiB without a key",
      burst({ "content-type": "application/json" }),
      [401],
    );
    await expectRefused(
      "32 MiB with a key",
      burst(withKey({ "content-type": "application/json" })),
      [413],
    );
  });

  it("refuses chunked bodies without a length once they pass the limit", async () => {
    const requests = [
      () =>
        send(
          stack.ingestUrl,
          streamed(`${json(`chunk-${runId}`, "y".repeat(100))}\n`, 8 * MiB),
          withKey({ "content-type": "application/x-ndjson" }),
        ),
      () =>
        send(stack.ingestUrl, streamed("z", 8 * MiB), withKey({ "content-type": "text/plain" })),
    ];
    await expectRefused("chunked past the limit", requests, [413]);
  });

  it("answers a burst of maximum-size batches it must parse, 400 or 503, and keeps serving", async () => {
    // 1,000 well-formed lines of about 1 KiB that name another tenant: each is parsed and
    // refused (403), so the whole body is held and worked on, and nothing is published.
    const line = `${JSON.stringify({ tenant_id: "someone-else", text: "w".repeat(1000) })}\n`;
    const batch = Buffer.from(line.repeat(1000));
    expect(batch.length).to.be.at.most(1 * MiB);
    const requests = Array.from(
      { length: 40 },
      () => () => send(stack.ingestUrl, batch, withKey({ "content-type": "application/x-ndjson" })),
    );
    const replies = await expectRefused("40 parsed 1 MiB batches", requests, [400, 503]);
    for (const reply of replies.filter((item) => item.status === 503)) {
      expect(reply.headers["retry-after"]).to.match(/^\d+$/);
      expect(JSON.parse(reply.body)).to.include({ type: "urn:rdp:problem:ingest-busy" });
    }
  });

  {
    // OTLP/HTTP at /v1/logs: its answers are google.rpc.Status, not problem+json.
    const otlpUrl = () => new URL("v1/logs", stack.ingestUrl).toString();
    const logsRequest = (records: readonly unknown[]) =>
      JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords: records }] }] });
    const nested = (depth: number): unknown =>
      depth === 0
        ? { stringValue: "leaf" }
        : { kvlistValue: { values: [{ key: "k", value: nested(depth - 1) }] } };
    const json = { "content-type": "application/json" };
    const protobuf = { "content-type": "application/x-protobuf" };

    const cases: ReadonlyArray<[string, () => Promise<Reply>, number]> = [
      [
        "a gzip bomb of protobuf",
        () =>
          send(
            otlpUrl(),
            gzipSync(Buffer.alloc(200 * MiB, 0x0a), RUNS),
            withKey({ ...protobuf, "content-encoding": "gzip" }),
          ),
        413,
      ],
      [
        "truncated gzip",
        () =>
          send(
            otlpUrl(),
            gzipSync(logsRequest([{ body: { stringValue: "x".repeat(5000) } }])).subarray(0, 30),
            withKey({ ...json, "content-encoding": "gzip" }),
          ),
        400,
      ],
      [
        "an encoding it cannot inflate",
        () => send(otlpUrl(), Buffer.from("x"), withKey({ ...protobuf, "content-encoding": "br" })),
        415,
      ],
      [
        "a media type OTLP does not define",
        () => send(otlpUrl(), Buffer.from("x"), withKey({ "content-type": "text/plain" })),
        415,
      ],
      [
        "malformed protobuf",
        () => send(otlpUrl(), Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x7f, 1]), withKey(protobuf)),
        400,
      ],
      [
        "malformed JSON",
        () => send(otlpUrl(), Buffer.from('{"resourceLogs": ['), withKey(json)),
        400,
      ],
      [
        "attributes nested 60 deep",
        () =>
          send(
            otlpUrl(),
            Buffer.from(
              logsRequest([
                {
                  body: { stringValue: `deep ${runId}` },
                  attributes: [{ key: "a", value: nested(60) }],
                },
              ]),
            ),
            withKey(json),
          ),
        400,
      ],
      [
        "20,000 attributes on one record",
        () =>
          send(
            otlpUrl(),
            Buffer.from(
              logsRequest([
                {
                  body: { stringValue: `wide ${runId}` },
                  attributes: Array.from({ length: 20_000 }, (_, index) => ({
                    key: `k${index}`,
                    value: { intValue: index },
                  })),
                },
              ]),
            ),
            withKey(json),
          ),
        400,
      ],
      [
        "records without a body",
        () =>
          send(otlpUrl(), Buffer.from(logsRequest([{ severityText: "INFO" }, {}])), withKey(json)),
        400,
      ],
      [
        "no API key",
        () => send(otlpUrl(), Buffer.from(logsRequest([{ body: { stringValue: "x" } }])), json),
        401,
      ],
    ];
    for (const [name, request, status] of cases) {
      it(`/v1/logs: ${name} → ${status}`, async () => {
        const reply = await request();
        answers.push({ name: `otlp: ${name}`, statuses: [reply.status] });
        expect(reply.status, reply.body.slice(0, 200)).to.equal(status);
        expect(stack.ingest.pid).to.equal(ingestPid);
        expect(stack.ingest.restarts).to.equal(0);
      });
    }
  }

  it("still accepts a record afterwards, and stored nothing of the hostile bodies", async () => {
    const reply = await send(
      stack.ingestUrl,
      Buffer.from(json(`after-${runId}`, "still serving")),
      withKey({ "content-type": "application/json" }),
    );
    expect(reply.status).to.equal(202);
    expect(stack.ingest.pid).to.equal(ingestPid);
    const peak = await peakRssMiB(ingestPid);
    console.log(`    ingest peak RSS after the hostile bodies: ${peak} MiB (pid ${ingestPid})`);
    // Give the worker time to have stored anything it was (wrongly) sent.
    const stored = await firestore.doc(`tenants/${tenant}/processed_logs/after-${runId}`);
    for (let waited = 0; waited < 20_000 && !(await stored.get()).exists; waited += 200) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const documents = await Promise.all(
      ["processed_logs", "failed_logs"].map((collection) =>
        firestore.collection(`tenants/${tenant}/${collection}`).get(),
      ),
    );
    expect(documents.flatMap((snapshot) => snapshot.docs.map((doc) => doc.id))).to.deep.equal([
      `after-${runId}`,
    ]);
    const elsewhere = await firestore.collection("tenants/someone-else/processed_logs").get();
    expect(elsewhere.size).to.equal(0);
  });
});

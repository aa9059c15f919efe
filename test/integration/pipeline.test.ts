/**
 * The pipeline end to end on the real emulators: ingest (functions-framework) →
 * Pub/Sub emulator push subscription → process (functions-framework) → Firestore.
 */
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { Firestore } from "@google-cloud/firestore";
import { PubSub } from "@google-cloud/pubsub";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { logEntries, sharedTestStack, startTestStack, type TestStack } from "./support/stack";

const runId = randomUUID().slice(0, 8);

async function waitFor<T>(
  read: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("pipeline on the emulators", function () {
  this.timeout(120_000);
  let stack: TestStack;
  let firestore: Firestore;
  let apiKey: string;
  const tenant = `pipe-${runId}`;

  const post = (body: string, headers: Record<string, string>) =>
    fetch(stack.ingestUrl, {
      method: "POST",
      body,
      headers: { authorization: `Bearer ${apiKey}`, ...headers },
    });
  const postJson = (record: unknown) =>
    post(JSON.stringify(record), { "content-type": "application/json" });
  const processedDoc = (tenantId: string, logId: string) =>
    firestore.doc(`tenants/${tenantId}/processed_logs/${logId}`);
  const waitForProcessed = (tenantId: string, logId: string) =>
    waitFor(async () => {
      const snapshot = await processedDoc(tenantId, logId).get();
      return snapshot.exists ? snapshot : undefined;
    }, `tenants/${tenantId}/processed_logs/${logId}`);

  before(async () => {
    stack = await sharedTestStack();
    firestore = new Firestore({ projectId: stack.project });
    apiKey = (await createFirestoreApiKeys(firestore).create(tenant, "pipeline test")).key;
  });
  after(async () => {
    await firestore?.terminate();
  });

  it("stores the brief's JSON record, redacted, with every documented field", async () => {
    const logId = `json-${runId}`;
    const response = await postJson({
      tenant_id: tenant,
      log_id: logId,
      text: "User 555-0199 accessed system",
    });
    expect(response.status).to.equal(202);
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).to.include({ status: "accepted", tenant_id: tenant, log_id: logId });

    const doc = (await waitForProcessed(tenant, logId)).data() ?? {};
    expect(doc).to.include({
      tenant_id: tenant,
      log_id: logId,
      source: "json_upload",
      original_text: "User 555-0199 accessed system",
      modified_data: "User [REDACTED] accessed system",
      message_id: body.message_id,
      delivery_attempt: 1,
    });
    expect(doc.redactions).to.deep.equal({
      email: 0,
      card: 0,
      ssn: 0,
      phone: 1,
      credential: 0,
      ip: 0,
    });
    expect(doc.received_at.toDate()).to.be.instanceOf(Date);
    expect(doc.processed_at.toMillis()).to.be.at.least(doc.received_at.toMillis());
  });

  it("stores a text upload under the key's tenant, with the X-Log-ID it was given", async () => {
    const logId = `text-${runId}`;
    const response = await post("Reach me at jane.doe@example.com or +44 20 7946 0958", {
      "content-type": "text/plain; charset=utf-8",
      "x-log-id": logId,
    });
    expect(response.status).to.equal(202);
    const doc = (await waitForProcessed(tenant, logId)).data() ?? {};
    expect(doc).to.include({
      source: "text_upload",
      modified_data: "Reach me at [REDACTED] or [REDACTED]",
    });
    expect(doc.redactions).to.include({ email: 1, phone: 1 });
  });

  it("returns a server-assigned log id that names the stored document", async () => {
    const response = await postJson({ text: `no id ${runId}` });
    expect(response.status).to.equal(202);
    const { log_id: logId } = (await response.json()) as { log_id: string };
    expect(logId).to.match(/^[0-9a-f-]{36}$/);
    await waitForProcessed(tenant, logId);
  });

  it("leaves one document, processed once, when the same record is posted twice", async () => {
    const logId = `dup-${runId}`;
    const record = { log_id: logId, text: `same text ${runId}` };
    expect((await postJson(record)).status).to.equal(202);
    const first = await waitForProcessed(tenant, logId);
    expect((await postJson(record)).status).to.equal(202);
    // The second message is processed as a duplicate: wait until the worker logged it.
    await waitFor(async () => {
      const entries = await logEntries(stack.logs.process);
      return entries.some(
        (entry) =>
          entry.log_id === logId &&
          entry.message === "record already stored; duplicate delivery ignored",
      )
        ? true
        : undefined;
    }, "the duplicate delivery to be processed");
    // Nowhere in the tenant's space is there a second copy of the text.
    const copies = await Promise.all(
      ["processed_logs", "failed_logs"].map((collection) =>
        firestore
          .collection(`tenants/${tenant}/${collection}`)
          .where("text_sha256", "==", first.get("text_sha256"))
          .get(),
      ),
    );
    expect(copies.flatMap((snapshot) => snapshot.docs.map((doc) => doc.ref.path))).to.deep.equal([
      first.ref.path,
    ]);
    const again = await processedDoc(tenant, logId).get();
    expect(again.get("processed_at").isEqual(first.get("processed_at"))).to.equal(true);
    expect(again.get("message_id")).to.equal(first.get("message_id"));
  });

  it("keeps the first text of a log id and records a conflicting repeat in failed_logs", async () => {
    const logId = `conflict-${runId}`;
    expect((await postJson({ log_id: logId, text: "version one" })).status).to.equal(202);
    await waitForProcessed(tenant, logId);
    expect((await postJson({ log_id: logId, text: "version two" })).status).to.equal(202);
    const conflict = await waitFor(async () => {
      const failed = await firestore
        .collection(`tenants/${tenant}/failed_logs`)
        .where("log_id", "==", logId)
        .get();
      return failed.empty ? undefined : failed.docs;
    }, "the conflict record");
    expect(conflict).to.have.length(1);
    expect(conflict[0]?.data()).to.include({
      reason: "log_id_conflict",
      original_text: "version two",
    });
    expect((await processedDoc(tenant, logId).get()).get("original_text")).to.equal("version one");
  });

  it("answers a batch with accepted and refused lines 400, stores the accepted ones only", async () => {
    const good = [`batch-a-${runId}`, `batch-c-${runId}`];
    const lines = [
      { log_id: good[0], text: "first line" },
      { log_id: `bad/${runId}`, text: "an id with a slash" },
      { log_id: good[1], text: "third line" },
      { tenant_id: `other-${runId}`, log_id: `batch-d-${runId}`, text: "another tenant" },
    ];
    const response = await post(lines.map((line) => JSON.stringify(line)).join("\n"), {
      "content-type": "application/x-ndjson",
    });
    expect(response.status).to.equal(400);
    const body = (await response.json()) as {
      type: string;
      accepted: number;
      rejected: number;
      results: { line: number; status: string; problem?: { status: number } }[];
    };
    expect(body).to.include({
      type: "urn:rdp:problem:batch-partially-rejected",
      accepted: 2,
      rejected: 2,
    });
    expect(body.results.map((result) => [result.status, result.problem?.status])).to.deep.equal([
      ["accepted", undefined],
      ["rejected", 400],
      ["accepted", undefined],
      ["rejected", 403],
    ]);
    for (const logId of good) await waitForProcessed(tenant, logId);
    expect((await processedDoc(tenant, `batch-d-${runId}`).get()).exists).to.equal(false);
    expect((await processedDoc(`other-${runId}`, `batch-d-${runId}`).get()).exists).to.equal(false);
  });

  const rejected: ReadonlyArray<[string, () => Promise<Response>, number]> = [
    [
      "a schema violation",
      () => postJson({ text: "x", extra: 1, log_id: `bad-extra-${runId}` }),
      400,
    ],
    ["an empty text", () => postJson({ text: "", log_id: `bad-empty-${runId}` }), 400],
    ["a log id with a slash", () => postJson({ text: "x", log_id: `a/${runId}` }), 400],
    ["a reserved log id", () => postJson({ text: "x", log_id: "__name__" }), 400],
    [
      "another tenant's id",
      () => postJson({ tenant_id: `other-${runId}`, text: "x", log_id: `bad-other-${runId}` }),
      403,
    ],
    [
      "no API key",
      () =>
        fetch(stack.ingestUrl, {
          method: "POST",
          body: "x",
          headers: { "content-type": "text/plain", "x-log-id": `bad-nokey-${runId}` },
        }),
      401,
    ],
    [
      "an XML body",
      () => post("<x/>", { "content-type": "application/xml", "x-log-id": `bad-xml-${runId}` }),
      415,
    ],
    [
      "a body over the limit",
      () =>
        post("x".repeat(300 * 1024), {
          "content-type": "text/plain",
          "x-log-id": `bad-big-${runId}`,
        }),
      413,
    ],
    [
      "a GET",
      () => fetch(stack.ingestUrl, { headers: { authorization: `Bearer ${apiKey}` } }),
      405,
    ],
  ];
  for (const [name, send, status] of rejected) {
    it(`answers ${status} problem+json for ${name}`, async () => {
      const response = await send();
      expect(response.status).to.equal(status);
      expect(response.headers.get("content-type")).to.match(/^application\/problem\+json/);
      const problem = (await response.json()) as { status: number; detail: string };
      expect(problem.status).to.equal(status);
      expect(problem.detail).to.be.a("string").and.not.empty;
    });
  }

  it("wrote nothing for any rejected request", async () => {
    // A record posted after the rejected ones, once stored, shows the worker got that far.
    const sentinel = `after-rejected-${runId}`;
    expect((await postJson({ log_id: sentinel, text: "sentinel" })).status).to.equal(202);
    await waitForProcessed(tenant, sentinel);
    const accepted = (await logEntries(stack.logs.ingest)).filter(
      (entry) => entry.message === "record accepted" && String(entry.log_id).includes("bad-"),
    );
    expect(accepted, "ingest accepted a rejected record").to.deep.equal([]);
    const written = await Promise.all(
      ["processed_logs", "failed_logs"].map((group) =>
        firestore
          .collectionGroup(group)
          .where("log_id", ">=", "bad-")
          .where("log_id", "<", "bad.")
          .get(),
      ),
    );
    expect(written.flatMap((snapshot) => snapshot.docs.map((doc) => doc.ref.path))).to.deep.equal(
      [],
    );
    const otherTenant = await firestore.collection(`tenants/other-${runId}/processed_logs`).get();
    expect(otherTenant.size).to.equal(0);
  });

  it("records a message that can never be processed in failed_logs, without retrying it", async () => {
    const logId = `poison-${runId}`;
    // Only a broken publisher could send this: ingest never publishes an empty text.
    const poison = {
      v: 1,
      records: [
        {
          tenant_id: tenant,
          log_id: logId,
          source: "json_upload",
          text: "",
          received_at: new Date().toISOString(),
        },
      ],
    };
    const pubsub = new PubSub({ projectId: stack.project });
    const messageId = await pubsub.topic(stack.topic).publishMessage({ json: poison });
    await pubsub.close();
    const failed = await waitFor(async () => {
      const snapshot = await firestore
        .collection(`tenants/${tenant}/failed_logs`)
        .where("log_id", "==", logId)
        .get();
      return snapshot.empty ? undefined : snapshot.docs[0];
    }, "the failed_logs record");
    expect(failed.data()).to.include({
      reason: "invalid_record",
      message_id: messageId,
      delivery_attempt: 1,
    });
    expect((await processedDoc(tenant, logId).get()).exists).to.equal(false);
    // A redelivery would come about a second after a failed push; give it three.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const mentions = (await logEntries(stack.logs.process)).filter(
      (entry) => entry.message_id === messageId,
    );
    expect(mentions.map((entry) => entry.message)).to.deep.equal([
      "record failed permanently; recorded in failed_logs",
    ]);
  });
});

describe("pipeline retries on the emulators", function () {
  this.timeout(120_000);
  let stack: TestStack;
  let firestore: Firestore;

  before(async () => {
    // Every message fails its first attempt, as a worker that lost its connection would.
    stack = await startTestStack("retry", {
      AUTH_MODE: "disabled",
      FAULT_FAIL_FIRST_ATTEMPTS: "1",
    });
    firestore = new Firestore({ projectId: stack.project });
  });
  after(async () => {
    await firestore?.terminate();
    await stack?.stop();
  });

  it("redelivers a failed first attempt and stores exactly one document with attempt > 1", async () => {
    const tenant = `retry-${runId}`;
    const logIds = Array.from({ length: 5 }, (_, index) => `r${index}-${runId}`);
    for (const logId of logIds) {
      const response = await fetch(stack.ingestUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ tenant_id: tenant, log_id: logId, text: `retry me ${logId}` }),
      });
      expect(response.status).to.equal(202);
    }
    const docs = await waitFor(
      async () => {
        const snapshot = await firestore.collection(`tenants/${tenant}/processed_logs`).get();
        return snapshot.size >= logIds.length ? snapshot.docs : undefined;
      },
      "all retried records",
      30_000,
    );
    expect(docs.map((doc) => doc.id).sort()).to.deep.equal([...logIds].sort());
    for (const doc of docs) expect(doc.get("delivery_attempt")).to.be.greaterThan(1);
    const failures = (await logEntries(stack.logs.process)).filter(
      (entry) => entry.message === "processing attempt failed; Pub/Sub will redeliver",
    );
    expect(failures.length).to.be.at.least(logIds.length);
  });
});

/**
 * Retention and per-tenant quotas on a real stack (ingest → Pub/Sub push → process → Firestore
 * emulator), with settings written by the tenant CLI:
 * - every processed, failed and dead-lettered document carries expire_at = time of writing +
 *   RETENTION_DAYS, or + the tenant's retention_days;
 * - a tenant over its rate limit gets 429 with Retry-After and the RateLimit fields (records
 *   and OTLP routes), nothing of those requests reaches the topic, and another tenant's requests
 *   pass meanwhile; a tenant's own limit overrides the default.
 */
import { expect } from "chai";
import { Firestore, Timestamp, type DocumentSnapshot } from "@google-cloud/firestore";
import { PubSub, type Message } from "@google-cloud/pubsub";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { tenantCli } from "./support/ops-cli";
import { RUN_ID, pollUntil, startTestStack, type TestStack } from "./support/stack";

const DAY_MS = 24 * 60 * 60 * 1000;

/** The tenant CLI's JSON output, or its exit code when it fails. */
async function settingsCli(project: string, args: readonly string[]) {
  const { code, json } = await tenantCli(project, args);
  return code === 0 ? json : code;
}

describe("retention and per-tenant quotas (tenant CLI → Firestore → ingest and worker)", function () {
  this.timeout(180_000);
  let stack: TestStack;
  let firestore: Firestore;
  let pubsub: PubSub;
  const keys = new Map<string, string>();
  const tenant = (name: string) => `${name}-${RUN_ID}`;
  const [standard, shortLived, flood, calm, vip] = [
    "standard",
    "short",
    "flood",
    "calm",
    "vip",
  ].map(tenant) as [string, string, string, string, string];

  const send = (name: string, body: string, contentType: string, route = "") =>
    fetch(new URL(route, stack.ingestUrl), {
      method: "POST",
      body,
      headers: { authorization: `Bearer ${keys.get(name)}`, "content-type": contentType },
    });
  const postOne = (name: string, logId: string, text = `record ${logId}`) =>
    send(name, JSON.stringify({ log_id: logId, text }), "application/json");
  const postBatch = (name: string, logIds: readonly string[]) =>
    send(
      name,
      logIds.map((logId) => JSON.stringify({ log_id: logId, text: `record ${logId}` })).join("\n"),
      "application/x-ndjson",
    );
  const document = (documentPath: string) =>
    pollUntil(
      async () => {
        const snapshot = await firestore.doc(documentPath).get();
        return snapshot.exists ? snapshot : undefined;
      },
      { timeoutMs: 30_000, what: documentPath },
    );
  /** Days from the document's write (processed_at / failed_at) to its expire_at. */
  const retentionOf = (snapshot: DocumentSnapshot, writtenField: string) => {
    const expireAt = snapshot.get("expire_at") as Timestamp;
    const written = snapshot.get(writtenField) as Timestamp;
    expect(expireAt).to.be.instanceOf(Timestamp);
    return (expireAt.toMillis() - written.toMillis()) / DAY_MS;
  };

  before(async () => {
    stack = await startTestStack("retention-quotas", {
      RETENTION_DAYS: "12",
      // 1 record a second with 5 seconds of burst: a bucket of 5 that refills slowly enough for
      // the refused requests below to be refused on a slow machine too.
      TENANT_RATE_LIMIT_PER_SECOND: "1",
      TENANT_RATE_LIMIT_BURST_SECONDS: "5",
      // Every request and record reads the settings, so the test need not wait out a cache.
      REDACTION_POLICY_CACHE_SECONDS: "0",
    });
    firestore = new Firestore({ projectId: stack.project });
    pubsub = new PubSub({ projectId: stack.project });
    const apiKeys = createFirestoreApiKeys(firestore);
    for (const name of [standard, shortLived, flood, calm, vip]) {
      keys.set(name, (await apiKeys.create(name, "retention and quotas test")).key);
    }
  });
  after(async () => {
    await firestore?.terminate();
    await pubsub?.close();
    await stack?.stop();
  });

  it("the CLI sets, shows and removes a tenant's retention and rate limit", async () => {
    expect(await settingsCli(stack.project, ["settings", shortLived])).to.deep.equal({
      tenant_id: shortLived,
      retention_days: null,
      rate_limit_per_second: null,
    });
    expect(
      await settingsCli(stack.project, ["settings", shortLived, "--retention-days", "3"]),
    ).to.deep.include({ retention_days: 3 });
    await settingsCli(stack.project, [
      "settings",
      vip,
      "--rate-limit",
      "1000",
      "--retention-days",
      "9",
    ]);
    expect(
      await settingsCli(stack.project, ["settings", vip, "--retention-days", "default"]),
    ).to.deep.equal({ tenant_id: vip, retention_days: null, rate_limit_per_second: 1000 });
    const refused = await settingsCli(stack.project, ["settings", vip, "--rate-limit", "0"]);
    expect(refused).to.equal(2);
  });

  it("stores expire_at = time of writing + RETENTION_DAYS, or + the tenant's retention_days", async () => {
    expect((await postOne(standard, "kept")).status).to.equal(202);
    expect((await postOne(shortLived, "brief")).status).to.equal(202);
    const kept = await document(`tenants/${standard}/processed_logs/kept`);
    const brief = await document(`tenants/${shortLived}/processed_logs/brief`);
    // Worker clock against Firestore's commit time: the same within seconds.
    expect(retentionOf(kept, "processed_at")).to.be.closeTo(12, 60_000 / DAY_MS);
    expect(retentionOf(brief, "processed_at")).to.be.closeTo(3, 60_000 / DAY_MS);
  });

  it("gives failed records their tenant's retention and dead letters the default", async () => {
    // The same log_id with another text: the second version is kept in failed_logs.
    expect((await postOne(shortLived, "twice", "first text")).status).to.equal(202);
    await document(`tenants/${shortLived}/processed_logs/twice`);
    expect((await postOne(shortLived, "twice", "second text")).status).to.equal(202);
    const failed = await pollUntil(
      async () =>
        (
          await firestore
            .collection(`tenants/${shortLived}/failed_logs`)
            .where("log_id", "==", "twice")
            .get()
        ).docs[0],
      { timeoutMs: 30_000, what: "the log_id_conflict failure" },
    );
    expect(failed.get("reason")).to.equal("log_id_conflict");
    expect(retentionOf(failed, "failed_at")).to.be.closeTo(3, 60_000 / DAY_MS);

    // A message that is not JSON names no tenant: dead_letters, default retention.
    const messageId = await pubsub.topic(stack.topic).publishMessage({ data: Buffer.from("{") });
    const letter = await document(`dead_letters/${messageId}`);
    expect(retentionOf(letter, "failed_at")).to.be.closeTo(12, 60_000 / DAY_MS);
  });

  it("answers 429 with Retry-After and RateLimit fields, publishes nothing of it, and leaves other tenants alone", async () => {
    // Everything published to the topic from here on, whoever it is for.
    const [subscription] = await pubsub
      .topic(stack.topic)
      .createSubscription(`${stack.topic}-quota-audit`);
    const published: string[] = [];
    subscription.on("message", (message: Message) => {
      const records = (JSON.parse(message.data.toString("utf8")) as { records?: unknown[] })
        .records;
      for (const record of (records ?? []) as { tenant_id: string; log_id: string }[]) {
        published.push(`${record.tenant_id}/${record.log_id}`);
      }
      message.ack();
    });

    try {
      // The bucket holds 5 records: a batch of 5 empties it.
      const first = await postBatch(flood, ["f1", "f2", "f3", "f4", "f5"]);
      expect(first.status).to.equal(202);
      expect(first.headers.get("ratelimit-policy")).to.equal('"tenant";q=5;w=5');
      expect(first.headers.get("ratelimit")).to.match(/^"tenant";r=0;t=5$/);

      const otlpBody = JSON.stringify({
        resourceLogs: [{ scopeLogs: [{ logRecords: [{ body: { stringValue: "otlp f10" } }] }] }],
      });
      // The next second's refill (1 record) is not there yet; meanwhile another tenant sends.
      const [limitedBatch, limitedOne, limitedOtlp, ...calmAnswers] = await Promise.all([
        postBatch(flood, ["f6", "f7", "f8"]),
        postOne(flood, "f9"),
        send(flood, otlpBody, "application/json", "v1/logs"),
        ...[1, 2, 3].map((n) => postOne(calm, `c${n}`)),
      ]);

      for (const limited of [limitedBatch, limitedOne]) {
        expect(limited.status).to.equal(429);
        expect(limited.headers.get("content-type")).to.match(/^application\/problem\+json\b/);
        expect(limited.headers.get("retry-after")).to.match(/^[1-9]\d*$/);
        expect(limited.headers.get("ratelimit-policy")).to.equal('"tenant";q=5;w=5');
        expect(limited.headers.get("ratelimit")).to.match(/^"tenant";r=\d+;t=[1-9]\d*$/);
        expect(await limited.json()).to.include({ type: "urn:rdp:problem:rate-limited" });
      }
      // OTLP/HTTP: 429 with Retry-After, answered in the request's encoding.
      expect(limitedOtlp.status).to.equal(429);
      expect(limitedOtlp.headers.get("retry-after")).to.match(/^[1-9]\d*$/);
      expect(limitedOtlp.headers.get("content-type")).to.match(/^application\/json\b/);
      expect(calmAnswers.map((answer) => answer.status)).to.deep.equal([202, 202, 202]);

      // The calm tenant's records are stored; by then everything published has been pulled.
      for (const n of [1, 2, 3]) await document(`tenants/${calm}/processed_logs/c${n}`);
      await pollUntil(async () => (published.length >= 8 ? true : undefined), {
        timeoutMs: 30_000,
        what: "the 8 admitted records on the audit subscription",
      });
      expect(published.filter((id) => id.startsWith(`${flood}/`)).sort()).to.deep.equal(
        ["f1", "f2", "f3", "f4", "f5"].map((logId) => `${flood}/${logId}`),
      );
      const floodDocs = await firestore.collection(`tenants/${flood}/processed_logs`).get();
      expect(floodDocs.docs.map((doc) => doc.id).sort()).to.deep.equal([
        "f1",
        "f2",
        "f3",
        "f4",
        "f5",
      ]);
    } finally {
      await subscription.delete();
    }
  });

  it("a tenant's own rate_limit_per_second replaces the default", async () => {
    // 20 requests at once: the default (a bucket of 5) refuses most; vip's 1,000 a second none.
    const burst = (name: string) =>
      Promise.all(
        Array.from({ length: 20 }, (_, n) => postOne(name, `burst-${n}`).then((r) => r.status)),
      );
    const [vipStatuses, standardStatuses] = [await burst(vip), await burst(standard)];
    expect(vipStatuses.every((status) => status === 202)).to.equal(true);
    expect(standardStatuses.filter((status) => status === 429).length).to.be.at.least(10);
  });
});

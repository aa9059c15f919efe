/**
 * `npm run replay` and `npm run status` as an operator runs them, on the real emulators. Failures
 * are produced by a worker with an injected poison (FAULT_POISON_MARKER): the cause is then
 * "fixed" by replaying onto a healthy stack's topic, which shares the run's Firestore.
 */
import { expect } from "chai";
import { Firestore } from "@google-cloud/firestore";
import { PubSub } from "@google-cloud/pubsub";
import { createFirestoreStore } from "../../functions/src/lib/store";
import { sha256Hex } from "../../scripts/operate/lib/reconcile";
import { runCli } from "./support/ops-cli";
import { RUN_ID, TEST_PROJECT, type TestStack, pollUntil, startTestStack } from "./support/stack";

// The worker's store builds its Timestamps with the functions package's own copy of the client
// (the same version), whose types are ambient: hence require.
const { Firestore: WorkerFirestore } =
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require("../../functions/node_modules/@google-cloud/firestore") as {
    Firestore: typeof Firestore;
  };

const POISON = `poison-${RUN_ID}`;
const TENANT = `replay-${RUN_ID}`;

describe("replay and status on the emulators", function () {
  this.timeout(240_000);
  let faulty: TestStack;
  let healthy: TestStack;
  let firestore: Firestore;
  let pubsub: PubSub;
  const project = ["--project", TEST_PROJECT];
  const replay = (...args: string[]) =>
    runCli("replay.ts", [...project, "--topic", healthy.topic, "--wait", "30", ...args]);
  const status = async (...args: string[]) =>
    (await runCli("status.ts", [...project, ...args])).json;
  const failedLogs = () => firestore.collection(`tenants/${TENANT}/failed_logs`);
  const processed = (logId: string) =>
    firestore.doc(`tenants/${TENANT}/processed_logs/${logId}`).get();
  const record = (logId: string, text: string, source = "json_upload") => ({
    tenant_id: TENANT,
    log_id: logId,
    source,
    text,
    received_at: new Date().toISOString(),
  });
  const envelope = (...records: object[]) => Buffer.from(JSON.stringify({ v: 1, records }));

  before(async () => {
    [faulty, healthy] = await Promise.all([
      startTestStack("replay-faulty", {
        AUTH_MODE: "disabled",
        FAULT_POISON_MARKER: POISON,
        MAX_DELIVERY_ATTEMPTS: "2",
        MAX_EVENT_AGE_SECONDS: "60",
      }),
      startTestStack("replay-healthy", { AUTH_MODE: "disabled" }),
    ]);
    firestore = new Firestore({ projectId: TEST_PROJECT });
    pubsub = new PubSub({ projectId: TEST_PROJECT });
  });
  after(async () => {
    await pubsub?.close();
    await firestore?.terminate();
    await Promise.allSettled([faulty?.stop(), healthy?.stop()]);
  });

  it("replays each replayable failure once, keeps the rest, and a second run stores nothing new", async () => {
    // retries_exhausted: through ingest, failing both attempts the worker is allowed.
    const exhausted = await fetch(faulty.ingestUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        tenant_id: TENANT,
        log_id: "exhausted-1",
        text: `a ${POISON} a@b.example`,
      }),
    });
    expect(exhausted.status).to.equal(202);
    // expired: the push Pub/Sub makes of a message published two hours ago.
    const expired = record("expired-1", `${POISON} late`);
    const push = await fetch(faulty.processUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        subscription: `projects/${TEST_PROJECT}/subscriptions/${faulty.subscription}`,
        message: {
          data: envelope(expired).toString("base64"),
          messageId: `expired-${RUN_ID}`,
          publishTime: new Date(Date.now() - 2 * 3600_000).toISOString(),
        },
      }),
    });
    expect(push.status).to.be.within(200, 299);
    // invalid_record: a record of an unknown source, as an ingest of another version could send.
    await pubsub.topic(faulty.topic).publishMessage({
      data: envelope(record("invalid-1", "from a fax", "fax")),
    });
    // rejected_by_store (Firestore refused the document) is recorded through the worker's store.
    const rejected = record("rejected-1", "refused once");
    const workerFirestore = new WorkerFirestore({ projectId: TEST_PROJECT });
    await createFirestoreStore(workerFirestore, 10_000).recordFailedLog({
      ...rejected,
      source: "json_upload",
      original_text: rejected.text,
      received_at: new Date(rejected.received_at),
      reason: "rejected_by_store",
      detail: "Firestore refused the document",
      text_sha256: sha256Hex(rejected.text),
      message_id: "1",
      delivery_attempt: 1,
      expire_at: new Date(Date.now() + 86_400_000),
    });
    await workerFirestore.terminate();
    const entries = await pollUntil(
      async () => {
        const snapshot = await failedLogs().get();
        return snapshot.size === 4 ? snapshot.docs : undefined;
      },
      { timeoutMs: 60_000, what: "four failure entries" },
    );

    const failedBefore = {
      expired: 1,
      invalid_record: 1,
      rejected_by_store: 1,
      retries_exhausted: 1,
    };
    expect(await status("--tenant", TENANT)).to.deep.include({
      tenants: [{ tenant_id: TENANT, processed: 0, failed: failedBefore }],
    });

    const dry = await replay("--tenant", TENANT, "--dry-run");
    expect(dry.json).to.deep.equal({
      dry_run: true,
      replayed: 3,
      already_stored: 0,
      still_failing: 1,
    });
    expect(dry.stdout).to.match(
      /still failing: .*invalid-1~invalid_record.*fails the pipeline schema/,
    );
    expect((await failedLogs().get()).size, "a dry run deletes nothing").to.equal(4);

    const first = await replay("--tenant", TENANT);
    expect(first.json, first.stdout).to.deep.equal({
      dry_run: false,
      replayed: 3,
      already_stored: 0,
      still_failing: 1,
    });
    expect(first.code, "still failing: exit 1").to.equal(1);
    const replayed = ["exhausted-1", "expired-1", "rejected-1"];
    const stored = await Promise.all(replayed.map(processed));
    for (const [index, doc] of stored.entries()) {
      const entry = entries.find((e) => e.get("log_id") === replayed[index]);
      expect(doc.get("text_sha256"), replayed[index]).to.equal(entry?.get("text_sha256"));
    }
    expect(stored[0]?.get("modified_data")).to.include("[REDACTED").and.not.include("a@b.example");
    expect((await failedLogs().get()).docs.map((doc) => doc.get("reason"))).to.deep.equal([
      "invalid_record",
    ]);
    expect(await status("--tenant", TENANT)).to.deep.include({
      tenants: [{ tenant_id: TENANT, processed: 3, failed: { invalid_record: 1 } }],
    });

    // A run interrupted after storing leaves its entries: put them back and replay again.
    const writes = firestore.batch();
    entries.forEach((entry) => writes.set(entry.ref, entry.data()));
    await writes.commit();
    const second = await replay("--tenant", TENANT);
    expect(second.json).to.deep.equal({
      dry_run: false,
      replayed: 0,
      already_stored: 3,
      still_failing: 1,
    });
    const again = await Promise.all(replayed.map(processed));
    expect(again.map((doc) => doc.updateTime?.toMillis())).to.deep.equal(
      stored.map((doc) => doc.updateTime?.toMillis()),
    );
    expect((await failedLogs().get()).size).to.equal(1);
    expect(
      (await firestore.collection(`tenants/${TENANT}/processed_logs`).count().get()).data().count,
    ).to.equal(3);
  });

  it("replays a dead-lettered message, acks it once stored, and leaves an unreadable one", async () => {
    const subscription = `dl-${RUN_ID}-hold`;
    const [topic] = await pubsub.createTopic(`dl-${RUN_ID}`);
    await topic.createSubscription(subscription);
    const letter = {
      data: envelope(record("dead-1", "first of two"), record("dead-2", "second of two")),
      // Pub/Sub adds these when it forwards a message to the dead-letter topic.
      attributes: { records: "2", CloudPubSubDeadLetterSourceDeliveryCount: "10" },
    };
    await topic.publishMessage(letter);
    await topic.publishMessage({ data: Buffer.from("not a pipeline message") });
    const dl = ["--dead-letters", "--dead-letter-subscription", subscription];
    const backlog = async () =>
      (
        (await status("--tenant", TENANT, "--dead-letter-subscription", subscription))
          .dead_letter_subscription as { backlog: number }
      ).backlog;
    expect(await backlog()).to.equal(2);
    expect(await backlog(), "status acks nothing").to.equal(2);

    const first = await replay(...dl);
    expect(first.json, first.stdout).to.deep.equal({
      dry_run: false,
      replayed: 2,
      already_stored: 0,
      still_failing: 1,
    });
    expect(first.stdout).to.match(/still failing: dead letter \d+ \(not a pipeline message/);
    expect((await processed("dead-1")).get("original_text")).to.equal("first of two");
    expect((await processed("dead-2")).exists).to.equal(true);
    expect(await backlog(), "only the unreadable message is held").to.equal(1);

    // The same message dead-lettered again: already stored, acked, nothing written.
    const before = (await processed("dead-1")).updateTime?.toMillis();
    await topic.publishMessage(letter);
    const second = await replay(...dl);
    expect(second.json).to.deep.equal({
      dry_run: false,
      replayed: 0,
      already_stored: 2,
      still_failing: 1,
    });
    expect((await processed("dead-1")).updateTime?.toMillis()).to.equal(before);
    expect(await backlog()).to.equal(1);
  });
  it("keeps a log_id_conflict while another text holds its log_id, and replays it once that is gone", async () => {
    const tenant = `conflict-${RUN_ID}`;
    const send = async (text: string) => {
      const body = JSON.stringify({ tenant_id: tenant, log_id: "c1", text });
      const headers = { "content-type": "application/json" };
      expect((await fetch(healthy.ingestUrl, { method: "POST", headers, body })).status).to.equal(
        202,
      );
    };
    const stored = firestore.doc(`tenants/${tenant}/processed_logs/c1`);
    const conflicts = firestore.collection(`tenants/${tenant}/failed_logs`);
    await send("first version");
    await pollUntil(async () => (await stored.get()).exists || undefined, {
      timeoutMs: 30_000,
      what: "c1",
    });
    await send("second version");
    await pollUntil(async () => (await conflicts.get()).size === 1 || undefined, {
      timeoutMs: 30_000,
      what: "conflict",
    });

    const blocked = await replay("--tenant", tenant, "--reason", "log_id_conflict");
    expect(blocked.json).to.deep.include({ replayed: 0, already_stored: 0, still_failing: 1 });
    expect(blocked.stdout).to.match(/another text is stored under this log_id/);
    expect((await conflicts.get()).size).to.equal(1);

    await stored.delete();
    const replayed = await replay("--tenant", tenant, "--reason", "log_id_conflict");
    expect(replayed.json).to.deep.include({ replayed: 1, already_stored: 0, still_failing: 0 });
    expect(replayed.code).to.equal(0);
    expect((await stored.get()).get("original_text")).to.equal("second version");
    expect((await conflicts.get()).size).to.equal(0);
  });
});

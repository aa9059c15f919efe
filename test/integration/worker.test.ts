/**
 * The worker's rare paths on the real emulators, each reproduced as production would meet it:
 * the exact CloudEvent Eventarc delivers (binary mode, with and without deliveryAttempt), the
 * attempts of one message landing on two instances, an old and a new revision side by side,
 * messages an ingest of another version could publish, and deliveries that overlap.
 */
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { Firestore } from "@google-cloud/firestore";
import { PubSub } from "@google-cloud/pubsub";
import type { PipelineRecord } from "../../functions/src/lib/schema";
import { pollUntil, startExtraInstance, startTestStack, type TestStack } from "./support/stack";

const runId = randomUUID().slice(0, 8);
const POISON = `poison-${runId}`;
const MAX_ATTEMPTS = 3;

describe("worker on the emulators", function () {
  this.timeout(120_000);
  let stack: TestStack;
  let firestore: Firestore;
  let pubsub: PubSub;
  const tenant = `worker-${runId}`;
  let sequence = 0;

  /** A record as ingest publishes it; `log_id` unique to the test unless given. */
  const record = (overrides: Partial<PipelineRecord> = {}): PipelineRecord => ({
    tenant_id: tenant,
    log_id: `r-${runId}-${(sequence += 1)}`,
    source: "json_upload",
    text: `text ${sequence}`,
    received_at: new Date().toISOString(),
    ...overrides,
  });

  interface EventOptions {
    readonly messageId?: string;
    readonly publishTime?: Date;
    readonly deliveryAttempt?: number;
  }

  /**
   * POSTs the event Eventarc delivers for a Pub/Sub message: a binary-mode CloudEvent of type
   * google.cloud.pubsub.topic.v1.messagePublished whose data is MessagePublishedData.
   */
  const deliver = async (url: string, payload: unknown, options: EventOptions = {}) => {
    const messageId = options.messageId ?? `${Date.now()}${(sequence += 1)}`;
    const published = options.publishTime ?? new Date();
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": messageId,
        "ce-source": `//pubsub.googleapis.com/projects/${stack.project}/topics/${stack.topic}`,
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-time": published.toISOString(),
      },
      body: JSON.stringify({
        message: {
          data: Buffer.from(JSON.stringify(payload)).toString("base64"),
          messageId,
          publishTime: published.toISOString(),
          attributes: {},
        },
        subscription: `projects/${stack.project}/subscriptions/${stack.subscription}`,
        ...(options.deliveryAttempt === undefined
          ? {}
          : { deliveryAttempt: options.deliveryAttempt }),
      }),
    });
    await response.arrayBuffer();
    return response.status;
  };

  const workerUrl = () => new URL(stack.processUrl).origin + "/";
  const processed = (logId: string) =>
    firestore.doc(`tenants/${tenant}/processed_logs/${logId}`).get();
  const failures = async (logId: string) =>
    (await firestore.collection(`tenants/${tenant}/failed_logs`).where("log_id", "==", logId).get())
      .docs;
  const waitForProcessed = (logId: string) =>
    pollUntil(
      async () => {
        const snapshot = await processed(logId);
        return snapshot.exists ? snapshot : undefined;
      },
      { timeoutMs: 30_000, what: `processed_logs/${logId}` },
    );
  const publish = (payload: unknown) =>
    pubsub.topic(stack.topic).publishMessage({ data: Buffer.from(JSON.stringify(payload)) });

  before(async () => {
    stack = await startTestStack("worker", {
      MAX_DELIVERY_ATTEMPTS: String(MAX_ATTEMPTS),
      FAULT_POISON_MARKER: POISON,
      MAX_EVENT_AGE_SECONDS: "3600",
    });
    firestore = new Firestore({ projectId: stack.project });
    pubsub = new PubSub({ projectId: stack.project });
  });
  after(async () => {
    await pubsub?.close();
    await firestore?.terminate();
    await stack?.stop();
  });

  describe("the production CloudEvent", () => {
    it("stores a record delivered as Eventarc delivers it, with Pub/Sub's attempt number", async () => {
      const withAttempt = record();
      const without = record();
      expect(
        await deliver(workerUrl(), { v: 1, records: [withAttempt] }, { deliveryAttempt: 2 }),
      ).to.be.within(200, 299);
      expect(await deliver(workerUrl(), { v: 1, records: [without] })).to.be.within(200, 299);
      expect((await processed(withAttempt.log_id)).get("delivery_attempt")).to.equal(2);
      expect((await processed(without.log_id)).get("delivery_attempt")).to.equal(1);
    });

    it("gives up at the attempt Pub/Sub reports as the last, and acks", async () => {
      const poison = record({ text: `a ${POISON} record` });
      const payload = { v: 1, records: [poison] };
      const early = await deliver(workerUrl(), payload, { deliveryAttempt: MAX_ATTEMPTS - 1 });
      expect(early, "an attempt before the last is retried").to.equal(500);
      expect(await failures(poison.log_id)).to.have.length(0);
      const last = await deliver(workerUrl(), payload, { deliveryAttempt: MAX_ATTEMPTS });
      expect(last).to.be.within(200, 299);
      const [failure] = await failures(poison.log_id);
      expect(failure?.data()).to.include({
        reason: "retries_exhausted",
        delivery_attempt: MAX_ATTEMPTS,
        original_text: poison.text,
      });
      expect((await processed(poison.log_id)).exists).to.equal(false);
    });
  });

  it("counts the attempts of one message across two instances, so the limit holds", async () => {
    const other = await startExtraInstance(stack, "process", "process-second");
    const poison = record({ text: `${POISON} moving between instances` });
    const event = { messageId: `moving-${runId}` };
    const statuses: number[] = [];
    // Without deliveryAttempt, as the local push and older event definitions deliver it.
    for (const url of [workerUrl(), other.url, workerUrl()]) {
      statuses.push(await deliver(url, { v: 1, records: [poison] }, event));
    }
    // Each instance saw at most two attempts, yet the third overall is the last.
    expect(statuses).to.deep.equal([500, 500, 204]);
    const [failure] = await failures(poison.log_id);
    expect(failure?.data()).to.include({ reason: "retries_exhausted", delivery_attempt: 3 });
    const counted = await firestore.doc(`delivery_attempts/${event.messageId}`).get();
    expect(counted.get("failed_attempts")).to.equal(3);
  });

  it("on the last attempt, records only the records no attempt stored", async () => {
    // An old revision without the fault stored one record; the new one fails it and another.
    const stored = record({ text: `stored earlier, then ${POISON}` });
    const lost = record({ text: `never stored, ${POISON}` });
    const fine = record();
    const healthy = await startExtraInstance(stack, "process", "process-healthy", {
      FAULT_POISON_MARKER: "",
    });
    expect(await deliver(healthy.url, { v: 1, records: [stored] })).to.be.within(200, 299);
    const status = await deliver(
      workerUrl(),
      { v: 1, records: [stored, lost, fine] },
      { deliveryAttempt: MAX_ATTEMPTS },
    );
    expect(status).to.be.within(200, 299);
    expect((await processed(stored.log_id)).exists).to.equal(true);
    expect(await failures(stored.log_id)).to.have.length(0);
    expect((await processed(lost.log_id)).exists).to.equal(false);
    expect((await failures(lost.log_id)).map((doc) => doc.get("reason"))).to.deep.equal([
      "retries_exhausted",
    ]);
    expect((await processed(fine.log_id)).exists).to.equal(true);
    expect(await failures(fine.log_id)).to.have.length(0);
  });

  it("still stores an expired event, and records as expired only what it cannot store", async () => {
    const hoursAgo = { publishTime: new Date(Date.now() - 2 * 3600_000) };
    const storedEarlier = record({ text: `${POISON} stored by an earlier attempt` });
    const healthy = await startExtraInstance(stack, "process", "process-healthy-2", {
      FAULT_POISON_MARKER: "",
    });
    expect(await deliver(healthy.url, { v: 1, records: [storedEarlier] })).to.be.within(200, 299);
    const fresh = record();
    const failing = record({ text: `${POISON} expired` });
    const status = await deliver(
      workerUrl(),
      { v: 1, records: [storedEarlier, fresh, failing] },
      hoursAgo,
    );
    expect(status).to.be.within(200, 299);
    expect(await failures(storedEarlier.log_id)).to.have.length(0);
    expect((await processed(fresh.log_id)).exists).to.equal(true);
    expect((await failures(failing.log_id)).map((doc) => doc.get("reason"))).to.deep.equal([
      "expired",
    ]);
  });

  it("stores the valid neighbours of a record the worker's schema refuses", async () => {
    const before = record();
    const after = record();
    const refused = { ...record(), text: "x".repeat(200_000) };
    await publish({ v: 1, records: [before, refused, after] });
    await waitForProcessed(before.log_id);
    await waitForProcessed(after.log_id);
    const failed = await pollUntil(
      async () => {
        const docs = await failures(refused.log_id);
        return docs.length > 0 ? docs : undefined;
      },
      { timeoutMs: 30_000, what: "the refused record's failure" },
    );
    expect(failed.map((doc) => doc.get("reason"))).to.deep.equal(["invalid_record"]);
    expect((await processed(refused.log_id)).exists).to.equal(false);
  });

  it("keeps the first of two records with one log id, in message order, every time", async () => {
    for (let round = 0; round < 3; round += 1) {
      const first = record({ text: `first ${round}` });
      const second = { ...first, text: `second ${round}` };
      await publish({ v: 1, records: [first, second, first] });
      const doc = await waitForProcessed(first.log_id);
      expect(doc.get("original_text")).to.equal(first.text);
      const conflicts = await pollUntil(
        async () => {
          const docs = await failures(first.log_id);
          return docs.length > 0 ? docs : undefined;
        },
        { timeoutMs: 30_000, what: "the conflict" },
      );
      expect(
        conflicts.map((item) => [item.get("reason"), item.get("original_text")]),
      ).to.deep.equal([["log_id_conflict", second.text]]);
    }
  });

  it("stores one document when the same message is delivered several times at once", async () => {
    const records = [record(), record(), record()];
    const event = { messageId: `twice-${runId}` };
    const statuses = await Promise.all(
      Array.from({ length: 5 }, () => deliver(workerUrl(), { v: 1, records }, event)),
    );
    expect(statuses.every((status) => status >= 200 && status < 300)).to.equal(true);
    for (const item of records) {
      expect((await processed(item.log_id)).get("original_text")).to.equal(item.text);
      expect(await failures(item.log_id)).to.have.length(0);
    }
  });
});

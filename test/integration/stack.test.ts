/**
 * The integration harness itself: real emulators, the push subscription Eventarc would create,
 * one record from HTTP to Firestore, and a crashed worker replaced as Cloud Run would.
 */
import { Firestore } from "@google-cloud/firestore";
import { PubSub } from "@google-cloud/pubsub";
import { expect } from "chai";
import {
  RUN_ID,
  type TestStack,
  pollUntil,
  sharedEmulators,
  startTestStack,
} from "./support/stack";

describe("integration harness", function () {
  this.timeout(90_000);
  let stack: TestStack;
  let firestore: Firestore;

  before(async () => {
    stack = await startTestStack("harness", { AUTH_MODE: "disabled" });
    firestore = new Firestore({ projectId: stack.project });
  });
  after(async () => {
    await firestore?.terminate();
    await stack?.stop();
  });

  const ingest = (logId: string) =>
    fetch(stack.ingestUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tenant_id: "acme", log_id: logId, text: "hello" }),
    });
  const processedDoc = (logId: string) =>
    pollUntil(
      async () => {
        const snapshot = await firestore.doc(`tenants/acme/processed_logs/${logId}`).get();
        return snapshot.exists ? snapshot : undefined;
      },
      { timeoutMs: 20_000, what: `tenants/acme/processed_logs/${logId}` },
    );

  it("runs both emulators and points the stack at them", async () => {
    const { pubsubHost, firestoreHost } = sharedEmulators();
    for (const host of [pubsubHost, firestoreHost]) {
      const response = await fetch(`http://${host}/`);
      expect((await response.text()).trim()).to.equal("Ok");
    }
    expect(stack.env).to.include({
      PUBSUB_EMULATOR_HOST: pubsubHost,
      FIRESTORE_EMULATOR_HOST: firestoreHost,
      GOOGLE_CLOUD_PROJECT: stack.project,
      GCLOUD_PROJECT: stack.project,
      INGEST_TOPIC: stack.topic,
    });
    expect(stack.topic).to.equal(`rdp-${RUN_ID}-harness`);
  });

  it("pushes the topic to the worker at the path functions-framework reads", async () => {
    const pubsub = new PubSub({ projectId: stack.project });
    try {
      const [metadata] = await pubsub.subscription(stack.subscription).getMetadata();
      expect(metadata.topic).to.equal(`projects/${stack.project}/topics/${stack.topic}`);
      expect(metadata.pushConfig?.pushEndpoint).to.equal(stack.processUrl);
      expect(new URL(stack.processUrl).pathname).to.equal(
        `/projects/${stack.project}/topics/${stack.topic}`,
      );
      // No retry policy: the emulator stalls a subscription with one (scripts/local/lib/stack.ts, pushTopology).
      expect(metadata.retryPolicy ?? null).to.equal(null);
    } finally {
      await pubsub.close();
    }
  });

  it("turns a POST into a processed document", async () => {
    const logId = `harness-${RUN_ID}-1`;
    const response = await ingest(logId);
    expect(response.status).to.equal(202);
    await processedDoc(logId);
  });

  it("replaces a killed worker with one that serves the next message", async () => {
    const killed = stack.worker.pid;
    expect(killed).to.be.a("number");
    process.kill(killed as number, "SIGKILL");
    await pollUntil(
      async () =>
        stack.worker.restarts === 1 && stack.worker.pid !== undefined ? true : undefined,
      { timeoutMs: 10_000, what: "the supervisor to start a new worker" },
    );
    expect(stack.worker.pid).to.not.equal(killed);

    const logId = `harness-${RUN_ID}-2`;
    expect((await ingest(logId)).status).to.equal(202);
    await processedDoc(logId);
    expect(await stack.readLog("process")).to.include("[supervisor] instance exited on SIGKILL");
  });

  it("replaces a killed ingest, as Cloud Run replaces a crashed instance", async () => {
    const killed = stack.ingest.pid;
    expect(killed).to.be.a("number");
    process.kill(killed as number, "SIGKILL");
    await pollUntil(
      async () =>
        stack.ingest.restarts === 1 && stack.ingest.pid !== undefined ? true : undefined,
      { timeoutMs: 10_000, what: "the supervisor to start a new ingest" },
    );
    const logId = `harness-${RUN_ID}-3`;
    const answered = await pollUntil(
      async () => {
        const response = await ingest(logId).catch(() => undefined);
        return response?.status === 202 ? response : undefined;
      },
      { timeoutMs: 30_000, what: "the new ingest to accept a record" },
    );
    expect(answered.status).to.equal(202);
    await processedDoc(logId);
    expect(await stack.readLog("ingest")).to.include("[supervisor] instance exited on SIGKILL");
  });
});

/**
 * The exported functions as Firebase loads them, driven by firebase-functions-test
 * against the shared emulators: `process` through `wrap`, `ingest` (an onRequest
 * function, which firebase-functions-test does not wrap) called with a request and
 * response the way the Functions Framework calls it.
 */
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { Firestore } from "@google-cloud/firestore";
import { PubSub, type Subscription } from "@google-cloud/pubsub";
import functionsTest from "firebase-functions-test";
import { sharedEmulators } from "./support/hooks";

const runId = randomUUID().slice(0, 8);

describe("exported functions under firebase-functions-test", function () {
  this.timeout(60_000);
  const testEnv = functionsTest();
  const project = `demo-rdp-fft-${runId}`;
  const topic = `rdp-${runId}-fft`;
  let pubsub: PubSub;
  let subscription: Subscription;
  let firestore: Firestore;
  let functions: typeof import("../../functions/src/index");

  before(async () => {
    const { pubsubHost, firestoreHost } = sharedEmulators();
    // The functions read their configuration once, when the module loads.
    Object.assign(process.env, {
      PUBSUB_EMULATOR_HOST: pubsubHost,
      FIRESTORE_EMULATOR_HOST: firestoreHost,
      GCLOUD_PROJECT: project,
      GOOGLE_CLOUD_PROJECT: project,
      INGEST_TOPIC: topic,
      AUTH_MODE: "disabled",
    });
    pubsub = new PubSub({ projectId: project });
    const [created] = await pubsub.createTopic(topic);
    [subscription] = await created.createSubscription(`${topic}-pull`);
    firestore = new Firestore({ projectId: project });
    functions = await import("../../functions/src/index");
  });

  after(async () => {
    testEnv.cleanup();
    await firestore?.terminate();
    await pubsub?.close();
  });

  it("ingest publishes the normalised record and answers 202", async () => {
    const logId = `fft-ingest-${runId}`;
    const received = nextMessage(subscription);
    const response = await invokeHttp(functions.ingest, {
      method: "POST",
      path: "/",
      headers: { "content-type": "application/json" },
      rawBody: Buffer.from(
        JSON.stringify({ tenant_id: "acme", log_id: logId, text: "call 555-0199" }),
      ),
    });
    expect(response.status).to.equal(202);
    expect(JSON.parse(response.body)).to.include({ tenant_id: "acme", log_id: logId });
    const message = await received;
    expect(JSON.parse(message.data.toString("utf8")).records[0]).to.include({
      tenant_id: "acme",
      log_id: logId,
      source: "json_upload",
      text: "call 555-0199",
    });
  });

  it("process, wrapped, writes the redacted document", async () => {
    const logId = `fft-process-${runId}`;
    const message = {
      v: 1,
      records: [
        {
          tenant_id: "acme",
          log_id: logId,
          source: "text_upload",
          text: "card 4111 1111 1111 1111",
          received_at: new Date().toISOString(),
        },
      ],
    };
    // The test package resolves its own copy of firebase-functions; the types differ, the object does not.
    const wrapped = testEnv.wrap(functions.process as never) as (
      event: unknown,
    ) => Promise<unknown>;
    await wrapped({
      data: {
        message: {
          messageId: `fft-${runId}`,
          publishTime: new Date().toISOString(),
          data: Buffer.from(JSON.stringify(message)).toString("base64"),
          attributes: {},
        },
        subscription: "projects/p/subscriptions/s",
      },
    });
    const doc = await firestore.doc(`tenants/acme/processed_logs/${logId}`).get();
    expect(doc.data()).to.include({
      modified_data: "card [REDACTED]",
      source: "text_upload",
      message_id: `fft-${runId}`,
    });
  });
});

interface FakeRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly rawBody: Buffer;
}

/** Calls an onRequest function with the request fields and response calls it uses. */
function invokeHttp(
  handler: (req: never, res: never) => unknown,
  request: FakeRequest,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const result = { status: 200, headers: {} as Record<string, string>, body: "" };
    const res = {
      status(code: number) {
        result.status = code;
        return res;
      },
      set(headers: Record<string, string>) {
        Object.assign(result.headers, headers);
        return res;
      },
      send(body: string) {
        result.body = body;
        resolve(result);
        return res;
      },
      on: () => res,
    };
    const req = { ...request, header: (name: string) => request.headers[name.toLowerCase()] };
    Promise.resolve(handler(req as never, res as never)).catch(reject);
  });
}

function nextMessage(subscription: Subscription): Promise<{ data: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no message within 15 s")), 15_000);
    subscription.once("message", (message) => {
      clearTimeout(timer);
      message.ack();
      void subscription.close();
      resolve(message);
    });
    subscription.once("error", reject);
  });
}

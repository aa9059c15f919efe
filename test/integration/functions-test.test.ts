/**
 * The exported functions as Firebase loads them, driven by firebase-functions-test
 * against the shared emulators: `process` through `wrap`, `ingest` (an onRequest
 * function, which firebase-functions-test does not wrap) called with a request and
 * response the way the Functions Framework calls it, and `ingest` once more behind the
 * Functions Framework's own server (its testing module), with the body gate as deployed.
 */
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { Firestore } from "@google-cloud/firestore";
import { PubSub, type Subscription } from "@google-cloud/pubsub";
import { http as registerHttpFunction } from "@google-cloud/functions-framework";
import { getTestServer } from "@google-cloud/functions-framework/testing";
import functionsTest from "firebase-functions-test";
import type { RequestListener, Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { gateRequests } from "../../functions/src/lib/body-gate";
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
    const received = nextMessage(subscription, logId);
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

  describe("ingest behind the Functions Framework's server", () => {
    let server: Server;
    let url: string;

    before(async () => {
      registerHttpFunction("ingest", functions.ingest as never);
      server = getTestServer("ingest");
      // What installBodyGate does to the server the framework creates in an ingest instance.
      const { ingestBodyGate } = await import("../../functions/src/lib/dependencies");
      for (const app of server.listeners("request") as RequestListener[]) {
        server.removeListener("request", app);
        server.on("request", gateRequests(app, ingestBodyGate()));
      }
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
    });
    after(async () => {
      server?.closeAllConnections();
      await new Promise((resolve) => server?.close(resolve));
    });

    it("accepts a gzip-compressed record and publishes it", async () => {
      const logId = `fft-server-${runId}`;
      const received = nextMessage(subscription, logId);
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": "gzip" },
        body: gzipSync(JSON.stringify({ tenant_id: "acme", log_id: logId, text: "zipped" })),
      });
      expect(response.status).to.equal(202);
      const message = await received;
      expect(JSON.parse(message.data.toString("utf8")).records[0]).to.include({
        log_id: logId,
        text: "zipped",
      });
    });

    it("answers malformed JSON and a compression bomb with problem+json, before the framework's parser", async () => {
      const malformed = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"tenant_id": "acme", "text": ',
      });
      expect(malformed.status).to.equal(400);
      expect(malformed.headers.get("content-type")).to.match(/^application\/problem\+json/);
      const bomb = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "content-encoding": "gzip" },
        body: gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20)),
      });
      expect(bomb.status).to.equal(413);
      expect(await bomb.json()).to.include({ type: "urn:rdp:problem:payload-too-large" });
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

/** The next message carrying the record `logId`; others (redeliveries of earlier ones) are acked. */
function nextMessage(subscription: Subscription, logId: string): Promise<{ data: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no message for ${logId} within 15 s`)),
      15_000,
    );
    const onMessage = (message: { data: Buffer; ack(): void }) => {
      message.ack();
      if (!message.data.toString("utf8").includes(`"log_id":"${logId}"`)) return;
      clearTimeout(timer);
      subscription.removeListener("message", onMessage);
      void subscription.close();
      resolve(message);
    };
    subscription.on("message", onMessage);
    subscription.once("error", reject);
  });
}

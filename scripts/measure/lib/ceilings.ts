/**
 * The machine's own ceilings, each measured with a trivial client on the same emulators the
 * product then runs on, so the product's figures read as a fraction of what the emulators can
 * do on this machine at this moment:
 *
 * - publish: the Pub/Sub emulator's publish rate from one Node client (1,000 outstanding);
 * - publish-ack latency: the same emulator's acknowledgement latency for a trivial publisher
 *   sending open loop at a given rate (the single-record phase's), counted from each message's
 *   scheduled time: the broker's own tail, against which ingest's is read;
 * - push: the emulator's push delivery rate to a function that returns at once (a no-op
 *   CloudEvent function served by functions-framework, as the worker is), and to a bare
 *   node:http server, with a small bounded backlog;
 * - firestore: the Firestore emulator's write rate, as single creates (64 in flight) and as
 *   WriteBatch commits of 500 creates.
 *
 * Every loop is bounded in time and in count.
 */
import { PubSub } from "@google-cloud/pubsub";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import {
  LOOPBACK,
  ManagedProcess,
  childEnv,
  emulatorFirestore,
  freePort,
  sleep,
} from "../../local/lib/emulators";
import { FRAMEWORK_MAIN } from "../../local/lib/stack";
import { latencyHistogram, ratePerSecond, recordMs, summaryOf, type Summary } from "./stats";

export interface CeilingOptions {
  readonly project: string;
  readonly pubsubHost: string;
  readonly firestoreHost: string;
  /** Where the no-op function's log goes. */
  readonly logDir: string;
  /** Seconds each measurement runs (after its own short warm-up). */
  readonly seconds: number;
  /** A unique suffix for topics, subscriptions and collections of this run. */
  readonly runId: string;
}

export interface CeilingResult {
  readonly name: string;
  /** Operations per second: messages published or pushed, documents written. */
  readonly rate: number;
  readonly count: number;
  readonly seconds: number;
  readonly note: string;
  /** Publish-ack latency from the scheduled send time (the open-loop measurement only). */
  readonly latency?: Summary;
  readonly offeredRate?: number;
  readonly maxInFlight?: number;
}

/** A message of the size of a typical pipeline message carrying one record. */
const SAMPLE_MESSAGE = Buffer.from(
  JSON.stringify({
    v: 1,
    records: [
      {
        tenant_id: "bench",
        log_id: "00000000-0000-4000-8000-000000000000",
        source: "json_upload",
        text: "2026-11-28T14:00:00Z INFO user 555-0199 signed in from 10.0.0.1 ".repeat(3),
        received_at: "2026-11-28T14:00:00.000Z",
      },
    ],
  }),
);

/** Runs `operation` with `inFlight` copies at a time until the deadline; what they counted. */
async function closedLoop(
  operation: () => Promise<number>,
  options: { readonly ms: number; readonly inFlight: number; readonly maxCount: number },
): Promise<{ count: number; elapsedMs: number; errors: number }> {
  const started = Date.now();
  let count = 0;
  let errors = 0;
  const worker = async () => {
    while (Date.now() < started + options.ms && count < options.maxCount) {
      const done = await operation().catch(() => ((errors += 1), 0));
      count += done;
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, worker));
  return { count, elapsedMs: Date.now() - started, errors };
}

const result = (
  name: string,
  run: { count: number; elapsedMs: number; errors?: number },
  note: string,
): CeilingResult => ({
  name,
  rate: ratePerSecond(run.count, run.elapsedMs),
  count: run.count,
  seconds: run.elapsedMs / 1000,
  note: run.errors ? `${note}, ${run.errors} errors` : note,
});

/** A topic with a subscription holding what is published (as the product's does), removed after. */
async function withTopic<T>(
  options: CeilingOptions,
  name: string,
  subscription: Record<string, unknown>,
  body: (client: PubSub, topicName: string) => Promise<T>,
): Promise<T> {
  const client = new PubSub({
    projectId: options.project,
    apiEndpoint: options.pubsubHost,
    emulatorMode: true,
  });
  const topicName = `bench-${name}-${options.runId}`;
  try {
    const [topic] = await client.createTopic(topicName);
    await topic.createSubscription(`${topicName}-sub`, subscription);
    return await body(client, topicName);
  } finally {
    const quietly = (removal: Promise<unknown>) => removal.catch(() => undefined);
    await quietly(client.subscription(`${topicName}-sub`).delete());
    await quietly(client.topic(topicName).delete());
    await client.close();
  }
}

export function measurePublishCeiling(options: CeilingOptions): Promise<CeilingResult> {
  return withTopic(options, "publish", {}, async (client, topicName) => {
    const topic = client.topic(topicName);
    const publish = () => topic.publishMessage({ data: SAMPLE_MESSAGE }).then(() => 1);
    await closedLoop(publish, { ms: 2_000, inFlight: 1_000, maxCount: 50_000 });
    const run = await closedLoop(publish, {
      ms: options.seconds * 1000,
      inFlight: 1_000,
      maxCount: 400_000,
    });
    const note = `one client, default batching, 1,000 outstanding, ${SAMPLE_MESSAGE.length} B messages`;
    return result("Pub/Sub emulator publish", run, note);
  });
}

/**
 * Publish-ack latency of a trivial publisher sending open loop at `rate` messages a second, one
 * message a publish as ingest's publisher does (batching off), counted from each message's
 * scheduled time so a stalled client or broker is not hidden (no coordinated omission).
 */
export function measurePublishLatency(
  options: CeilingOptions & { readonly rate: number },
): Promise<CeilingResult> {
  return withTopic(options, "publish-ack", {}, async (client, topicName) => {
    const topic = client.topic(topicName, { batching: { maxMessages: 1 } });
    const histogram = latencyHistogram();
    const total = Math.round(options.rate * options.seconds);
    const started = Date.now() + 1_000; // after a second of warm-up at the same rate
    const warmUp = Math.round(options.rate);
    let inFlight = 0;
    let maxInFlight = 0;
    let errors = 0;
    const sends: Promise<void>[] = [];
    for (let index = -warmUp; index < total;) {
      const now = Date.now();
      for (; index < total && started + (index * 1000) / options.rate <= now; index += 1) {
        const due = started + (index * 1000) / options.rate;
        const measured = index >= 0;
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, measured ? inFlight : 0);
        sends.push(
          topic
            .publishMessage({ data: SAMPLE_MESSAGE })
            .then(
              () => void (measured && recordMs(histogram, Date.now() - due)),
              () => void (errors += 1),
            )
            .finally(() => void (inFlight -= 1)),
        );
      }
      await sleep(1);
    }
    await Promise.all(sends);
    const elapsedMs = Date.now() - started;
    return {
      ...result(
        `Pub/Sub emulator publish-ack latency at ${Math.round(options.rate)}/s`,
        { count: histogram.totalCount, elapsedMs, errors },
        `open loop, one client, one message a publish (batching off, as ingest), ${SAMPLE_MESSAGE.length} B`,
      ),
      latency: summaryOf(histogram),
      offeredRate: options.rate,
      maxInFlight,
    };
  });
}

/** Where pushes land: something that counts deliveries. */
interface PushReceiver {
  readonly hostPort: string;
  count(): number;
  stop(): Promise<void>;
}

/** functions-framework serving a CloudEvent no-op that prints a line a delivery, as the worker is served. */
async function frameworkReceiver(logDir: string): Promise<PushReceiver> {
  const source = fs.mkdtempSync(path.join(os.tmpdir(), "rdp-bench-noop-"));
  fs.writeFileSync(
    path.join(source, "index.js"),
    'exports.noop = () => { process.stdout.write("d\\n"); };\n',
  );
  fs.writeFileSync(path.join(source, "package.json"), '{"main":"index.js"}\n');
  const logFile = path.join(logDir, "noop-function.log");
  fs.rmSync(logFile, { force: true });
  const port = await freePort(LOOPBACK);
  const noop = new ManagedProcess({
    name: "no-op function",
    command: process.execPath,
    args: [FRAMEWORK_MAIN, "--target=noop", "--signature-type=cloudevent", `--source=${source}`],
    env: childEnv({ PORT: String(port), K_SERVICE: "noop" }),
    cwd: source,
    logFile,
    port,
    readyTimeoutMs: 30_000,
  });
  const stop = async () => {
    await noop.stop();
    fs.rmSync(source, { recursive: true, force: true });
  };
  try {
    await noop.start();
  } catch (error) {
    await stop();
    throw error;
  }
  // Two bytes a delivery ("d\n"); functions-framework prints nothing else once it is serving.
  const startSize = fs.statSync(logFile).size;
  const count = () => Math.floor((fs.statSync(logFile).size - startSize) / 2);
  return { hostPort: `${LOOPBACK}:${port}`, count, stop };
}

/** A bare node:http server in this process answering 204: the emulator's own limit. */
async function bareReceiver(): Promise<PushReceiver> {
  let deliveries = 0;
  const server = http.createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      deliveries += 1;
      response.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    hostPort: `${LOOPBACK}:${port}`,
    count: () => deliveries,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The push ceiling: the emulator pushes to a receiver that returns at once while the publisher
 * keeps the backlog at most `backlog` messages; the rate is that of deliveries over the run.
 */
export async function measurePushCeiling(
  options: CeilingOptions & { readonly receiver: "framework" | "bare"; readonly backlog?: number },
): Promise<CeilingResult> {
  const backlog = options.backlog ?? 200;
  const receiver =
    options.receiver === "framework"
      ? await frameworkReceiver(options.logDir)
      : await bareReceiver();
  const subscription = {
    pushConfig: {
      pushEndpoint: `http://${receiver.hostPort}/projects/${options.project}/topics/push`,
    },
    ackDeadlineSeconds: 60,
  };
  try {
    return await withTopic(
      options,
      `push-${options.receiver}`,
      subscription,
      async (client, name) => {
        const publisher = client.topic(name, {
          batching: { maxMessages: 100, maxMilliseconds: 2 },
        });
        let published = 0;
        const run = async (ms: number) => {
          const deadline = Date.now() + ms;
          while (Date.now() < deadline && published < 1_000_000) {
            const batch = Math.max(0, Math.min(backlog - (published - receiver.count()), 500));
            const publishes = Array.from({ length: batch }, () =>
              publisher.publishMessage({ data: SAMPLE_MESSAGE }),
            );
            published += batch;
            await Promise.all(publishes);
            await sleep(20);
          }
        };
        await run(2_000); // warm-up: the JVM's push path and the receiver's first requests
        const from = receiver.count();
        const started = Date.now();
        await run(options.seconds * 1000);
        const measured = { count: receiver.count() - from, elapsedMs: Date.now() - started };
        // Drain what is left so it does not count against the next measurement.
        const drainDeadline = Date.now() + 30_000;
        while (receiver.count() < published && Date.now() < drainDeadline) await sleep(100);
        return options.receiver === "framework"
          ? result(
              "Pub/Sub emulator push to a no-op function (push ceiling)",
              measured,
              `functions-framework CloudEvent no-op, backlog <= ${backlog}`,
            )
          : result(
              "Pub/Sub emulator push to a bare HTTP 204 server",
              measured,
              `node:http in the bench process, backlog <= ${backlog}`,
            );
      },
    );
  } finally {
    await receiver.stop();
  }
}

/** A document of the size of a stored record (original and redacted text, ids, counts). */
function sampleDocument(index: number): Record<string, unknown> {
  const text = `2026-11-28T14:00:00Z INFO request ${index} from user 555-0199 done in 12 ms `;
  return {
    tenant_id: "bench",
    log_id: `doc-${index}`,
    source: "json_upload",
    original_text: text.repeat(3),
    modified_data: text.replace("555-0199", "[REDACTED]").repeat(3),
    redactions: { email: 0, card: 0, ssn: 0, phone: 3, credential: 0, ip: 0 },
    text_sha256: "0".repeat(64),
    received_at: new Date(),
    message_id: String(index),
    delivery_attempt: 1,
  };
}

export async function measureFirestoreCeilings(options: CeilingOptions): Promise<CeilingResult[]> {
  const firestore = emulatorFirestore(options.project, options.firestoreHost);
  const collection = firestore.collection(`bench_ceiling_${options.runId}`);
  const BATCH = 500;
  let next = 0;
  const single = () => {
    const index = next++;
    return collection
      .doc(`d${index}`)
      .create(sampleDocument(index))
      .then(() => 1);
  };
  const batch = () => {
    const writes = firestore.batch();
    for (let i = 0; i < BATCH; i += 1) {
      const index = next++;
      writes.create(collection.doc(`b${index}`), sampleDocument(index));
    }
    return writes.commit().then(() => BATCH);
  };
  const ms = options.seconds * 1000;
  try {
    await closedLoop(single, { ms: 2_000, inFlight: 64, maxCount: 20_000 });
    const singles = await closedLoop(single, { ms, inFlight: 64, maxCount: 100_000 });
    await closedLoop(batch, { ms: 1_000, inFlight: 4, maxCount: 20_000 });
    const batches = await closedLoop(batch, { ms, inFlight: 4, maxCount: 200_000 });
    return [
      result("Firestore emulator single create", singles, "one client, 64 creates in flight"),
      result(
        "Firestore emulator WriteBatch create",
        batches,
        `one client, commits of ${BATCH} creates, 4 in flight`,
      ),
    ];
  } finally {
    await firestore.terminate();
  }
}

/**
 * The machine's own ceilings, each measured with a trivial client on the same emulators the
 * product then runs on, so the product's figures read as a fraction of what the emulators can
 * do on this machine at that moment. Every loop is bounded in time and in count.
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

export type CeilingResult = ReturnType<typeof result> & {
  /** Publish-ack latency from the scheduled send time (the open-loop measurement only). */
  readonly latency?: Summary;
  readonly offeredRate?: number;
  readonly maxInFlight?: number;
};

/** A message of the size of a typical pipeline message carrying one record. */
const SAMPLE_RECORD = {
  tenant_id: "bench",
  log_id: "00000000-0000-4000-8000-000000000000",
  source: "json_upload",
  text: "2026-11-28T14:00:00Z INFO user 555-0199 signed in from 10.0.0.1 ".repeat(3),
  received_at: "2026-11-28T14:00:00.000Z",
};
const SAMPLE_MESSAGE = Buffer.from(JSON.stringify({ v: 1, records: [SAMPLE_RECORD] }));
const PUSH_BACKLOG = 200;

const result = (
  name: string,
  run: { count: number; elapsedMs: number; errors?: number },
  note: string,
) => ({
  name,
  // Operations per second: messages published or pushed, documents written.
  rate: ratePerSecond(run.count, run.elapsedMs),
  count: run.count,
  seconds: run.elapsedMs / 1000,
  note: run.errors ? `${note}, ${run.errors} errors` : note,
});

/**
 * The one closed-loop measurement: `operation` runs `inFlight` copies at a time, first for a
 * warm-up, then for the measured seconds; the rate is that of what the operations counted.
 */
async function measureRate(
  name: string,
  note: string,
  options: { seconds: number; warmUpMs: number; inFlight: number; maxCount: number },
  operation: () => Promise<number>,
): Promise<CeilingResult> {
  const loop = async (ms: number) => {
    const started = Date.now();
    let count = 0;
    let errors = 0;
    const worker = async () => {
      while (Date.now() < started + ms && count < options.maxCount) {
        // Read the count after the await: `count += await ...` would add to a stale count.
        const done = await operation().catch(() => ((errors += 1), 0));
        count += done;
      }
    };
    await Promise.all(Array.from({ length: options.inFlight }, worker));
    return { count, elapsedMs: Date.now() - started, errors };
  };
  await loop(options.warmUpMs);
  return result(name, await loop(options.seconds * 1000), note);
}

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

/** The Pub/Sub emulator's publish rate from one Node client, 1,000 outstanding. */
export function measurePublishCeiling(options: CeilingOptions): Promise<CeilingResult> {
  return withTopic(options, "publish", {}, (client, topicName) => {
    const topic = client.topic(topicName);
    return measureRate(
      "Pub/Sub emulator publish",
      `one client, default batching, 1,000 outstanding, ${SAMPLE_MESSAGE.length} B messages`,
      { seconds: options.seconds, warmUpMs: 2_000, inFlight: 1_000, maxCount: 400_000 },
      () => topic.publishMessage({ data: SAMPLE_MESSAGE }).then(() => 1),
    );
  });
}

/**
 * The broker's own tail, against which ingest's is read: publish-ack latency of a trivial
 * publisher sending open loop at `rate`, one message a publish as ingest's publisher does,
 * counted from each message's scheduled time so a stalled client or broker is not hidden.
 */
export function measurePublishLatency(
  options: CeilingOptions & { readonly rate: number },
): Promise<CeilingResult> {
  return withTopic(options, "publish-ack", {}, async (client, topicName) => {
    const topic = client.topic(topicName, { batching: { maxMessages: 1 } });
    const histogram = latencyHistogram();
    const total = Math.round(options.rate * options.seconds);
    const started = Date.now() + 1_000; // after a second of warm-up at the same rate
    let inFlight = 0;
    let maxInFlight = 0;
    let errors = 0;
    const sends: Promise<void>[] = [];
    for (let index = -Math.round(options.rate); index < total;) {
      for (; index < total && started + (index * 1000) / options.rate <= Date.now(); index += 1) {
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
    const run = { count: histogram.totalCount, elapsedMs: Date.now() - started, errors };
    return {
      ...result(
        `Pub/Sub emulator publish-ack latency at ${Math.round(options.rate)}/s`,
        run,
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
  readonly name: string;
  readonly note: string;
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
  const name = "Pub/Sub emulator push to a no-op function (push ceiling)";
  const note = "functions-framework CloudEvent no-op";
  return { name, note, hostPort: `${LOOPBACK}:${port}`, count, stop };
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
    name: "Pub/Sub emulator push to a bare HTTP 204 server",
    note: "node:http in the bench process",
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
 * keeps the backlog small; the rate is that of deliveries.
 */
export async function measurePushCeiling(
  options: CeilingOptions & { readonly receiver: "framework" | "bare" },
): Promise<CeilingResult> {
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
  const pushes = async (client: PubSub, topicName: string) => {
    const topic = client.topic(topicName, { batching: { maxMessages: 100, maxMilliseconds: 2 } });
    let published = 0;
    let counted = receiver.count();
    const rate = { seconds: options.seconds, warmUpMs: 2_000, inFlight: 1, maxCount: 1_000_000 };
    const measured = await measureRate(
      receiver.name,
      `${receiver.note}, backlog <= ${PUSH_BACKLOG}`,
      rate,
      async () => {
        // Tops the backlog up, then counts what was delivered since the last call.
        const batch = Math.max(0, Math.min(PUSH_BACKLOG - (published - receiver.count()), 500));
        published += batch;
        await Promise.all(
          Array.from({ length: batch }, () => topic.publishMessage({ data: SAMPLE_MESSAGE })),
        );
        await sleep(20);
        const delivered = receiver.count() - counted;
        counted += delivered;
        return delivered;
      },
    );
    // Drain what is left so it does not count against the next measurement.
    const drainDeadline = Date.now() + 30_000;
    while (receiver.count() < published && Date.now() < drainDeadline) await sleep(100);
    return measured;
  };
  try {
    return await withTopic(options, `push-${options.receiver}`, subscription, pushes);
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

/** The Firestore emulator's write rate: single creates, and WriteBatch commits of 500. */
export async function measureFirestoreCeilings(options: CeilingOptions): Promise<CeilingResult[]> {
  const firestore = emulatorFirestore(options.project, options.firestoreHost);
  const collection = firestore.collection(`bench_ceiling_${options.runId}`);
  const BATCH = 500;
  let next = 0;
  const { seconds } = options;
  try {
    return [
      await measureRate(
        "Firestore emulator single create",
        "one client, 64 creates in flight",
        { seconds, warmUpMs: 2_000, inFlight: 64, maxCount: 100_000 },
        () => {
          const index = next++;
          return collection
            .doc(`d${index}`)
            .create(sampleDocument(index))
            .then(() => 1);
        },
      ),
      await measureRate(
        "Firestore emulator WriteBatch create",
        `one client, commits of ${BATCH} creates, 4 in flight`,
        { seconds, warmUpMs: 1_000, inFlight: 4, maxCount: 200_000 },
        () => {
          const writes = firestore.batch();
          for (let i = 0; i < BATCH; i += 1) {
            const index = next++;
            writes.create(collection.doc(`b${index}`), sampleDocument(index));
          }
          return writes.commit().then(() => BATCH);
        },
      ),
    ];
  } finally {
    await firestore.terminate();
  }
}

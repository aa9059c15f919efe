/**
 * The machine's own ceilings, each measured with a trivial client on the same emulators the
 * product then runs on, so the product's figures can be read as a fraction of what the
 * emulators can do at all on this machine at this moment:
 *
 * - publish: the Pub/Sub emulator's publish rate from one Node client (default batching,
 *   bounded outstanding publishes);
 * - push: the emulator's push delivery rate to a function that returns at once (a no-op
 *   CloudEvent function served by functions-framework, as the worker is), with a small bounded
 *   backlog, which is the product's situation when it keeps up;
 * - firestore: the Firestore emulator's write rate from one Node client, as single creates
 *   (64 in flight) and as WriteBatch commits of 500 creates.
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
  waitUntilReady,
} from "../emulators";
import { FRAMEWORK_MAIN } from "../stack";
import { ratePerSecond, steadyRate } from "./stats";

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
  /** Operations per second: messages published, messages pushed, documents written. */
  readonly rate: number;
  readonly count: number;
  readonly seconds: number;
  readonly note: string;
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

function pubsubClient(options: CeilingOptions): PubSub {
  return new PubSub({
    projectId: options.project,
    apiEndpoint: options.pubsubHost,
    emulatorMode: true,
  });
}

/** Publishes as fast as one client can with at most `outstanding` unacknowledged publishes. */
async function publishFlat(
  publish: () => Promise<unknown>,
  options: { readonly ms: number; readonly maxCount: number; readonly outstanding: number },
): Promise<{ count: number; elapsedMs: number; errors: number }> {
  const started = Date.now();
  const deadline = started + options.ms;
  let sent = 0;
  let done = 0;
  let errors = 0;
  await new Promise<void>((resolve) => {
    let inFlight = 0;
    const pump = () => {
      while (inFlight < options.outstanding && sent < options.maxCount && Date.now() < deadline) {
        inFlight += 1;
        sent += 1;
        publish().then(
          () => {
            done += 1;
            inFlight -= 1;
            pump();
          },
          () => {
            errors += 1;
            inFlight -= 1;
            pump();
          },
        );
      }
      if (inFlight === 0) resolve();
    };
    pump();
  });
  return { count: done, elapsedMs: Date.now() - started, errors };
}

export async function measurePublishCeiling(options: CeilingOptions): Promise<CeilingResult> {
  const client = pubsubClient(options);
  const topicName = `bench-publish-${options.runId}`;
  const subscriptionName = `${topicName}-hold`;
  try {
    const [topic] = await client.createTopic(topicName);
    // A subscription holds what is published, as the product's push subscription does.
    await topic.createSubscription(subscriptionName);
    const publisher = client.topic(topicName);
    const publish = () => publisher.publishMessage({ data: SAMPLE_MESSAGE });
    await publishFlat(publish, { ms: 2_000, maxCount: 50_000, outstanding: 1_000 });
    const run = await publishFlat(publish, {
      ms: options.seconds * 1000,
      maxCount: 400_000,
      outstanding: 1_000,
    });
    return {
      name: "Pub/Sub emulator publish",
      rate: ratePerSecond(run.count, run.elapsedMs),
      count: run.count,
      seconds: run.elapsedMs / 1000,
      note: `one client, default batching, 1,000 outstanding, ${SAMPLE_MESSAGE.length} B messages${
        run.errors > 0 ? `, ${run.errors} errors` : ""
      }`,
    };
  } finally {
    await removeTopology(client, topicName, subscriptionName);
  }
}

/** Best effort: a ceiling's topic and subscription, then the client. */
async function removeTopology(client: PubSub, topicName: string, subscriptionName: string) {
  await client
    .subscription(subscriptionName)
    .delete()
    .catch(() => undefined);
  await client
    .topic(topicName)
    .delete()
    .catch(() => undefined);
  await client.close();
}

/** A CloudEvent function that returns at once and prints one timestamp a delivery. */
const NOOP_FUNCTION = `
exports.noop = () => {
  process.stdout.write(Date.now() + "\\n");
};
`;

/** Where pushes land: something that counts deliveries with their arrival times. */
interface PushReceiver {
  /** host:port the push endpoint is served on. */
  readonly hostPort: string;
  count(): number;
  timestamps(): number[];
  stop(): Promise<void>;
}

/** functions-framework serving a CloudEvent no-op, as the worker is served. */
async function frameworkReceiver(logDir: string): Promise<PushReceiver> {
  const source = fs.mkdtempSync(path.join(os.tmpdir(), "rdp-bench-noop-"));
  fs.writeFileSync(path.join(source, "index.js"), NOOP_FUNCTION);
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
  });
  const stop = async () => {
    await noop.stop();
    fs.rmSync(source, { recursive: true, force: true });
  };
  try {
    noop.start();
    await waitUntilReady({ host: LOOPBACK, port, timeoutMs: 30_000, process: noop });
  } catch (error) {
    await stop();
    throw error;
  }
  const deliveries = new DeliveryLog(logFile);
  return {
    hostPort: `${LOOPBACK}:${port}`,
    count: () => deliveries.count(),
    timestamps: () => deliveries.timestamps(),
    stop,
  };
}

/** A bare node:http server in this process answering 204: the emulator's own limit. */
async function bareReceiver(): Promise<PushReceiver> {
  const times: number[] = [];
  const server = http.createServer((request, response) => {
    request.resume();
    request.on("end", () => {
      times.push(Date.now());
      response.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, LOOPBACK, resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    hostPort: `${LOOPBACK}:${port}`,
    count: () => times.length,
    timestamps: () => times,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The push ceiling: the emulator pushes to a receiver that returns at once while the publisher
 * keeps the backlog at most `backlog` messages; the rate is that of deliveries between the
 * first and the last one seen.
 */
export async function measurePushCeiling(
  options: CeilingOptions & { readonly receiver: "framework" | "bare"; readonly backlog?: number },
): Promise<CeilingResult> {
  const backlog = options.backlog ?? 200;
  const receiver =
    options.receiver === "framework"
      ? await frameworkReceiver(options.logDir)
      : await bareReceiver();
  const client = pubsubClient(options);
  const topicName = `bench-push-${options.receiver}-${options.runId}`;
  const subscriptionName = `${topicName}-noop`;
  try {
    const [topic] = await client.createTopic(topicName);
    await topic.createSubscription(subscriptionName, {
      pushConfig: {
        pushEndpoint: `http://${receiver.hostPort}/projects/${options.project}/topics/${topicName}`,
      },
      ackDeadlineSeconds: 60,
    });
    const publisher = client.topic(topicName, {
      batching: { maxMessages: 100, maxMilliseconds: 2 },
    });
    let published = 0;
    const run = async (ms: number) => {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline && published < 1_000_000) {
        const room = backlog - (published - receiver.count());
        const batch = Math.max(0, Math.min(room, 500));
        const publishes: Promise<string>[] = [];
        for (let i = 0; i < batch; i += 1) {
          publishes.push(publisher.publishMessage({ data: SAMPLE_MESSAGE }));
        }
        published += batch;
        await Promise.all(publishes);
        await sleep(20);
      }
    };
    await run(2_000); // warm-up: the JVM's push path and the receiver's first requests
    const from = receiver.count();
    await run(options.seconds * 1000);
    const times = receiver.timestamps().slice(from);
    // Drain what is left so it does not count against the next measurement.
    const drainDeadline = Date.now() + 30_000;
    while (receiver.count() < published && Date.now() < drainDeadline) await sleep(100);
    return {
      name:
        options.receiver === "framework"
          ? "Pub/Sub emulator push to a no-op function (push ceiling)"
          : "Pub/Sub emulator push to a bare HTTP 204 server",
      rate: steadyRate(times),
      count: times.length,
      seconds: times.length > 1 ? ((times.at(-1) as number) - (times[0] as number)) / 1000 : 0,
      note:
        options.receiver === "framework"
          ? `functions-framework CloudEvent no-op, backlog <= ${backlog}`
          : `node:http in the bench process, backlog <= ${backlog}`,
    };
  } finally {
    await removeTopology(client, topicName, subscriptionName);
    await receiver.stop();
  }
}

/** The no-op function's log read incrementally: one timestamp (ms) a line. */
class DeliveryLog {
  private offset = 0;
  private partial = "";
  private readonly times: number[] = [];

  constructor(private readonly file: string) {}

  private read(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, "r");
    } catch {
      return;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= this.offset) return;
      const buffer = Buffer.alloc(size - this.offset);
      fs.readSync(fd, buffer, 0, buffer.length, this.offset);
      this.offset = size;
      const lines = (this.partial + buffer.toString("utf8")).split("\n");
      this.partial = lines.pop() ?? "";
      for (const line of lines) {
        if (/^\d{13}$/.test(line)) this.times.push(Number(line));
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  count(): number {
    this.read();
    return this.times.length;
  }

  timestamps(): number[] {
    this.read();
    return this.times;
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

async function writeFlat(
  write: (index: number) => Promise<number>,
  options: { readonly ms: number; readonly maxDocs: number; readonly inFlight: number },
  next: { index: number },
): Promise<{ docs: number; elapsedMs: number }> {
  const started = Date.now();
  const deadline = started + options.ms;
  let docs = 0;
  const worker = async () => {
    while (Date.now() < deadline && docs < options.maxDocs) {
      const written = await write(next.index++);
      docs += written;
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, worker));
  return { docs, elapsedMs: Date.now() - started };
}

export async function measureFirestoreCeilings(options: CeilingOptions): Promise<CeilingResult[]> {
  const firestore = emulatorFirestore(options.project, options.firestoreHost);
  const collection = firestore.collection(`bench_ceiling_${options.runId}`);
  const next = { index: 0 };
  try {
    const single = async (index: number) => {
      await collection.doc(`d${index}`).create(sampleDocument(index));
      return 1;
    };
    const BATCH = 500;
    const batch = async (index: number) => {
      const writes = firestore.batch();
      for (let i = 0; i < BATCH; i += 1) {
        const n = index * BATCH + i + 10_000_000;
        writes.create(collection.doc(`b${n}`), sampleDocument(n));
      }
      await writes.commit();
      return BATCH;
    };
    const ms = options.seconds * 1000;
    await writeFlat(single, { ms: 2_000, maxDocs: 20_000, inFlight: 64 }, next);
    const singles = await writeFlat(single, { ms, maxDocs: 100_000, inFlight: 64 }, next);
    await writeFlat(batch, { ms: 1_000, maxDocs: 20_000, inFlight: 4 }, next);
    const batches = await writeFlat(batch, { ms, maxDocs: 200_000, inFlight: 4 }, next);
    return [
      {
        name: "Firestore emulator single create",
        rate: ratePerSecond(singles.docs, singles.elapsedMs),
        count: singles.docs,
        seconds: singles.elapsedMs / 1000,
        note: "one client, 64 creates in flight",
      },
      {
        name: "Firestore emulator WriteBatch create",
        rate: ratePerSecond(batches.docs, batches.elapsedMs),
        count: batches.docs,
        seconds: batches.elapsedMs / 1000,
        note: `one client, commits of ${BATCH} creates, 4 in flight`,
      },
    ];
  } finally {
    await firestore.terminate();
  }
}

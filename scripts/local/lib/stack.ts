/**
 * The production-faithful local stack: both functions served by functions-framework, as Cloud
 * Run serves them, and a Pub/Sub push subscription to the worker, as Eventarc creates one. Unlike
 * in the Firebase emulator suite, which acks every event, a failed push is redelivered.
 */
import { PubSub } from "@google-cloud/pubsub";
import fs from "node:fs";
import path from "node:path";
import {
  type Emulators,
  type EmulatorOptions,
  LOOPBACK,
  ManagedProcess,
  type ProcessSpec,
  REPO_ROOT,
  childEnv,
  freePort,
  startEmulators,
} from "./emulators";

export const FRAMEWORK_MAIN = path.join(
  REPO_ROOT,
  "functions/node_modules/@google-cloud/functions-framework/build/src/main.js",
);
/** The NODE_OPTIONS of deploy/config.env, so the functions' memory here is what it is deployed. */
export const FUNCTION_HEAP_LIMIT = "--max-old-space-size=128";

// This process only talks to emulators: spare google-auth (here and in our callers' clients) its
// probe for a metadata server, a warning and a delay offline.
process.env.METADATA_SERVER_DETECTION ??= "none";

export interface StackOptions {
  readonly project: string;
  readonly topic: string;
  /** Logs go to `.run/<name>/`. */
  readonly name: string;
  /** Emulators to reuse; without them the stack starts (and later stops) its own. */
  readonly emulators?: Emulators;
  readonly emulatorOptions?: Omit<EmulatorOptions, "logDir">;
  /** Free ports are picked when these are omitted. */
  readonly ingestPort?: number;
  readonly processPort?: number;
  /** Environment for both functions, over the stack's own (so it can, say, redirect a host). */
  readonly env?: Readonly<Record<string, string>>;
  /** Let the functions inherit our whole environment (for `npm start`), not only its basics. */
  readonly inheritEnv?: boolean;
  /** Empty `.run/<name>/` first, so the logs show this run only. */
  readonly freshLogs?: boolean;
}

/** What startStack returns: URLs, names, hosts, logs and the processes of a running stack. */
export type Stack = Awaited<ReturnType<typeof startStack>>;

export async function startStack(options: StackOptions) {
  const { project, topic } = options;
  const runDir = path.join(REPO_ROOT, ".run", options.name);
  if (options.freshLogs) fs.rmSync(runDir, { recursive: true, force: true });
  const source = resolveFunctionsSource();
  // Before any JVM starts, so a clash on a fixed port fails at once.
  const ingestPort = await freePort(LOOPBACK, options.ingestPort);
  const processPort = await freePort(LOOPBACK, options.processPort);
  const emulators =
    options.emulators ?? (await startEmulators({ ...options.emulatorOptions, logDir: runDir }));
  const env: Record<string, string> = {
    INGEST_TOPIC: topic,
    PUBSUB_EMULATOR_HOST: emulators.pubsub.hostPort,
    FIRESTORE_EMULATOR_HOST: emulators.firestore.hostPort,
    GOOGLE_CLOUD_PROJECT: project,
    GCLOUD_PROJECT: project,
    // Set by `firebase deploy` in production; firebase-admin and firebase-functions read it.
    FIREBASE_CONFIG: JSON.stringify({ projectId: project }),
    METADATA_SERVER_DETECTION: "none",
    RDP_LOCAL_STACK: "true",
    FIRESTORE_THROTTLING: "false", // the emulator has no ramp-up rule to respect (store.ts)
    ...options.env,
  };
  const logs = {
    dir: runDir,
    ingest: path.join(runDir, "ingest.log"),
    process: path.join(runDir, "process.log"),
    pubsub: emulators.pubsub.spec.logFile,
    firestore: emulators.firestore.spec.logFile,
  };
  // Replaced soon after it exits by itself, as Cloud Run replaces a crashed instance.
  const common = { source, env, inheritEnv: options.inheritEnv, replaceAfterMs: 250 };
  const instance = (target: FunctionTarget, port: number) =>
    functionInstance({ ...common, target, port, logFile: logs[target] });
  const ingest = instance("ingest", ingestPort);
  const worker = instance("process", processPort);
  const processUrl = `http://${LOOPBACK}:${processPort}/projects/${project}/topics/${topic}`;
  const topology = pushTopology(emulators.pubsub.hostPort, project, topic, processUrl);
  const stop = async () => {
    await Promise.all([ingest.stop(), worker.stop()]);
    // Shared emulators outlive the stack: else they keep pushing to a port nobody serves.
    await (options.emulators ? topology.remove() : emulators.stop());
  };
  try {
    await topology.ensure();
    await Promise.all([ingest.start(), worker.start()]);
  } catch (error) {
    // The start-up error says more than any failure to clean up after it.
    await stop().catch(() => undefined);
    throw error;
  }

  return {
    /** The ingest function; any path reaches it, as on functions-framework in Cloud Run. */
    ingestUrl: `http://${LOOPBACK}:${ingestPort}/`,
    /** The push endpoint: the worker, at the path functions-framework reads the topic from. */
    processUrl,
    project,
    topic,
    subscription: topology.subscription,
    pubsubHost: emulators.pubsub.hostPort,
    firestoreHost: emulators.firestore.hostPort,
    /** The environment the functions run with (our basics or inherited variables excluded). */
    env,
    functionsSource: source,
    logs,
    emulators,
    /** `pid`, and `restarts`: how often it was replaced after it exited by itself. */
    worker: worker as Pick<ManagedProcess, "pid" | "restarts">,
    ingest: ingest as Pick<ManagedProcess, "pid" | "restarts">,
    readLog: (name: Exclude<keyof typeof logs, "dir">) => fs.promises.readFile(logs[name], "utf8"),
    /** Creates the topic and push subscription if absent, e.g. after a Pub/Sub restart. */
    ensureTopology: () => topology.ensure(),
    /** Replaces an instance on purpose (not counted as a restart): SIGTERM, then a new one. */
    restartWorker: () => worker.restart(),
    restartIngest: () => ingest.restart(),
    /** Stops the functions, then the emulators if the stack started them. Idempotent. */
    stop,
  };
}

export type FunctionTarget = "ingest" | "process";

export interface FunctionInstanceSpec extends Pick<ProcessSpec, "logFile" | "replaceAfterMs"> {
  readonly target: FunctionTarget;
  readonly port: number;
  /** The compiled functions package (see resolveFunctionsSource). */
  readonly source: string;
  readonly env: Readonly<Record<string, string>>;
  readonly inheritEnv?: boolean;
}

/**
 * One instance of a function, served by functions-framework as Cloud Run serves it, with the
 * variables Cloud Run sets. Not started: `start()` resolves once it accepts connections.
 */
export function functionInstance(spec: FunctionInstanceSpec): ManagedProcess {
  const { target, port, source, env, inheritEnv, ...supervision } = spec;
  const signature = target === "ingest" ? "http" : "cloudevent";
  const profileDir = process.env.RDP_CPU_PROF;
  return new ManagedProcess({
    name: `${target} function`,
    command: process.execPath,
    args: [
      "--enable-source-maps",
      FUNCTION_HEAP_LIMIT,
      // RDP_CPU_PROF=<dir>: a V8 CPU profile of each function, written when it stops.
      ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
      FRAMEWORK_MAIN,
      `--target=${target}`,
      `--signature-type=${signature}`,
      `--source=${source}`,
    ],
    env: childEnv(
      {
        ...env,
        PORT: String(port),
        K_SERVICE: target,
        FUNCTION_TARGET: target,
        FUNCTION_SIGNATURE_TYPE: signature,
      },
      inheritEnv,
    ),
    cwd: path.dirname(source),
    port,
    ...supervision,
  });
}

/** The compiled functions to serve, checked to exist so a missing build fails with a hint. */
export function resolveFunctionsSource(): string {
  const source = path.join(REPO_ROOT, "functions/lib");
  for (const file of [path.join(source, "index.js"), FRAMEWORK_MAIN]) {
    if (!fs.existsSync(file)) throw new Error(`${file} not found: run \`npm run build\` first`);
  }
  return source;
}

const GRPC_ALREADY_EXISTS = 6;
const gaxOpts = { timeout: 10_000 };

/**
 * The topic and the push subscription Eventarc would create for the worker, whose own has a 600 s
 * ack deadline and a retry policy (deploy.sh). Here the deadline bounds one push, so it stays above
 * PROCESS_TIMEOUT_SECONDS. No retry policy: with one, the emulator (0.8.20) stalls the subscription
 * once pushes fail repeatedly (docs/RELIABILITY.md); without, it redelivers after about 1 s.
 */
function pushTopology(apiEndpoint: string, projectId: string, topic: string, pushEndpoint: string) {
  const subscription = `${topic}-process`;
  const withClient = async (use: (client: PubSub) => Promise<unknown>) => {
    const client = new PubSub({ projectId, apiEndpoint, emulatorMode: true });
    await use(client).finally(() => client.close());
  };
  const exists = (error: { code?: number }) => {
    if (error.code !== GRPC_ALREADY_EXISTS) throw error;
  };
  const config = { gaxOpts, pushConfig: { pushEndpoint }, ackDeadlineSeconds: 60 };
  return {
    subscription,
    ensure: () =>
      withClient(async (client) => {
        await client.createTopic(topic, gaxOpts).catch(exists);
        await client.topic(topic).createSubscription(subscription, config).catch(exists);
      }),
    remove: () =>
      withClient(async (client) => {
        await Promise.allSettled([client.subscription(subscription).delete(gaxOpts)]);
        await Promise.allSettled([client.topic(topic).delete(gaxOpts)]);
      }),
  };
}

/**
 * The production-faithful local stack: the two functions served by functions-framework, as
 * Cloud Run serves them, and a Pub/Sub push subscription from the ingest topic to the worker,
 * as Eventarc creates one. Unlike the Firebase emulator suite (which acks every event, even a
 * failed one), a non-2xx answer from the worker here means redelivery, as in production.
 */
import { PubSub } from "@google-cloud/pubsub";
import fs from "node:fs";
import path from "node:path";
import {
  type Emulators,
  type EmulatorOptions,
  LOOPBACK,
  ManagedProcess,
  REPO_ROOT,
  assertPortFree,
  childEnv,
  freePort,
  startEmulators,
  waitUntilReady,
} from "./emulators";

export const FRAMEWORK_MAIN = path.join(
  REPO_ROOT,
  "functions",
  "node_modules",
  "@google-cloud",
  "functions-framework",
  "build",
  "src",
  "main.js",
);
/** The NODE_OPTIONS of deploy/config.env, so the functions' memory here is what it is deployed. */
export const FUNCTION_HEAP_LIMIT = "--max-old-space-size=128";
const DEFAULT_FUNCTIONS_SOURCE = path.join(REPO_ROOT, "functions", "lib");
const ADMIN_TIMEOUT_MS = 10_000;

// This process only ever talks to emulators: spare google-auth its probe for a GCE metadata
// server (a warning and a delay offline), here and in the admin clients of our callers.
process.env.METADATA_SERVER_DETECTION ??= "none";

export interface SubscriptionPolicy {
  /** Eventarc uses 600 s; here it bounds one push, so keep it above PROCESS_TIMEOUT_SECONDS. */
  readonly ackDeadlineSeconds?: number;
  /**
   * Eventarc uses 10 s and 600 s. The emulator raises any minimum under 1 s to 1 s
   * (MessageBacklog.computeBackoff), and holds a failed push about 1 s more in its push loop.
   */
  readonly minimumBackoffSeconds?: number;
  readonly maximumBackoffSeconds?: number;
  /**
   * Off by default: without a retry policy the emulator redelivers a failed push after about
   * 1 s. With one, the emulator (0.8.20) stalls the subscription once pushes fail repeatedly:
   * a chaos run with 20 % failures stored 533 of 3,000 accepted records and then nothing more
   * (docs/RELIABILITY.md). Deployed, Eventarc's subscription has a retry policy (deploy.sh).
   */
  readonly retryPolicy?: boolean;
}

const DEFAULT_POLICY: Required<SubscriptionPolicy> = {
  ackDeadlineSeconds: 60,
  minimumBackoffSeconds: 1,
  maximumBackoffSeconds: 10,
  retryPolicy: false,
};

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
  /** Compiled functions package; default functions/lib, or RDP_FUNCTIONS_SOURCE when set. */
  readonly functionsSource?: string;
  readonly subscriptionPolicy?: SubscriptionPolicy;
  /** Pause before a crashed worker is replaced, as Cloud Run takes a moment to start one. */
  readonly restartDelayMs?: number;
  readonly readyTimeoutMs?: number;
  /** Empty `.run/<name>/` first, so the logs show this run only. */
  readonly freshLogs?: boolean;
}

export interface StackLogs {
  readonly dir: string;
  readonly ingest: string;
  readonly process: string;
  readonly pubsub: string;
  readonly firestore: string;
}

export type LogName = Exclude<keyof StackLogs, "dir">;

export interface InstanceStatus {
  readonly pid: number | undefined;
  /** How often the instance was replaced after it exited by itself (a crash). */
  readonly restarts: number;
}

export interface Stack {
  /** The ingest function; any path reaches it, as on functions-framework in Cloud Run. */
  readonly ingestUrl: string;
  /** The push endpoint: the worker, at the path functions-framework reads the topic from. */
  readonly processUrl: string;
  readonly project: string;
  readonly topic: string;
  readonly subscription: string;
  readonly pubsubHost: string;
  readonly firestoreHost: string;
  /** The environment the functions run with (our basics or inherited variables excluded). */
  readonly env: Readonly<Record<string, string>>;
  /** The compiled functions package both functions are served from. */
  readonly functionsSource: string;
  readonly logs: StackLogs;
  readonly emulators: Emulators;
  readonly worker: InstanceStatus;
  readonly ingest: InstanceStatus;
  /** The text of one of the stack's logs so far. */
  readLog(name: LogName): Promise<string>;
  /** Creates the topic and push subscription if absent, e.g. after a Pub/Sub emulator restart. */
  ensureTopology(): Promise<void>;
  /** Replaces the worker on purpose (not counted as a restart) and waits until it answers. */
  restartWorker(): Promise<void>;
  /** The same for ingest: SIGTERM (SIGKILL after 5 s), then a new instance, ready. */
  restartIngest(): Promise<void>;
  /** Stops the functions, then the emulators if the stack started them. Idempotent. */
  stop(): Promise<void>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const runDir = path.join(REPO_ROOT, ".run", options.name);
  if (options.freshLogs === true) fs.rmSync(runDir, { recursive: true, force: true });
  fs.mkdirSync(runDir, { recursive: true });
  const source = resolveFunctionsSource(options.functionsSource);
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;

  const host = LOOPBACK;
  const [ingestPort, processPort] = await Promise.all([
    options.ingestPort ?? freePort(host),
    options.processPort ?? freePort(host),
  ]);
  // Before any JVM starts, so a clash with another stack fails at once.
  await Promise.all([
    assertPortFree(host, ingestPort, "ingest function"),
    assertPortFree(host, processPort, "process function"),
  ]);

  const ownsEmulators = options.emulators === undefined;
  const emulators =
    options.emulators ?? (await startEmulators({ ...options.emulatorOptions, logDir: runDir }));
  const cleanups: Array<() => Promise<void>> = ownsEmulators ? [() => emulators.stop()] : [];
  // Runs every cleanup, last started first, even when one fails.
  const unwind = async () => {
    const failures: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) {
      await cleanup().catch((error: unknown) => failures.push(error));
    }
    if (failures.length > 0) throw new AggregateError(failures, `stopping ${options.name} failed`);
  };

  try {
    const { project, topic } = options;
    const subscription = `${topic}-process`;
    const processUrl = `http://${host}:${processPort}/projects/${project}/topics/${topic}`;
    const topology = new Topology(emulators.pubsub.hostPort, project, topic, subscription, {
      pushEndpoint: processUrl,
      ...DEFAULT_POLICY,
      ...options.subscriptionPolicy,
    });
    await topology.ensure();
    if (!ownsEmulators) cleanups.push(() => topology.remove());

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
    const functionProcess = (target: FunctionTarget, port: number) =>
      functionInstance({
        target,
        port,
        source,
        env,
        inheritEnv: options.inheritEnv,
        logFile: path.join(runDir, `${target}.log`),
      });

    // functions-framework listens only once the module has loaded, so a connection means ready;
    // an HTTP probe without a body would make its CloudEvent middleware throw. Both are
    // replaced when they die, as Cloud Run replaces a crashed instance.
    const ingest = new Supervisor(functionProcess("ingest", ingestPort), {
      host,
      port: ingestPort,
      timeoutMs: readyTimeoutMs,
      restartDelayMs: options.restartDelayMs ?? 250,
    });
    const worker = new Supervisor(functionProcess("process", processPort), {
      host,
      port: processPort,
      timeoutMs: readyTimeoutMs,
      restartDelayMs: options.restartDelayMs ?? 250,
    });
    cleanups.push(
      () => ingest.stop(),
      () => worker.stop(),
    );
    await Promise.all([ingest.start(), worker.start()]);

    const logs: StackLogs = {
      dir: runDir,
      ingest: path.join(runDir, "ingest.log"),
      process: path.join(runDir, "process.log"),
      pubsub: emulators.pubsub.logFile,
      firestore: emulators.firestore.logFile,
    };
    let stopping: Promise<void> | undefined;
    return {
      ingestUrl: `http://${host}:${ingestPort}/`,
      processUrl,
      project,
      topic,
      subscription,
      pubsubHost: emulators.pubsub.hostPort,
      firestoreHost: emulators.firestore.hostPort,
      env,
      functionsSource: source,
      logs,
      emulators,
      worker: statusOf(worker),
      ingest: statusOf(ingest),
      readLog: (name) => fs.promises.readFile(logs[name], "utf8"),
      ensureTopology: () => topology.ensure(),
      restartWorker: () => worker.restart(),
      restartIngest: () => ingest.restart(),
      stop: () => (stopping ??= unwind()),
    };
  } catch (error) {
    // The start-up error says more than any failure to clean up after it.
    await unwind().catch(() => undefined);
    throw error;
  }
}

function statusOf(supervisor: Supervisor): InstanceStatus {
  return {
    get pid() {
      return supervisor.pid;
    },
    get restarts() {
      return supervisor.restarts;
    },
  };
}

export type FunctionTarget = "ingest" | "process";

export interface FunctionInstanceSpec {
  readonly target: FunctionTarget;
  readonly port: number;
  /** The compiled functions package (see resolveFunctionsSource). */
  readonly source: string;
  readonly env: Readonly<Record<string, string>>;
  readonly inheritEnv?: boolean;
  readonly logFile: string;
}

/**
 * One instance of a function, served by functions-framework as Cloud Run serves it, with the
 * variables Cloud Run sets. Not started: `start()` it, or hand it to a supervisor.
 */
export function functionInstance(spec: FunctionInstanceSpec): ManagedProcess {
  const signature = spec.target === "ingest" ? "http" : "cloudevent";
  const profileDir = process.env.RDP_CPU_PROF;
  return new ManagedProcess({
    name: `${spec.target} function`,
    command: process.execPath,
    args: [
      "--enable-source-maps",
      FUNCTION_HEAP_LIMIT,
      // RDP_CPU_PROF=<dir>: a V8 CPU profile of each function, written when it stops.
      ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []),
      FRAMEWORK_MAIN,
      `--target=${spec.target}`,
      `--signature-type=${signature}`,
      `--source=${spec.source}`,
    ],
    env: childEnv(
      {
        ...spec.env,
        PORT: String(spec.port),
        K_SERVICE: spec.target,
        FUNCTION_TARGET: spec.target,
        FUNCTION_SIGNATURE_TYPE: signature,
      },
      spec.inheritEnv,
    ),
    cwd: path.dirname(spec.source),
    logFile: spec.logFile,
  });
}

/** The compiled functions to serve, checked to exist so a missing build fails with a hint. */
export function resolveFunctionsSource(explicit?: string): string {
  const source = path.resolve(
    REPO_ROOT,
    explicit ?? process.env.RDP_FUNCTIONS_SOURCE ?? DEFAULT_FUNCTIONS_SOURCE,
  );
  if (!fs.existsSync(path.join(source, "index.js"))) {
    throw new Error(`${path.join(source, "index.js")} not found: run \`npm run build\` first`);
  }
  if (!fs.existsSync(FRAMEWORK_MAIN)) {
    throw new Error(`${FRAMEWORK_MAIN} not found: run \`npm ci --prefix functions\` first`);
  }
  return source;
}

// ---------------------------------------------------------------------------------------------

interface SupervisorOptions {
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  /** Replace the process this long after it exits by itself; without it, it stays down. */
  readonly restartDelayMs?: number;
}

/** Runs one function instance; with a restart delay, replaces it when it dies, as Cloud Run does. */
class Supervisor {
  private replaced = 0;
  private stopped = false;
  private pendingRestart: NodeJS.Timeout | undefined;

  constructor(
    private readonly instance: ManagedProcess,
    private readonly options: SupervisorOptions,
  ) {
    instance.onExit((code, signal, requested) => {
      if (requested || this.stopped || options.restartDelayMs === undefined) return;
      const logFile = instance.spec.logFile;
      if (logFile !== undefined) {
        const how = signal === null ? `with code ${code}` : `on ${signal}`;
        fs.appendFileSync(
          logFile,
          `\n[supervisor] instance exited ${how}; starting a new one in ${options.restartDelayMs} ms\n`,
        );
      }
      this.pendingRestart = setTimeout(() => {
        this.pendingRestart = undefined;
        if (this.stopped || this.instance.running) return;
        this.replaced += 1;
        instance.start();
      }, options.restartDelayMs);
    });
  }

  get pid(): number | undefined {
    return this.instance.pid;
  }

  /** Instances started after one exited by itself. A crash-looping build keeps counting. */
  get restarts(): number {
    return this.replaced;
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.instance.start();
    const { host, port, timeoutMs } = this.options;
    await waitUntilReady({ host, port, timeoutMs, process: this.instance });
  }

  async restart(): Promise<void> {
    this.cancelPendingRestart();
    await this.instance.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelPendingRestart();
    await this.instance.stop();
  }

  private cancelPendingRestart(): void {
    clearTimeout(this.pendingRestart);
    this.pendingRestart = undefined;
  }
}

// ---------------------------------------------------------------------------------------------

interface PushSubscriptionConfig extends Required<SubscriptionPolicy> {
  readonly pushEndpoint: string;
}

/** The topic and its push subscription, as Eventarc would create them for the worker. */
class Topology {
  constructor(
    private readonly pubsubHost: string,
    private readonly project: string,
    private readonly topic: string,
    private readonly subscription: string,
    private readonly config: PushSubscriptionConfig,
  ) {}

  ensure(): Promise<void> {
    return this.withClient(async (client) => {
      const gaxOpts = { timeout: ADMIN_TIMEOUT_MS };
      await ignoreAlreadyExists(client.createTopic(this.topic, gaxOpts));
      await ignoreAlreadyExists(
        client.topic(this.topic).createSubscription(this.subscription, {
          gaxOpts,
          pushConfig: { pushEndpoint: this.config.pushEndpoint },
          ackDeadlineSeconds: this.config.ackDeadlineSeconds,
          ...(this.config.retryPolicy
            ? {
                retryPolicy: {
                  minimumBackoff: { seconds: this.config.minimumBackoffSeconds },
                  maximumBackoff: { seconds: this.config.maximumBackoffSeconds },
                },
              }
            : {}),
        }),
      );
    });
  }

  /** On shared emulators: else the emulator keeps pushing to a port nobody serves. */
  remove(): Promise<void> {
    return this.withClient(async (client) => {
      const gaxOpts = { timeout: ADMIN_TIMEOUT_MS };
      await client
        .subscription(this.subscription)
        .delete(gaxOpts)
        .catch(() => undefined);
      await client
        .topic(this.topic)
        .delete(gaxOpts)
        .catch(() => undefined);
    });
  }

  private async withClient(use: (client: PubSub) => Promise<void>): Promise<void> {
    const client = new PubSub({
      projectId: this.project,
      apiEndpoint: this.pubsubHost,
      emulatorMode: true,
    });
    try {
      await use(client);
    } finally {
      await client.close();
    }
  }
}

const GRPC_ALREADY_EXISTS = 6;

async function ignoreAlreadyExists(request: Promise<unknown>): Promise<void> {
  try {
    await request;
  } catch (error) {
    if ((error as { code?: number }).code !== GRPC_ALREADY_EXISTS) throw error;
  }
}

// ---------------------------------------------------------------------------------------------

/** The header the demo curl sends an API key in; it must match the ingest function's. */
const API_KEY_HEADER = "Authorization: Bearer";

export interface DemoTenant {
  readonly tenantId: string;
  readonly apiKey: string | null;
}

/** A ready-to-paste request that ingests one record for the demo tenant. */
export function demoCurl(url: string, tenant: DemoTenant): string {
  const body = JSON.stringify({ tenant_id: tenant.tenantId, log_id: "demo-1", text: "hello" });
  const auth = tenant.apiKey === null ? "" : ` -H '${API_KEY_HEADER} ${tenant.apiKey}'`;
  return `curl -i -X POST '${url}' -H 'Content-Type: application/json'${auth} -d '${body}'`;
}

/** What to say about the demo key: none means only the open demo mode accepts the curl. */
export function describeDemoKey(tenant: DemoTenant, authMode: string | undefined): string {
  if (tenant.apiKey !== null) return tenant.apiKey;
  return authMode === "disabled"
    ? "none needed (AUTH_MODE=disabled)"
    : "none yet: start with AUTH_MODE=disabled for the open demo";
}

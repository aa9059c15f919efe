/**
 * The Google Cloud emulators (Pub/Sub, Firestore) as child processes of a local run, and the
 * process plumbing every local-run script shares.
 *
 * Every child process is started by ManagedProcess (its own process group, output to a log file)
 * and every wait for a server goes through waitUntilReady, so there is one place to get process
 * lifetimes and timeouts right. Nothing here downloads anything: the emulators come from the
 * Google Cloud SDK of the machine image, and a missing piece stops the run with an install hint.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Firestore } from "@google-cloud/firestore";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const LOOPBACK = "127.0.0.1";

const FIRESTORE_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore";
const DEFAULT_READY_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 100;
const PROBE_TIMEOUT_MS = 2_000;
const LOG_TAIL_BYTES = 2_000;

// ---------------------------------------------------------------------------------------------
// Locating the tools

export interface EmulatorTools {
  readonly sdkRoot: string;
  readonly java: string;
  readonly pubsubLauncher: string;
  readonly firestoreJar: string;
}

export class EmulatorSetupError extends Error {
  override readonly name = "EmulatorSetupError";
}

const APT_HINT =
  "Install them on Debian/Ubuntu (Google Cloud apt repository configured) with:\n" +
  "  sudo apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator \\\n" +
  "    google-cloud-cli-firestore-emulator openjdk-17-jre-headless\n" +
  "With an SDK installed from Google's archive instead: " +
  "gcloud components install pubsub-emulator cloud-firestore-emulator\n" +
  "Set CLOUDSDK_ROOT to use an SDK installed elsewhere.";

let cachedTools: EmulatorTools | undefined;

/**
 * Finds the SDK's emulators and Java, or throws one EmulatorSetupError naming everything
 * missing: a machine without them cannot run the stack offline, and the integration tests must
 * fail loudly rather than skip.
 */
export function locateEmulatorTools(env: NodeJS.ProcessEnv = process.env): EmulatorTools {
  if (cachedTools !== undefined) return cachedTools;
  const missing: string[] = [];

  const java = findOnPath("java", env);
  if (java === undefined) missing.push("java: not found on PATH (Java 17 runs both emulators)");

  const sdkRoot = env.CLOUDSDK_ROOT?.trim() || gcloudSdkRoot(env, missing);
  let pubsubLauncher = "";
  let firestoreJar = "";
  if (sdkRoot !== undefined) {
    pubsubLauncher = path.join(
      sdkRoot,
      "platform",
      "pubsub-emulator",
      "bin",
      "cloud-pubsub-emulator",
    );
    firestoreJar = path.join(
      sdkRoot,
      "platform",
      "cloud-firestore-emulator",
      "cloud-firestore-emulator.jar",
    );
    if (!isExecutable(pubsubLauncher)) {
      missing.push(`Pub/Sub emulator: ${pubsubLauncher} is missing or not executable`);
    }
    if (!fs.existsSync(firestoreJar))
      missing.push(`Firestore emulator: ${firestoreJar} is missing`);
  }

  if (missing.length > 0 || java === undefined || sdkRoot === undefined) {
    throw new EmulatorSetupError(
      `Cannot start the local emulators; missing:\n  - ${missing.join("\n  - ")}\n${APT_HINT}`,
    );
  }
  cachedTools = { sdkRoot, java, pubsubLauncher, firestoreJar };
  return cachedTools;
}

function gcloudSdkRoot(env: NodeJS.ProcessEnv, missing: string[]): string | undefined {
  try {
    const root = execFileSync("gcloud", ["info", "--format=value(installation.sdk_root)"], {
      env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    }).trim();
    if (root !== "") return root;
    missing.push("Google Cloud SDK: `gcloud info` printed no installation.sdk_root");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "not on PATH" : "failed";
    missing.push(`Google Cloud SDK: gcloud ${reason} and CLOUDSDK_ROOT is not set`);
  }
  return undefined;
}

function findOnPath(command: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    const candidate = path.join(dir, command);
    if (dir !== "" && isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/** Environment keys a child may inherit even when it does not inherit the whole environment. */
const BASIC_ENV_KEYS = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/**
 * The environment for a child: `extra` over either our whole environment or, by default, only
 * its basics, so a developer's exported AUTH_MODE or NODE_OPTIONS cannot leak into a test run.
 */
export function childEnv(
  extra: Readonly<Record<string, string>>,
  inherit = false,
): Record<string, string> {
  const base: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && (inherit || BASIC_ENV_KEYS.includes(key))) base[key] = value;
  }
  return { ...base, ...extra };
}

export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** File that stdout and stderr are appended to; without one they share this terminal. */
  readonly logFile?: string;
  readonly stopSignal?: NodeJS.Signals;
  /** How long stop() waits after stopSignal before it sends SIGKILL. */
  readonly stopGraceMs?: number;
}

/** `requested` is true when the exit follows a stop(), false when the process ended by itself. */
export type ExitListener = (
  code: number | null,
  signal: NodeJS.Signals | null,
  requested: boolean,
) => void;

const liveProcesses = new Set<ManagedProcess>();

/**
 * A restartable child process in its own process group. Stopping signals the whole group, so a
 * launcher script and the JVM it starts go together; the group also keeps a terminal's Ctrl-C
 * from reaching the children directly, which leaves shutdown order to us.
 */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private readonly exitListeners = new Set<ExitListener>();

  constructor(readonly spec: ProcessSpec) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  onExit(listener: ExitListener): void {
    this.exitListeners.add(listener);
  }

  start(): void {
    if (this.child !== undefined) throw new Error(`${this.spec.name} is already running`);
    installReaper();
    const { logFile } = this.spec;
    if (logFile !== undefined) fs.mkdirSync(path.dirname(logFile), { recursive: true });
    // The child writes straight to the file, so its output survives us and needs no pumping.
    const output = logFile === undefined ? "inherit" : fs.openSync(logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(this.spec.command, [...this.spec.args], {
        cwd: this.spec.cwd ?? REPO_ROOT,
        env: this.spec.env,
        detached: true,
        stdio: ["ignore", output, output],
      });
    } finally {
      if (typeof output === "number") fs.closeSync(output);
    }
    this.child = child;
    liveProcesses.add(this);
    this.exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (done) return;
        done = true;
        this.child = undefined;
        liveProcesses.delete(this);
        if (error !== undefined && logFile !== undefined) {
          fs.appendFileSync(logFile, `\n[${this.spec.name}] could not start: ${error.message}\n`);
        }
        const requested = this.stopping !== undefined;
        for (const listener of this.exitListeners) listener(code, signal, requested);
        resolve();
      };
      child.once("exit", (code, signal) => finish(code, signal));
      child.once("error", (error) => finish(null, null, error));
    });
  }

  /** Sends stopSignal to the group, then SIGKILL after the grace period. Idempotent. */
  stop(): Promise<void> {
    if (this.child === undefined) return this.stopping ?? Promise.resolve();
    this.stopping ??= this.terminate().finally(() => {
      this.stopping = undefined;
    });
    return this.stopping;
  }

  /** Immediate, synchronous group kill, for exit paths that cannot wait. */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.child?.pid !== undefined) signalGroup(this.child.pid, signal);
  }

  private async terminate(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return this.exited;
    const { stopSignal = "SIGTERM", stopGraceMs = 5_000 } = this.spec;
    signalGroup(pid, stopSignal);
    if (!(await settlesWithin(this.exited, stopGraceMs))) {
      signalGroup(pid, "SIGKILL");
      if (!(await settlesWithin(this.exited, 5_000))) {
        throw new Error(`${this.spec.name} (pid ${pid}) survived SIGKILL for 5 s`);
      }
    }
    // The leader is gone; anything it left behind in its group goes too.
    signalGroup(pid, "SIGKILL");
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

let reaperInstalled = false;

/**
 * Detached children outlive us unless we kill them: on exit, and on a signal that nobody else
 * handles (mocha leaves Ctrl-C to Node's default, which would skip every cleanup hook).
 * Scripts with their own signal handlers shut down gracefully and exit; the exit hook is the
 * backstop for whatever they missed.
 */
function installReaper(): void {
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on("exit", () => {
    for (const child of liveProcesses) child.kill("SIGKILL");
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (process.listenerCount(signal) > 1) return;
      process.exit(128 + os.constants.signals[signal]);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Waiting

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface PollOptions {
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** What is awaited, for the timeout message. */
  readonly what: string;
}

/**
 * Calls `attempt` until it returns a value other than undefined, within a bounded time. A
 * string thrown or returned through `note` is kept as the last observation for the error.
 */
export async function pollUntil<T>(
  attempt: (note: (observation: string) => void) => Promise<T | undefined>,
  options: PollOptions,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last = "nothing observed";
  const note = (observation: string) => {
    last = observation;
  };
  for (;;) {
    const value = await attempt(note);
    if (value !== undefined) return value;
    if (Date.now() >= deadline) break;
    await sleep(
      Math.min(options.intervalMs ?? POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())),
    );
  }
  throw new Error(`Timed out after ${options.timeoutMs} ms waiting for ${options.what} (${last})`);
}

interface ProbeBounds {
  readonly timeoutMs?: number;
  /** The process that should answer: waiting stops at once if it exits. */
  readonly process?: ManagedProcess;
}

/** Ready once an HTTP GET gets an answer that `ready` accepts (by default, any answer). */
export interface HttpProbe extends ProbeBounds {
  readonly url: string;
  readonly ready?: (status: number, body: string) => boolean;
}

/** Ready once the port accepts a connection, for servers where any request would do work. */
export interface TcpProbe extends ProbeBounds {
  readonly host: string;
  readonly port: number;
}

export type ReadinessProbe = HttpProbe | TcpProbe;

export async function waitUntilReady(probe: ReadinessProbe): Promise<void> {
  const { timeoutMs = DEFAULT_READY_TIMEOUT_MS, process: child } = probe;
  const target = "url" in probe ? probe.url : `${probe.host}:${probe.port}`;
  const name = child?.spec.name ?? target;
  try {
    await pollUntil(
      async (note) => {
        if (child !== undefined && !child.running) {
          throw new Error(`${name} exited before it answered on ${target}`);
        }
        const failure = "url" in probe ? await probeHttp(probe) : await probeTcp(probe);
        if (failure === undefined) return true;
        note(failure);
        return undefined;
      },
      { timeoutMs, what: `${name} to answer on ${target}` },
    );
  } catch (error) {
    const logFile = child?.spec.logFile;
    const tail = logFile === undefined ? "" : `\nLast lines of ${logFile}:\n${readTail(logFile)}`;
    throw new Error(`${(error as Error).message}${tail}`);
  }
}

/** Resolves undefined when ready, else what was seen instead. */
async function probeHttp({ url, ready = () => true }: HttpProbe): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    const body = await response.text();
    return ready(response.status, body)
      ? undefined
      : `HTTP ${response.status}: ${body.slice(0, 200)}`;
  } catch (error) {
    return describeFetchError(error);
  }
}

function probeTcp({ host, port }: TcpProbe): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: PROBE_TIMEOUT_MS });
    const done = (failure: string | undefined) => {
      socket.destroy();
      resolve(failure);
    };
    socket.once("connect", () => done(undefined));
    socket.once("timeout", () => done("connect timed out"));
    socket.once("error", (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code ?? (error as Error).message;
}

function readTail(file: string): string {
  try {
    const size = fs.statSync(file).size;
    const fd = fs.openSync(file, "r");
    try {
      const length = Math.min(size, LOG_TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      fs.readSync(fd, buffer, 0, length, size - length);
      return buffer.toString("utf8");
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return "(no log)";
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

/** A port the OS just handed out on `host`; free now, not reserved. */
export function freePort(host = LOOPBACK): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("could not read the port of a listening socket"));
      });
    });
  });
}

/**
 * Fails if something already listens on the port: a leftover emulator there would answer our
 * readiness probe while the new one dies on a bind error.
 */
export function assertPortFree(host: string, port: number, purpose: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `Port ${port} on ${host} (${purpose}) is not free: ${error.code ?? error.message}. ` +
            `Another copy of the stack may be running; \`ss -ltnp 'sport = :${port}'\` shows who.`,
        ),
      ),
    );
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

// ---------------------------------------------------------------------------------------------
// The emulators

export type EmulatorKind = "pubsub" | "firestore";

/** One emulator JVM on a fixed host and port, which stop() and start() keep across restarts. */
export class Emulator {
  constructor(
    readonly kind: EmulatorKind,
    readonly host: string,
    readonly port: number,
    private readonly process: ManagedProcess,
    private readonly readyTimeoutMs: number,
  ) {}

  /** The value for PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST. */
  get hostPort(): string {
    return `${this.host}:${this.port}`;
  }

  get url(): string {
    return `http://${this.hostPort}/`;
  }

  get logFile(): string {
    return this.process.spec.logFile ?? "";
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get running(): boolean {
    return this.process.running;
  }

  /**
   * Freezes the emulator (SIGSTOP to its process group): it keeps its state and its sockets,
   * and answers nothing until `resume`, as a backend that stalls rather than dies.
   */
  pause(): void {
    this.process.kill("SIGSTOP");
  }

  resume(): void {
    this.process.kill("SIGCONT");
  }

  async start(): Promise<void> {
    await assertPortFree(this.host, this.port, `${this.kind} emulator`);
    this.process.start();
    try {
      await waitUntilReady({
        url: this.url,
        ready: (status, body) => status === 200 && body.trim() === "Ok",
        timeoutMs: this.readyTimeoutMs,
        process: this.process,
      });
    } catch (error) {
      await this.process.stop();
      throw error;
    }
  }

  stop(): Promise<void> {
    return this.process.stop();
  }

  /** Stops and starts again on the same port. Emulator state lives in memory and is lost. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

export interface EmulatorOptions {
  /** Directory for pubsub.log and firestore.log. */
  readonly logDir: string;
  readonly host?: string;
  /** Free ports are picked when these are omitted. */
  readonly pubsubPort?: number;
  readonly firestorePort?: number;
  /** -Xmx of the Firestore JVM, which never frees deleted documents. */
  readonly firestoreMaxHeap?: string;
  readonly readyTimeoutMs?: number;
  readonly tools?: EmulatorTools;
}

export interface Emulators {
  readonly pubsub: Emulator;
  readonly firestore: Emulator;
  stop(): Promise<void>;
}

export async function startEmulators(options: EmulatorOptions): Promise<Emulators> {
  const tools = options.tools ?? locateEmulatorTools();
  const host = options.host ?? LOOPBACK;
  const readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const [pubsubPort, firestorePort] = await Promise.all([
    options.pubsubPort ?? freePort(host),
    options.firestorePort ?? freePort(host),
  ]);
  // Both find java on PATH, as locateEmulatorTools did; JAVA_HOME is left out on purpose.
  const env = childEnv({});

  const pubsub = new Emulator(
    "pubsub",
    host,
    pubsubPort,
    new ManagedProcess({
      name: "pubsub emulator",
      command: tools.pubsubLauncher,
      args: [`--host=${host}`, `--port=${pubsubPort}`],
      env,
      logFile: path.join(options.logDir, "pubsub.log"),
    }),
    readyTimeoutMs,
  );
  const firestore = new Emulator(
    "firestore",
    host,
    firestorePort,
    new ManagedProcess({
      name: "firestore emulator",
      command: tools.java,
      args: [
        `-Xmx${options.firestoreMaxHeap ?? "1g"}`,
        // As the SDK's own launcher does: the emulator only supports English messages.
        "-Duser.language=en",
        "-cp",
        tools.firestoreJar,
        FIRESTORE_MAIN_CLASS,
        `--host=${host}`,
        `--port=${firestorePort}`,
      ],
      env,
      logFile: path.join(options.logDir, "firestore.log"),
    }),
    readyTimeoutMs,
  );

  const stop = async () => {
    await Promise.all([pubsub.stop(), firestore.stop()]);
  };
  const started = await Promise.allSettled([pubsub.start(), firestore.start()]);
  const failure = started.find((result) => result.status === "rejected");
  if (failure !== undefined) {
    await stop();
    throw failure.reason;
  }
  return { pubsub, firestore, stop };
}

// ---------------------------------------------------------------------------------------------
// Binaries for the Firebase emulator suite

export interface FirebaseEmulatorBinaries {
  readonly FIRESTORE_EMULATOR_BINARY_PATH: string;
  readonly PUBSUB_EMULATOR_BINARY_PATH: string;
}

/**
 * firebase-tools would download its own emulator jars; offline it must be pointed at the SDK's
 * through these variables (lib/emulator/downloadableEmulators.js, getDownloadDetails). Both
 * files are built once into `.emulators/`, named after the SDK path they point at:
 * - Firestore is started as `java -jar <path>`, and the SDK jar has no Main-Class, so a launcher
 *   jar supplies Main-Class and a Class-Path to the SDK jar.
 * - Pub/Sub is spawned as `<path> --port=.. --host=..`, but firebase-tools first chmods the
 *   path, which fails on a root-owned SDK for anyone but root; a wrapper script of our own
 *   takes the chmod instead.
 */
export function prepareFirebaseEmulatorBinaries(
  tools: EmulatorTools = locateEmulatorTools(),
  cacheDir: string = path.join(REPO_ROOT, ".emulators"),
): FirebaseEmulatorBinaries {
  fs.mkdirSync(cacheDir, { recursive: true });
  const manifest =
    `Main-Class: ${FIRESTORE_MAIN_CLASS}\n` +
    `Class-Path: ${pathToFileURL(tools.firestoreJar).href}\n`;
  const launcherJar = path.join(cacheDir, `firestore-launcher-${shortHash(manifest)}.jar`);
  if (!fs.existsSync(launcherJar)) buildLauncherJar(tools, manifest, launcherJar);

  const wrapper = `#!/bin/sh\nexec '${tools.pubsubLauncher.replace(/'/g, "'\\''")}' "$@"\n`;
  const pubsubBinary = path.join(cacheDir, `pubsub-emulator-${shortHash(wrapper)}.sh`);
  if (!fs.existsSync(pubsubBinary)) writeAtomically(pubsubBinary, wrapper, 0o755);

  return { FIRESTORE_EMULATOR_BINARY_PATH: launcherJar, PUBSUB_EMULATOR_BINARY_PATH: pubsubBinary };
}

function buildLauncherJar(tools: EmulatorTools, manifest: string, target: string): void {
  const jarTool =
    [path.join(path.dirname(fs.realpathSync(tools.java)), "jar")].find(isExecutable) ??
    findOnPath("jar", process.env);
  if (jarTool === undefined) {
    throw new EmulatorSetupError(
      "Cannot build the Firestore launcher jar for firebase-tools: the JDK's `jar` tool is " +
        "missing (a JRE alone has none). Install it with: sudo apt-get install openjdk-17-jdk-headless",
    );
  }
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "rdp-launcher-"));
  try {
    const manifestFile = path.join(workDir, "MANIFEST.MF");
    const jarFile = path.join(workDir, "launcher.jar");
    fs.writeFileSync(manifestFile, manifest);
    execFileSync(jarTool, ["cfm", jarFile, manifestFile], { stdio: "pipe", timeout: 60_000 });
    // Rename within the cache dir so a concurrent run never sees half a jar.
    const staged = `${target}.${process.pid}.tmp`;
    fs.copyFileSync(jarFile, staged);
    fs.renameSync(staged, target);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

function writeAtomically(target: string, content: string, mode: number): void {
  const staged = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(staged, content, { mode });
  fs.renameSync(staged, target);
}

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 12);
}

/**
 * A client of the given emulator whatever this process's environment says. The library lets
 * FIRESTORE_EMULATOR_HOST override any host passed in settings, and reads it only in the
 * constructor, so it is pointed at the stack's emulator for that call alone. `ssl: false`
 * marks an emulator connection: the library then sends the emulator's admin token and never
 * looks for Google credentials, so this can never reach a real project.
 */
export function emulatorFirestore(projectId: string, firestoreHost: string): Firestore {
  const previous = process.env.FIRESTORE_EMULATOR_HOST;
  process.env.FIRESTORE_EMULATOR_HOST = firestoreHost;
  try {
    return new Firestore({ projectId, host: firestoreHost, ssl: false });
  } finally {
    if (previous === undefined) delete process.env.FIRESTORE_EMULATOR_HOST;
    else process.env.FIRESTORE_EMULATOR_HOST = previous;
  }
}

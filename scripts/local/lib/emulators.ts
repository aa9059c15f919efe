/**
 * The process plumbing every local-run script shares (one ManagedProcess, one readiness wait),
 * and the Google Cloud emulators (Pub/Sub, Firestore) run with it: the files installEmulators
 * placed for firebase-tools, started as firebase-tools starts them, on free ports.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Firestore } from "@google-cloud/firestore";
import { installEmulators } from "./install-emulators";

export { sleep };
export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
export const LOOPBACK = "127.0.0.1";

/** Keys a child inherits even when it does not inherit the whole environment. */
const BASIC_ENV_KEYS = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"];

/**
 * `extra` over our whole environment or, by default, only its basics, so a developer's
 * exported AUTH_MODE or NODE_OPTIONS cannot leak into a test run.
 */
export function childEnv(extra: Record<string, string>, inherit = false): Record<string, string> {
  const base = Object.entries(process.env).filter(
    ([key, value]) => value !== undefined && (inherit || BASIC_ENV_KEYS.includes(key)),
  );
  return { ...(Object.fromEntries(base) as Record<string, string>), ...extra };
}

/** How start() knows the process is up: an HTTP answer `ready` accepts, or an open port. */
export type ReadinessProbe = (
  | { readonly url: string; readonly ready?: (status: number, body: string) => boolean }
  | { readonly host: string; readonly port: number }
) & { readonly timeoutMs?: number; readonly process?: ManagedProcess };

export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** File that stdout and stderr are appended to; without one they share this terminal. */
  readonly logFile?: string;
  /** How long stop() waits after SIGTERM before it sends SIGKILL. */
  readonly stopGraceMs?: number;
  /** The port it will listen on: start() checks that it is free. */
  readonly port?: number;
  /** Without one, start() returns once the process is spawned. */
  readonly ready?: ReadinessProbe;
  /** Start it again this long after it exits by itself, as Cloud Run replaces an instance. */
  readonly replaceAfterMs?: number;
}

const live = new Set<ManagedProcess>();
// Detached children outlive us unless we kill them. Scripts with signal handlers stop their
// children gracefully; this is the backstop, also for mocha, which leaves Ctrl-C to Node.
process.on("exit", () => live.forEach((child) => child.kill("SIGKILL")));
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (process.listenerCount(signal) === 1) process.exit(128 + os.constants.signals[signal]);
  });
}

/**
 * A restartable child process in its own process group: signals reach a launcher script and
 * the JVM it starts alike, and a terminal's Ctrl-C reaches only us, which leaves the shutdown
 * order to us.
 */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private replacement: NodeJS.Timeout | undefined;
  private replaced = 0;
  private readonly exitListeners: Array<(code: number | null, requested: boolean) => void> = [];

  constructor(readonly spec: ProcessSpec) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** How often it was started again after it exited by itself (see replaceAfterMs). */
  get restarts(): number {
    return this.replaced;
  }

  /** `requested`: the exit follows a stop(), rather than the process ending by itself. */
  onExit(listener: (code: number | null, requested: boolean) => void): void {
    this.exitListeners.push(listener);
  }

  async start(): Promise<void> {
    if (this.child !== undefined) throw new Error(`${this.spec.name} is already running`);
    const { logFile, ready, port } = this.spec;
    if (port) await freePort(LOOPBACK, port);
    if (logFile) fs.mkdirSync(path.dirname(logFile), { recursive: true });
    // The child writes straight to the file: no pumping, and its output survives us.
    const output = logFile ? fs.openSync(logFile, "a") : "inherit";
    const child = spawn(this.spec.command, this.spec.args, {
      cwd: this.spec.cwd ?? REPO_ROOT,
      env: this.spec.env,
      detached: true,
      stdio: ["ignore", output, output],
    });
    if (typeof output === "number") fs.closeSync(output);
    this.child = child;
    live.add(this);
    this.exited = new Promise((resolve) => {
      const exit = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (this.child !== child) return;
        this.child = undefined;
        live.delete(this);
        if (error && logFile) fs.appendFileSync(logFile, `\ncould not start: ${error.message}\n`);
        const requested = this.stopping !== undefined;
        this.exitListeners.forEach((listener) => listener(code, requested));
        if (!requested) this.replaceLater(signal ? `on ${signal}` : `with code ${code}`);
        resolve();
      };
      child.once("exit", (code, signal) => exit(code, signal));
      child.once("error", (error) => exit(null, null, error));
    });
    if (ready) {
      await waitUntilReady({ ...ready, process: this }).catch(async (error: unknown) => {
        // One that never answered is stopped; one that exited is left to replaceAfterMs.
        if (this.child === child) await this.stop();
        throw error;
      });
    }
  }

  private replaceLater(how: string): void {
    const delay = this.spec.replaceAfterMs;
    if (delay === undefined) return;
    const note = `\n[supervisor] instance exited ${how}; starting a new one in ${delay} ms\n`;
    if (this.spec.logFile) fs.appendFileSync(this.spec.logFile, note);
    clearTimeout(this.replacement); // at most one replacement pending
    this.replacement = setTimeout(() => {
      if (this.running) return;
      this.replaced += 1;
      // Never down in silence: a start that fails before spawning is logged and tried again.
      this.start().catch((error: Error) => {
        if (this.running || this.stopping) return;
        if (this.spec.logFile)
          fs.appendFileSync(this.spec.logFile, `\n[supervisor] ${error.message}\n`);
        this.replaceLater("and its replacement failed");
      });
    }, delay);
  }

  /** SIGTERM to the group, SIGKILL after the grace period. Idempotent. */
  stop(): Promise<void> {
    clearTimeout(this.replacement);
    const pid = this.child?.pid;
    if (pid === undefined) return this.stopping ?? Promise.resolve();
    this.stopping ??= (async () => {
      this.kill("SIGTERM");
      const grace = sleep(this.spec.stopGraceMs ?? 5_000, false);
      if (!(await Promise.race([this.exited.then(() => true), grace]))) this.kill("SIGKILL");
      await this.exited;
      signalGroup(pid, "SIGKILL"); // whatever the leader left behind in its group
    })().finally(() => (this.stopping = undefined));
    return this.stopping;
  }

  /** Stops it on purpose (not counted as a restart) and starts it again. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Freezes the process group (SIGSTOP) until resume(). */
  pause(): void {
    this.kill("SIGSTOP");
  }

  resume(): void {
    this.kill("SIGCONT");
  }

  /** Signals the whole group at once. */
  kill(signal: NodeJS.Signals): void {
    if (this.child?.pid !== undefined) signalGroup(this.child.pid, signal);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Waiting and ports

/**
 * Calls `attempt` until it returns a value other than undefined, within a bounded time; what
 * it passes to `note` is kept as the last observation for the timeout message.
 */
export async function pollUntil<T>(
  attempt: (note: (observation: string) => void) => Promise<T | undefined>,
  { timeoutMs, intervalMs = 100, what }: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "nothing observed";
  for (;;) {
    const value = await attempt((observation) => (last = observation));
    if (value !== undefined) return value;
    if (Date.now() >= deadline) break;
    await sleep(Math.min(intervalMs, deadline - Date.now()));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (${last})`);
}

/** Waits for the probe; stops waiting at once if `process` exits, showing its log's end. */
export async function waitUntilReady(probe: ReadinessProbe): Promise<void> {
  const target = "url" in probe ? probe.url : `${probe.host}:${probe.port}`;
  const child = probe.process;
  await pollUntil(
    async (note) => {
      if (child && !child.running) throw new Error(`${child.spec.name} exited`);
      const failure = await ("url" in probe ? probeHttp(probe) : probeTcp(probe));
      if (failure === undefined) return true;
      note(failure);
      return undefined;
    },
    {
      timeoutMs: probe.timeoutMs ?? 60_000,
      what: `${child?.spec.name ?? "an answer"} on ${target}`,
    },
  ).catch((error: Error) => {
    const log = child?.spec.logFile;
    const tail = log && fs.existsSync(log) ? fs.readFileSync(log, "utf8").slice(-2_000) : "";
    throw new Error(`${error.message}${tail && `\nEnd of ${log}:\n${tail}`}`);
  });
}

/** Resolves undefined when ready, else what was seen instead. */
async function probeHttp({
  url,
  ready,
}: {
  url: string;
  ready?: (s: number, b: string) => boolean;
}) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    const body = await response.text();
    return (ready?.(response.status, body) ?? true) ? undefined : `HTTP ${response.status}`;
  } catch (error) {
    return (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
  }
}

function probeTcp({ host, port }: { host: string; port: number }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2_000 });
    const done = (failure?: string) => {
      socket.destroy();
      resolve(failure);
    };
    socket.once("connect", () => done());
    socket.once("timeout", () => done("connect timed out"));
    socket.once("error", (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
  });
}

/**
 * A port the OS just handed out, free now but not reserved; or `port`, checked to be free: a
 * leftover emulator there would answer our readiness probe while the new one dies on a bind error.
 */
export function freePort(host = LOOPBACK, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once("error", (error: NodeJS.ErrnoException) => {
      const hint = `Another stack may be running; \`ss -ltnp 'sport = :${port}'\` shows who.`;
      reject(new Error(`Port ${port} on ${host} is not free (${error.code}). ${hint}`));
    });
    server.listen(port, host, () => {
      const { port: bound } = server.address() as net.AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The emulators

/**
 * One emulator on a fixed port, kept across restart(). Its state lives in memory: a restart
 * loses it. pause() freezes it with its state and sockets, answering nothing, as a backend that
 * stalls rather than dies, until resume().
 */
export type Emulator = ManagedProcess & { readonly hostPort: string; readonly logFile: string };

export interface EmulatorOptions {
  /** Directory for pubsub.log and firestore.log. */
  readonly logDir: string;
  /** Free ports are picked when these are omitted. */
  readonly pubsubPort?: number;
  readonly firestorePort?: number;
  /** -Xmx of the Firestore JVM, which never frees deleted documents. */
  readonly firestoreMaxHeap?: string;
  readonly readyTimeoutMs?: number;
}

export interface Emulators {
  readonly pubsub: Emulator;
  readonly firestore: Emulator;
  stop(): Promise<void>;
}

export async function startEmulators(options: EmulatorOptions): Promise<Emulators> {
  const files = installEmulators();
  const define = async (
    name: string,
    port: number | undefined,
    [command = "", ...args]: string[],
  ) => {
    const bound = port ?? (await freePort());
    const logFile = path.join(options.logDir, `${name}.log`);
    const emulator = new ManagedProcess({
      name: `${name} emulator`,
      port: bound,
      command,
      args: [...args, `--host=${LOOPBACK}`, `--port=${bound}`],
      env: childEnv({}),
      logFile,
      ready: {
        url: `http://${LOOPBACK}:${bound}/`,
        ready: (status, body) => status === 200 && body.trim() === "Ok",
        timeoutMs: options.readyTimeoutMs,
      },
    });
    return Object.assign(emulator, { hostPort: `${LOOPBACK}:${bound}`, logFile });
  };
  const pubsub = await define("pubsub", options.pubsubPort, [files.pubsub]);
  const firestore = await define("firestore", options.firestorePort, [
    "java",
    `-Xmx${options.firestoreMaxHeap ?? "1g"}`,
    "-Duser.language=en", // as the SDK's launcher: the emulator only speaks English
    "-jar",
    files.firestore,
  ]);
  const stop = async () => {
    await Promise.all([pubsub.stop(), firestore.stop()]);
  };
  const started = await Promise.allSettled([pubsub.start(), firestore.start()]);
  const failure = started.find((result) => result.status === "rejected");
  if (failure) await stop().then(() => Promise.reject(failure.reason));
  return { pubsub, firestore, stop };
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

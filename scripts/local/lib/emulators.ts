/**
 * The process plumbing of the local stack and the Google Cloud emulators run with it: the files
 * installEmulators placed for firebase-tools, started as firebase-tools starts them.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
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

/** `extra` over our environment, or only its basics: an exported AUTH_MODE stays out of tests. */
export function childEnv(extra: Record<string, string>, inherit = false): Record<string, string> {
  const base = Object.entries(process.env).filter(
    ([key, value]) => value !== undefined && (inherit || BASIC_ENV_KEYS.includes(key)),
  );
  return { ...(Object.fromEntries(base) as Record<string, string>), ...extra };
}

export interface ProcessSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Where stdout and stderr are appended. */
  readonly logFile: string;
  /** start() checks that it is free, then waits for a connection on it (see `connects`). */
  readonly port?: number;
  readonly readyTimeoutMs?: number;
  /** Start it again this long after it exits by itself, as Cloud Run replaces an instance. */
  readonly replaceAfterMs?: number;
}

const live = new Set<ManagedProcess>();

/** Stops every child still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => child.stop()));
}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Calls `handler` on the first signal only: a Ctrl-C reaches tsx and us, and tsx passes it on. */
export function onFirstSignal(handler: (signal: NodeJS.Signals) => void): void {
  let signalled = false;
  for (const signal of SIGNALS) {
    process.on(signal, () => {
      if (!signalled) handler(signal);
      signalled = true;
    });
  }
}

// Children outlive us unless stopped. A signal stops them unless the script handles it itself;
// exit is the backstop, also for mocha, which leaves Ctrl-C to Node.
process.on("exit", () => live.forEach((child) => child.kill("SIGKILL")));
for (const signal of SIGNALS) {
  process.on(signal, () => {
    if (process.listenerCount(signal) > 1) return;
    void stopAll().finally(() => process.exit(128 + os.constants.signals[signal]));
  });
}

/**
 * A restartable child process in its own process group: signals reach a launcher script and its
 * JVM alike, and a terminal's Ctrl-C reaches only us, which leaves the shutdown order to us.
 */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private replacement: NodeJS.Timeout | undefined;
  /** How often it was started again after it exited by itself (see replaceAfterMs). */
  restarts = 0;

  constructor(readonly spec: ProcessSpec) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  async start(): Promise<void> {
    if (this.child !== undefined) throw new Error(`${this.spec.name} is already running`);
    const { logFile, port } = this.spec;
    if (port) await freePort(LOOPBACK, port);
    fs.mkdirSync(path.dirname(logFile), { recursive: true });
    // The child writes straight to the file: no pumping, and its output survives us.
    const output = fs.openSync(logFile, "a");
    const child = spawn(this.spec.command, this.spec.args, {
      cwd: this.spec.cwd ?? REPO_ROOT,
      env: this.spec.env,
      detached: true,
      stdio: ["ignore", output, output],
    });
    fs.closeSync(output);
    this.child = child;
    live.add(this);
    this.exited = once(child, "exit")
      .then(
        ([code, signal]) => (signal ? `on ${signal}` : `with code ${code}`),
        (error: Error) => `without starting (${error.message})`,
      )
      .then((how) => {
        this.child = undefined;
        live.delete(this);
        if (this.stopping === undefined) this.exitedByItself(how);
      });
    if (port === undefined) return;
    const { name, readyTimeoutMs = 60_000 } = this.spec;
    const what = `${name} on ${LOOPBACK}:${port}`;
    await pollUntil(
      async (note) => {
        if (this.child !== child) throw new Error(`${name} exited`);
        return connects(port).catch((error: Error) => void note(error.message));
      },
      { timeoutMs: readyTimeoutMs, what },
    ).catch(async (error: Error) => {
      if (this.child === child) await this.stop(); // one that exited is left to replaceAfterMs
      const tail = fs.readFileSync(logFile, "utf8").slice(-2_000);
      throw new Error(`${error.message}\nEnd of ${logFile}:\n${tail}`);
    });
  }

  /** Notes an exit nobody asked for in the log and, with replaceAfterMs, starts a new one. */
  private exitedByItself(how: string): void {
    const delay = this.spec.replaceAfterMs;
    const then = delay === undefined ? "" : `; starting a new one in ${delay} ms`;
    fs.appendFileSync(this.spec.logFile, `\n[supervisor] instance exited ${how}${then}\n`);
    if (delay === undefined) return;
    clearTimeout(this.replacement); // at most one replacement pending
    this.replacement = setTimeout(() => {
      if (this.running) return;
      this.restarts += 1;
      // Never down in silence: a start that fails before spawning is logged and tried again.
      this.start().catch((error: Error) => {
        if (!this.running && !this.stopping)
          this.exitedByItself(`and its replacement failed (${error.message})`);
      });
    }, delay);
  }

  /** SIGTERM to the group, SIGKILL after 5 s and to whatever the leader left. Idempotent. */
  stop(): Promise<void> {
    clearTimeout(this.replacement);
    const pid = this.child?.pid;
    if (pid === undefined) return this.stopping ?? Promise.resolve();
    this.stopping ??= (async () => {
      signalGroup(pid, "SIGTERM");
      const deadline = setTimeout(() => signalGroup(pid, "SIGKILL"), 5_000);
      await this.exited;
      clearTimeout(deadline);
      signalGroup(pid, "SIGKILL");
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

/**
 * Resolves once `port` accepts a connection, as firebase-tools waits for its emulators (an HTTP
 * probe without a body would make functions-framework's CloudEvent middleware throw).
 */
function connects(port: number): Promise<true> {
  const socket = net.connect({ host: LOOPBACK, port, timeout: 2_000 });
  return new Promise<true>((resolve, reject) => {
    socket.once("connect", () => resolve(true));
    socket.once("timeout", () => reject(new Error("connect timed out")));
    socket.once("error", reject);
  }).finally(() => socket.destroy());
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

/** Both emulators, and stop() for both. */
export type Emulators = Awaited<ReturnType<typeof startEmulators>>;
/**
 * One emulator on a fixed port, kept across restart(), which loses its state (held in memory);
 * pause() freezes it, state and sockets, as a backend that stalls rather than dies.
 */
export type Emulator = Emulators["pubsub"];

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

export async function startEmulators(options: EmulatorOptions) {
  const files = installEmulators();
  const emulator = async (name: string, port = 0, command: string, ...args: string[]) => {
    const bound = await freePort(LOOPBACK, port);
    const managed = new ManagedProcess({
      name: `${name} emulator`,
      command,
      args: [...args, `--host=${LOOPBACK}`, `--port=${bound}`],
      env: childEnv({}),
      logFile: path.join(options.logDir, `${name}.log`),
      port: bound,
      readyTimeoutMs: options.readyTimeoutMs,
    });
    return Object.assign(managed, { hostPort: `${LOOPBACK}:${bound}` });
  };
  const { pubsubPort, firestorePort, firestoreMaxHeap = "1g" } = options;
  const pubsub = await emulator("pubsub", pubsubPort, files.pubsub);
  // -Duser.language=en as in the SDK's launcher: the emulator only speaks English.
  const jvm = ["java", `-Xmx${firestoreMaxHeap}`, "-Duser.language=en", "-jar"] as const;
  const firestore = await emulator("firestore", firestorePort, ...jvm, files.firestore);
  const stop = async () => {
    await Promise.all([pubsub.stop(), firestore.stop()]);
  };
  const started = await Promise.allSettled([pubsub.start(), firestore.start()]);
  const failure = started.find((result) => result.status === "rejected");
  if (failure) await stop().then(() => Promise.reject(failure.reason));
  return { pubsub, firestore, stop };
}

/**
 * A client of this emulator whatever our environment says: FIRESTORE_EMULATOR_HOST, read by the
 * constructor only, overrides `host` and makes it send the emulator's admin token, never Google
 * credentials, so this can never reach a real project.
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

/**
 * Test stacks on the run's shared emulators. Suites that need only the default environment
 * share one pair of functions (sharedTestStack) and keep apart through run-scoped tenants and
 * ids; a suite that needs its own environment, or kills and counts instances, starts its own
 * pair on free ports, with its own topic and push subscription (startTestStack).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { LOOPBACK, freePort } from "../../../scripts/local/lib/emulators";
import {
  type FunctionTarget,
  type Stack,
  type StackOptions,
  functionInstance,
  startStack,
} from "../../../scripts/local/lib/stack";
import { RUN_ID, atRunEnd, sharedEmulators } from "./hooks";

export { pollUntil } from "../../../scripts/local/lib/emulators";
export { RUN_ID, sharedEmulators } from "./hooks";

export type TestStack = Stack;

/** One project for the whole run: ids no other run uses, under the `demo-` prefix. */
export const TEST_PROJECT = `demo-rdp-${RUN_ID}`;

const suffixesInUse = new Set<string>();

/**
 * Starts the functions for one suite. `suffix` names the suite's topic (`rdp-<runid>-<suffix>`)
 * and log directory (`.run/integration-<runid>/<suffix>/`); `env` goes to both functions, over
 * the stack's own variables (AUTH_MODE, FAULT_*, SIMULATED_WORK_MS_PER_CHAR, ...).
 */
export async function startTestStack(
  suffix: string,
  env: Readonly<Record<string, string>> = {},
  options: Partial<Omit<StackOptions, "name" | "project" | "topic" | "emulators" | "env">> = {},
): Promise<TestStack> {
  if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(suffix)) {
    throw new Error(`Test stack suffix "${suffix}" must be 1-40 of a-z, 0-9 and '-'`);
  }
  if (suffixesInUse.has(suffix)) {
    throw new Error(
      `Test stack suffix "${suffix}" is already used in this run; topics would clash`,
    );
  }
  suffixesInUse.add(suffix);
  const stack = await startStack({
    ...options,
    name: `integration-${RUN_ID}/${suffix}`,
    project: TEST_PROJECT,
    topic: `rdp-${RUN_ID}-${suffix}`,
    emulators: sharedEmulators().emulators,
    env,
  });
  atRunEnd(() => stack.stop());
  return stack;
}

let shared: Promise<TestStack> | undefined;

/**
 * The run's one stack with the default environment (AUTH_MODE=api_key, deployed limits),
 * started by the first suite that asks and stopped after the last suite: suites must not stop
 * it, kill its instances or count its log lines without filtering them by their own ids.
 */
export async function sharedTestStack(): Promise<TestStack> {
  // Success lines on: the pipeline suite reads ingest's accepted lines to check what it wrote.
  shared ??= startTestStack("shared", { LOG_RECORD_SUCCESS: "true" });
  const stack = await shared;
  // A chaos scenario may have restarted the Pub/Sub emulator, which forgets every topic.
  await stack.ensureTopology();
  return stack;
}

/** The structured lines of a function's log; the framework's own lines are not JSON. */
export async function logEntries(file: string): Promise<Record<string, unknown>[]> {
  return (await readFile(file, "utf8")).split("\n").flatMap((line) => {
    try {
      const entry: unknown = JSON.parse(line);
      return typeof entry === "object" && entry !== null ? [entry as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Another instance of one of the stack's functions, on its own port, with `env` over the
 * stack's: as Cloud Run runs several instances, or an old and a new revision side by side.
 * Stopped after the last suite; its log is `<name>.log` beside the stack's.
 */
export async function startExtraInstance(
  stack: TestStack,
  target: FunctionTarget,
  name: string,
  env: Readonly<Record<string, string>> = {},
): Promise<{ readonly url: string; readonly logFile: string; stop(): Promise<void> }> {
  const port = await freePort(LOOPBACK);
  const logFile = path.join(stack.logs.dir, `${name}.log`);
  const instance = functionInstance({
    target,
    port,
    source: stack.functionsSource,
    env: { ...stack.env, ...env },
    logFile,
  });
  atRunEnd(() => instance.stop());
  await instance.start();
  return { url: `http://${LOOPBACK}:${port}/`, logFile, stop: () => instance.stop() };
}

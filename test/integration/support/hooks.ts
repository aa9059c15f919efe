/**
 * Mocha root hooks of the integration run (`mocha --require test/integration/support/hooks.ts`):
 * one Pub/Sub and one Firestore emulator for the whole run, on free ports, shared by every
 * suite. Suites keep apart through run-scoped projects and topics (see ./stack), so a run can
 * share the machine with another run or a developer's `npm start`.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { type Emulators, REPO_ROOT, startEmulators } from "../../../scripts/local/lib/emulators";

/** Names every project, topic and log directory of this run. */
export const RUN_ID = randomBytes(4).toString("hex");
export const RUN_LOG_DIR = path.join(REPO_ROOT, ".run", `integration-${RUN_ID}`);

let shared: Emulators | undefined;
const runEndCleanups: Array<() => Promise<void>> = [];

export interface SharedEmulators {
  /** The values for PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST, which are also set. */
  readonly pubsubHost: string;
  readonly firestoreHost: string;
  /** For chaos tests: each emulator can be stopped and restarted on its port. */
  readonly emulators: Emulators;
}

export function sharedEmulators(): SharedEmulators {
  if (shared === undefined) {
    throw new Error(
      "The shared emulators are not running: run mocha with " +
        "--require test/integration/support/hooks.ts (as `npm run test:integration` does)",
    );
  }
  return {
    pubsubHost: shared.pubsub.hostPort,
    firestoreHost: shared.firestore.hostPort,
    emulators: shared,
  };
}

/** Runs `cleanup` after the last suite; for stacks a failing suite never got to stop. */
export function atRunEnd(cleanup: () => Promise<void>): void {
  runEndCleanups.push(cleanup);
}

export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    // Cold JVMs on a busy two-core CI machine; a normal start takes a few seconds.
    this.timeout(180_000);
    const startedAt = Date.now();
    shared = await startEmulators({ logDir: RUN_LOG_DIR, readyTimeoutMs: 150_000 });
    // Tests build their own clients from these, as the functions do.
    process.env.PUBSUB_EMULATOR_HOST = shared.pubsub.hostPort;
    process.env.FIRESTORE_EMULATOR_HOST = shared.firestore.hostPort;
    process.env.METADATA_SERVER_DETECTION = "none";
    const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
    console.log(
      `  emulators ready in ${seconds} s: pubsub ${shared.pubsub.hostPort}, ` +
        `firestore ${shared.firestore.hostPort}; logs in ${path.relative(REPO_ROOT, RUN_LOG_DIR)}/`,
    );
  },

  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    const cleanups = runEndCleanups.splice(0);
    await Promise.allSettled(cleanups.map((cleanup) => cleanup()));
    await shared?.stop();
    shared = undefined;
  },
};

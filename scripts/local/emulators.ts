/**
 * `npm run emulators`: plain `firebase emulators:start` (functions, Firestore, Pub/Sub, with the
 * ports of firebase.json), plus the demo tenant's key and a ready curl once it is up. The npm
 * script builds first, and the build places the emulators where firebase-tools finds them, so
 * `npx firebase emulators:start` works offline as well.
 *
 * The suite acks every Pub/Sub event, even one whose function threw, so failed events are never
 * redelivered here; `npm start` runs the production-faithful stack that does redeliver.
 */
import fs from "node:fs";
import path from "node:path";
import { readyBanner, seedDemoTenant } from "./lib/demo-tenant";
import { LOOPBACK, ManagedProcess, REPO_ROOT, childEnv, waitUntilReady } from "./lib/emulators";
import { installEmulators } from "./lib/install-emulators";
import { resolveFunctionsSource } from "./lib/stack";

const PROJECT = "demo-rdp";
/** The JVMs and the functions runtime start cold; the suite takes 10-20 s on two cores. */
const READY_TIMEOUT_MS = 180_000;

type Address = { host?: string; port: number };
const { emulators } = JSON.parse(
  fs.readFileSync(path.join(REPO_ROOT, "firebase.json"), "utf8"),
) as {
  emulators: { functions: Address; firestore: Address };
};
const hostPort = ({ host = LOOPBACK, port }: Address) => `${host}:${port}`;

/** The ingest trigger's region once the functions emulator has loaded our code. */
function ingestRegion(backendsJson: string): string | undefined {
  type Backends = {
    backends?: Array<{ functionTriggers?: Array<{ entryPoint?: string; region?: string }> }>;
  };
  try {
    const { backends = [] } = JSON.parse(backendsJson) as Backends;
    const triggers = backends.flatMap((backend) => backend.functionTriggers ?? []);
    return triggers.find((trigger) => trigger.entryPoint === "ingest")?.region;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  resolveFunctionsSource();
  installEmulators(); // the build did it, and only warned if something is missing
  const firebase = new ManagedProcess({
    name: "firebase emulators:start",
    command: path.join(REPO_ROOT, "node_modules/.bin/firebase"),
    args: ["emulators:start", "--project", PROJECT],
    env: childEnv({ METADATA_SERVER_DETECTION: "none" }, true),
    // Its SIGTERM handler stops the emulator JVMs, which run in process groups of their own.
    stopGraceMs: 30_000,
  });
  firebase.onExit((code, requested) => {
    if (requested) return;
    console.error(`firebase emulators:start exited with code ${code}`);
    process.exit(code || 1);
  });
  const shutdown = (code: number) => void firebase.stop().finally(() => process.exit(code));
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.on(signal, () => shutdown(0));
  await firebase.start();
  await announce(firebase).catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    shutdown(1);
  });
}

/** Seeds the demo tenant once Firestore answers, and prints the banner once ingest is loaded. */
async function announce(firebase: ManagedProcess): Promise<void> {
  const firestoreHost = hostPort(emulators.firestore);
  await waitUntilReady({
    url: `http://${firestoreHost}/`,
    ready: (status, body) => status === 200 && body.trim() === "Ok",
    timeoutMs: READY_TIMEOUT_MS,
    process: firebase,
  });
  const tenant = await seedDemoTenant({ projectId: PROJECT, firestoreHost });
  let region: string | undefined;
  await waitUntilReady({
    url: `http://${hostPort(emulators.functions)}/backends`,
    ready: (_, body) => (region = ingestRegion(body)) !== undefined,
    timeoutMs: READY_TIMEOUT_MS,
    process: firebase,
  });
  const ingestUrl = `http://${hostPort(emulators.functions)}/${PROJECT}/${region}/ingest`;
  const rows = [
    ["Ingest", ingestUrl],
    ["Firestore", `FIRESTORE_EMULATOR_HOST=${firestoreHost}`],
    ["Note", "this suite never redelivers a failed event; `npm start` does"],
  ] as const;
  const title = `Robust Data Processor: Firebase emulator suite ready (project ${PROJECT})`;
  console.log(readyBanner(title, rows, ingestUrl, tenant));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

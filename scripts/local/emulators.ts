/**
 * `npm run emulators`: plain `firebase emulators:start` (functions, Firestore, Pub/Sub on the ports
 * of firebase.json; offline, as the build placed the emulators), then the demo tenant's key and a
 * ready curl. The suite acks every Pub/Sub event, even a failed one: `npm start` redelivers.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import firebaseJson from "../../firebase.json";
import { readyBanner, seedDemoTenant } from "./lib/demo-tenant";
import { REPO_ROOT, childEnv, onFirstSignal, pollUntil } from "./lib/emulators";
import { installEmulators } from "./lib/install-emulators";
import { resolveFunctionsSource } from "./lib/stack";

const PROJECT = "demo-rdp";
const { functions, firestore } = firebaseJson.emulators;
const functionsHost = `${functions.host}:${functions.port}`;
const firestoreHost = `${firestore.host}:${firestore.port}`;

resolveFunctionsSource();
installEmulators(); // the build only warned if something is missing; this stops with the reason
// In a process group of its own, so that a Ctrl-C reaches it once, from us: firebase-tools takes
// a second one as "stop now", leaving the emulator JVMs behind.
const firebase = spawn(
  path.join(REPO_ROOT, "node_modules/.bin/firebase"),
  ["emulators:start", "--project", PROJECT],
  {
    env: childEnv({ METADATA_SERVER_DETECTION: "none" }, true),
    stdio: ["ignore", "inherit", "inherit"],
    detached: true,
  },
);
onFirstSignal((signal) => firebase.kill(signal));
let failed = false;
firebase.on("exit", (code) => process.exit(failed ? 1 : (code ?? 1)));

announce().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  failed = true;
  firebase.kill("SIGTERM");
});

/** Seeds the demo tenant and prints the banner once the functions emulator has loaded ingest. */
async function announce(): Promise<void> {
  // Loaded once every other emulator listens.
  const region = await pollUntil(ingestRegion, {
    timeoutMs: 180_000, // cold JVMs and functions runtime: 10-20 s on two cores
    what: `the ingest function on ${functionsHost}`,
  });
  const tenant = await seedDemoTenant(PROJECT, firestoreHost);
  const ingestUrl = `http://${functionsHost}/${PROJECT}/${region}/ingest`;
  const rows = [
    ["Ingest", ingestUrl],
    ["Firestore", `FIRESTORE_EMULATOR_HOST=${firestoreHost}`],
    ["Note", "this suite never redelivers a failed event; `npm start` does"],
  ] as const;
  const title = `Robust Data Processor: Firebase emulator suite ready (project ${PROJECT})`;
  console.log(readyBanner(title, rows, ingestUrl, tenant));
}

/** The ingest trigger's region, from the functions emulator's list of what it loaded. */
async function ingestRegion(): Promise<string | undefined> {
  type Trigger = { entryPoint?: string; region?: string };
  const response = await fetch(`http://${functionsHost}/backends`).catch(() => undefined);
  const listing = (await response?.json().catch(() => undefined)) as
    { backends?: Array<{ functionTriggers?: Trigger[] }> } | undefined;
  const triggers = listing?.backends?.flatMap((backend) => backend.functionTriggers ?? []);
  return triggers?.find((trigger) => trigger.entryPoint === "ingest")?.region;
}

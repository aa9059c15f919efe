/**
 * `npm run emulators`: the Firebase emulator suite (functions, Firestore, Pub/Sub) offline, with
 * the ports and project of firebase.json and .firebaserc. The npm script builds first.
 *
 * The suite acks every Pub/Sub event, even one whose function threw, so failed events are never
 * redelivered here; `npm start` runs the production-faithful stack that does redeliver.
 */
import fs from "node:fs";
import path from "node:path";
import { seedDemoTenant } from "./lib/demo-tenant";
import {
  LOOPBACK,
  ManagedProcess,
  REPO_ROOT,
  childEnv,
  prepareFirebaseEmulatorBinaries,
  waitUntilReady,
} from "./lib/emulators";
import { demoCurl, describeDemoKey, resolveFunctionsSource } from "./lib/stack";

const PROJECT = "demo-rdp";
const FIREBASE_BIN = path.join(REPO_ROOT, "node_modules", ".bin", "firebase");
/** The JVMs and the functions runtime start cold; the suite takes 10-20 s on two cores. */
const READY_TIMEOUT_MS = 180_000;

interface EmulatorAddress {
  readonly host?: string;
  readonly port: number;
}

interface FirebaseJson {
  readonly emulators: { readonly functions: EmulatorAddress; readonly firestore: EmulatorAddress };
}

interface BackendInfo {
  readonly functionTriggers?: ReadonlyArray<{ readonly entryPoint?: string; region?: string }>;
}

function hostPort(address: EmulatorAddress): string {
  return `${address.host ?? LOOPBACK}:${address.port}`;
}

/** The ingest trigger's region once the functions emulator has loaded our code, else undefined. */
function ingestRegion(body: string): string | undefined {
  try {
    const { backends } = JSON.parse(body) as { backends?: BackendInfo[] };
    const triggers = (backends ?? []).flatMap((backend) => backend.functionTriggers ?? []);
    return triggers.find((trigger) => trigger.entryPoint === "ingest")?.region;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  resolveFunctionsSource(path.join(REPO_ROOT, "functions", "lib"));
  const firebase = firebaseProcess();
  let shuttingDown = false;
  const shutdown = (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    // Gracefully: firebase starts its emulator JVMs in process groups of their own, which
    // killing firebase would leave behind.
    void firebase.stop().finally(() => process.exit(code));
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => shutdown(0));
  }
  try {
    await start(firebase);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    shutdown(1);
  }
}

function firebaseProcess(): ManagedProcess {
  const firebase = new ManagedProcess({
    name: "firebase emulators",
    command: FIREBASE_BIN,
    args: ["emulators:start", "--project", PROJECT],
    env: childEnv(
      { ...prepareFirebaseEmulatorBinaries(), METADATA_SERVER_DETECTION: "none" },
      true,
    ),
    // Its own SIGTERM handler stops the emulators it started; a second signal would not wait.
    stopSignal: "SIGTERM",
    stopGraceMs: 30_000,
  });
  firebase.onExit((code, signal, requested) => {
    if (requested) return;
    console.error(`firebase emulators:start exited ${signal ?? `with code ${code}`}`);
    process.exit(code === 0 || code === null ? 1 : code);
  });
  return firebase;
}

async function start(firebase: ManagedProcess): Promise<void> {
  const config = JSON.parse(
    fs.readFileSync(path.join(REPO_ROOT, "firebase.json"), "utf8"),
  ) as FirebaseJson;
  const functionsHost = hostPort(config.emulators.functions);
  const firestoreHost = hostPort(config.emulators.firestore);

  firebase.start();
  await waitUntilReady({
    url: `http://${firestoreHost}/`,
    ready: (status, body) => status === 200 && body.trim() === "Ok",
    timeoutMs: READY_TIMEOUT_MS,
    process: firebase,
  });
  const tenant = await seedDemoTenant({ projectId: PROJECT, firestoreHost });

  const backendsUrl = `http://${functionsHost}/backends`;
  await waitUntilReady({
    url: backendsUrl,
    ready: (status, body) => status === 200 && ingestRegion(body) !== undefined,
    timeoutMs: READY_TIMEOUT_MS,
    process: firebase,
  });
  const region = ingestRegion(await (await fetch(backendsUrl)).text());
  const ingestUrl = `http://${functionsHost}/${PROJECT}/${region}/ingest`;

  console.log(
    [
      "",
      `Robust Data Processor: Firebase emulator suite ready (project ${PROJECT})`,
      `  Ingest       ${ingestUrl}`,
      `  Firestore    FIRESTORE_EMULATOR_HOST=${firestoreHost}`,
      `  Tenant       ${tenant.tenantId}`,
      `  API key      ${describeDemoKey(tenant, process.env.AUTH_MODE)}`,
      "  Note         this suite never redelivers a failed event; `npm start` does",
      "",
      "Try:",
      `  ${demoCurl(ingestUrl, tenant)}`,
      "",
      "Ctrl-C stops everything.",
    ].join("\n"),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

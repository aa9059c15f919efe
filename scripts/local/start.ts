/**
 * `npm start`: the production-faithful local stack in the foreground, until Ctrl-C; the npm
 * script builds the functions first. Ports: PUBSUB_PORT (8085), FIRESTORE_PORT (8080),
 * INGEST_PORT (8081), PROCESS_PORT (8082). The functions inherit this environment, so
 * `AUTH_MODE=disabled npm start` works as expected.
 */
import path from "node:path";
import { readyBanner, seedDemoTenant } from "./lib/demo-tenant";
import { REPO_ROOT, onFirstSignal, stopAll } from "./lib/emulators";
import { startStack } from "./lib/stack";

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim() || String(fallback);
  if (/^\d{1,5}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 65_535) return Number(raw);
  throw new Error(`${name} must be a port number (1-65535), got "${raw}"`);
}

async function main(): Promise<void> {
  onFirstSignal((signal) => {
    console.log(`\n${signal}: stopping the functions and emulators...`);
    void stopAll().finally(() => process.exit(0));
  });
  const startedAt = Date.now();
  console.log("Starting the Pub/Sub and Firestore emulators and both functions...");
  const stack = await startStack({
    name: "start",
    project: "demo-rdp",
    topic: process.env.INGEST_TOPIC?.trim() || "rdp-ingest",
    emulatorOptions: {
      pubsubPort: portFromEnv("PUBSUB_PORT", 8085),
      firestorePort: portFromEnv("FIRESTORE_PORT", 8080),
    },
    ingestPort: portFromEnv("INGEST_PORT", 8081),
    processPort: portFromEnv("PROCESS_PORT", 8082),
    inheritEnv: true,
    freshLogs: true,
  });
  const { project, firestoreHost, ingestUrl } = stack;
  const tenant = await seedDemoTenant(project, firestoreHost);
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  const logs = `${path.relative(REPO_ROOT, stack.logs.dir)}/`;
  const rows = [
    ["Ingest", `${ingestUrl}  (also ${ingestUrl}ingest)`],
    [
      "Worker",
      `${stack.processUrl}\npush endpoint of subscription ${stack.subscription} on topic ${stack.topic}`,
    ],
    ["Firestore", `FIRESTORE_EMULATOR_HOST=${firestoreHost}`],
    ["Pub/Sub", `PUBSUB_EMULATOR_HOST=${stack.pubsubHost}`],
    ["Logs", `${logs} (ingest.log, process.log, pubsub.log, firestore.log)`],
  ] as const;
  const title = `Robust Data Processor: local stack ready in ${seconds} s (project ${project})`;
  console.log(readyBanner(title, rows, `${ingestUrl}ingest`, tenant));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

/**
 * `npm start`: the production-faithful local stack in the foreground, until Ctrl-C.
 * The npm script builds the functions first; this starts what was built.
 *
 * Ports: PUBSUB_PORT (8085), FIRESTORE_PORT (8080), INGEST_PORT (8081), PROCESS_PORT (8082).
 * The functions inherit this environment, so `AUTH_MODE=disabled npm start` works as expected.
 */
import path from "node:path";
import { readyBanner, seedDemoTenant } from "./lib/demo-tenant";
import { REPO_ROOT } from "./lib/emulators";
import { type Stack, startStack } from "./lib/stack";

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim() || String(fallback);
  if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65_535) {
    throw new Error(`${name} must be a port number (1-65535), got "${raw}"`);
  }
  return Number(raw);
}

async function main(): Promise<void> {
  const running: { stack?: Stack } = {};
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the functions and emulators...`);
    // During start-up there is no stack yet: exiting lets the exit hook reap the children.
    void Promise.resolve(running.stack?.stop()).finally(() => process.exit(0));
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, shutdown);
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
  running.stack = stack;
  const tenant = await seedDemoTenant({
    projectId: stack.project,
    firestoreHost: stack.firestoreHost,
  });
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  const rows = [
    ["Ingest", `${stack.ingestUrl}  (also ${stack.ingestUrl}ingest)`],
    [
      "Worker",
      `${stack.processUrl}\npush endpoint of subscription ${stack.subscription} on topic ${stack.topic}`,
    ],
    ["Firestore", `FIRESTORE_EMULATOR_HOST=${stack.firestoreHost}`],
    ["Pub/Sub", `PUBSUB_EMULATOR_HOST=${stack.pubsubHost}`],
    [
      "Logs",
      `${path.relative(REPO_ROOT, stack.logs.dir)}/ (ingest.log, process.log, pubsub.log, firestore.log)`,
    ],
  ] as const;
  const title = `Robust Data Processor: local stack ready in ${seconds} s (project ${stack.project})`;
  console.log(readyBanner(title, rows, `${stack.ingestUrl}ingest`, tenant));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

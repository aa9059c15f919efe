/**
 * `npm start`: the production-faithful local stack in the foreground, until Ctrl-C.
 * The npm script builds the functions first; this starts what was built.
 *
 * Ports: PUBSUB_PORT (8085), FIRESTORE_PORT (8080), INGEST_PORT (8081), PROCESS_PORT (8082).
 * The functions inherit this environment, so `AUTH_MODE=disabled npm start` works as expected.
 */
import path from "node:path";
import { DEMO_KEY_FILE, seedDemoTenant } from "./lib/demo-tenant";
import { REPO_ROOT } from "./lib/emulators";
import { type Stack, demoCurl, describeDemoKey, startStack } from "./lib/stack";

const PROJECT = "demo-rdp";

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port < 1 || port > 65_535) {
    throw new Error(`${name} must be a port number (1-65535), got "${raw}"`);
  }
  return port;
}

async function main(): Promise<void> {
  // Filled in once started; a signal during start-up exits, and the exit hook reaps children.
  const running: { stack?: Stack } = {};
  let shuttingDown = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (shuttingDown) return;
    shuttingDown = true;
    console.log(`\n${signal}: stopping the functions and emulators...`);
    try {
      await running.stack?.stop();
    } finally {
      process.exit(0);
    }
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => void shutdown(signal));
  }

  const startedAt = Date.now();
  console.log("Starting the Pub/Sub and Firestore emulators and both functions...");
  const stack = await startStack({
    name: "start",
    project: PROJECT,
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
  const tenant = await seedDemoTenant({ projectId: PROJECT, firestoreHost: stack.firestoreHost });
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  const logs = path.relative(REPO_ROOT, stack.logs.dir);

  console.log(
    [
      "",
      `Robust Data Processor: local stack ready in ${seconds} s (project ${stack.project})`,
      `  Ingest       ${stack.ingestUrl}  (also ${stack.ingestUrl}ingest)`,
      `  Worker       ${stack.processUrl}`,
      `               push endpoint of subscription ${stack.subscription} on topic ${stack.topic}`,
      `  Firestore    FIRESTORE_EMULATOR_HOST=${stack.firestoreHost}`,
      `  Pub/Sub      PUBSUB_EMULATOR_HOST=${stack.pubsubHost}`,
      `  Tenant       ${tenant.tenantId}`,
      `  API key      ${describeDemoKey(tenant, process.env.AUTH_MODE)}`,
      `               also in ${path.relative(REPO_ROOT, DEMO_KEY_FILE)}: export KEY=$(cat ${path.relative(REPO_ROOT, DEMO_KEY_FILE)})`,
      `  Logs         ${logs}/ (ingest.log, process.log, pubsub.log, firestore.log)`,
      "",
      "Try:",
      `  ${demoCurl(`${stack.ingestUrl}ingest`, tenant)}`,
      "",
      "Ctrl-C stops everything.",
    ].join("\n"),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

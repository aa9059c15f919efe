/** The ingest HTTP function: trigger options here, behaviour in lib/ingest-handler. */
import { onRequest } from "firebase-functions/v2/https";
import { installBodyGate } from "./lib/body-gate";
import { startDiagnostics } from "./lib/diagnostics";
import { guardFrameworkErrorLogs } from "./lib/framework-log-guard";
import { handleIngest } from "./lib/ingest-handler";
import { config, ingestBodyGate, ingestDependencies, logger } from "./lib/dependencies";

guardFrameworkErrorLogs(logger);
if (process.env.FUNCTION_TARGET === "ingest")
  startDiagnostics(config.diagnosticsIntervalMs, logger);

// Every function of this package loads this module; only an instance serving ingest reads
// bodies through the gate. Cloud Run and the local stacks set FUNCTION_TARGET. The Firebase
// emulator (`npm run emulators`, a development convenience) serves its own health checks and
// paths on the same server, so it keeps its own body parser (32 MB limit).
if (process.env.FUNCTION_TARGET === "ingest" && process.env.FUNCTIONS_EMULATOR !== "true") {
  installBodyGate(ingestBodyGate());
}

export const ingest = onRequest(
  {
    // Ingest waits on Pub/Sub acks, not CPU: one instance serves many requests at once.
    concurrency: 80,
    cpu: 1,
    memory: "256MiB",
    timeoutSeconds: 60,
    invoker: "public",
    ingressSettings: "ALLOW_ALL",
    minInstances: 0,
    // Target 50,000 records/min = 833 requests/s. Measured: one ingest process took 833/s at
    // 0.63 of a core (docs/PERFORMANCE.md), 1,320/s per vCPU; planned at half that, 660/s per
    // instance, since real Pub/Sub (TLS, network) costs more CPU than the emulator. Headroom 3x
    // (bursts, clients retrying after 429/503, replays): ceil(833 * 3 / 660) = 4.
    maxInstances: 4,
  },
  async (req, res) => {
    const response = await handleIngest(
      {
        method: req.method,
        path: req.path,
        headers: req.headers,
        // Set by the gate (deployed, and in the local stacks) or by the framework's parser.
        rawBody: req.rawBody,
      },
      ingestDependencies(),
    );
    const body = Buffer.isBuffer(response.body) ? response.body : JSON.stringify(response.body);
    res.status(response.status).set(response.headers).send(body);
  },
);

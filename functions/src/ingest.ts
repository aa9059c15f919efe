/** The ingest HTTP function: trigger options here, behaviour in lib/ingest-handler. */
import { onRequest } from "firebase-functions/v2/https";
import { guardFrameworkErrorLogs } from "./lib/framework-log-guard";
import { handleIngest } from "./lib/ingest-handler";
import { ingestDependencies, logger } from "./lib/runtime";

guardFrameworkErrorLogs(logger);

export const ingest = onRequest(
  // Ingest waits on Pub/Sub acks, not CPU: one instance serves many requests at once.
  { concurrency: 80, cpu: 1, memory: "256MiB", timeoutSeconds: 60, invoker: "public" },
  async (req, res) => {
    const response = await handleIngest(
      {
        method: req.method,
        path: req.path,
        headers: req.headers,
        rawBody: req.rawBody,
      },
      ingestDependencies(),
    );
    res.status(response.status).set(response.headers).send(JSON.stringify(response.body));
  },
);

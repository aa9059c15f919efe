/** The process CloudEvent function: trigger options here, behaviour in lib/process-handler. */
import { onMessagePublished } from "firebase-functions/v2/pubsub";
import { startDiagnostics } from "./lib/diagnostics";
import { processDelivery } from "./lib/process-handler";
import { config, logger, processDependencies } from "./lib/runtime";

if (process.env.FUNCTION_TARGET === "process")
  startDiagnostics(config.diagnosticsIntervalMs, logger);

const processFunction = onMessagePublished(
  {
    topic: config.topic,
    retry: true,
    concurrency: 16,
    cpu: 1,
    memory: "256MiB",
    timeoutSeconds: config.processTimeoutSeconds,
  },
  async (event) => {
    const { message } = event.data;
    await processDelivery(
      {
        messageId: message.messageId,
        publishTime: message.publishTime,
        dataBase64: message.data,
        // Pub/Sub adds it beside the message where a dead-letter policy is set.
        deliveryAttempt: (event.data as { deliveryAttempt?: number }).deliveryAttempt,
      },
      processDependencies(),
    );
  },
);

// Exported under the name the trigger is deployed as; a local `process` would shadow Node's.
export { processFunction as process };

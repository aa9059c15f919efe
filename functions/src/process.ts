/** The process CloudEvent function: trigger options here, behaviour in lib/process-handler. */
import { onMessagePublished } from "firebase-functions/v2/pubsub";
import { startDiagnostics } from "./lib/diagnostics";
import { processDelivery } from "./lib/process-handler";
import { config, logger, processDependencies } from "./lib/dependencies";

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
    // Only Pub/Sub (through Eventarc) reaches it.
    ingressSettings: "ALLOW_INTERNAL_ONLY",
    minInstances: 0,
    // Target 833 records/s. Measured: one worker stored 831/s at 0.68 of a core (single-record
    // messages; docs/PERFORMANCE.md). Planned per instance: 16 deliveries in flight at 80 ms
    // each = 200/s, since real Firestore commits slower than the emulator (not measured here).
    // Headroom 3x, so a backlog drains at 2x the target while the target load goes on (a
    // 10-minute backlog in 5 minutes, well inside the ~40 minutes of redelivery before a record
    // is dead-lettered): ceil(833 * 3 / 200) = 13. Batched messages need fewer deliveries.
    maxInstances: 13,
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

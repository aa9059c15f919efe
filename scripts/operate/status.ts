/**
 * `npm run status`: per tenant, processed records and failures by reason (count() aggregations,
 * which read no document); the dead_letters documents; the dead-letter subscription's backlog.
 */
import type { Firestore } from "@google-cloud/firestore";
import type { PubSub } from "@google-cloud/pubsub";
import { DEAD_LETTERS, FAILED_LOGS, PROCESSED_LOGS, TENANTS } from "../../functions/src/lib/paths";
import {
  TARGET_OPTIONS,
  TARGET_USAGE,
  checkTenantId,
  connect,
  countOf,
  runCli,
  tenantIds,
} from "./lib/operator-cli";
import { DeadLetterQueue, FAILURE_REASONS } from "./lib/replay";

const USAGE = `Usage: npm run status -- [options]

  --tenant T                     only this tenant (repeatable; default: every tenant)
  --json                         print only the JSON line
${TARGET_USAGE}`;

/** Failure entries by reason; "other" for a reason this version does not know. */
async function tenantStatus(firestore: Firestore, tenantId: string) {
  const failedLogs = firestore.collection(`${TENANTS}/${tenantId}/${FAILED_LOGS}`);
  const [processed, allFailed, ...byReason] = await Promise.all([
    countOf(firestore.collection(`${TENANTS}/${tenantId}/${PROCESSED_LOGS}`)),
    countOf(failedLogs),
    ...FAILURE_REASONS.map((reason) => countOf(failedLogs.where("reason", "==", reason))),
  ]);
  const failed: Record<string, number> = {};
  FAILURE_REASONS.forEach((reason, index) => {
    if (byReason[index]) failed[reason] = byReason[index];
  });
  const other = allFailed - byReason.reduce((sum, n) => sum + n, 0);
  if (other > 0) failed.other = other;
  return { tenant_id: tenantId, processed, failed };
}

/**
 * The dead-letter subscription's backlog, and how it was measured (or why it could not be). On the
 * emulator (no metrics), by pulling every message without acking and handing them back. On a
 * project, from Cloud Monitoring's num_undelivered_messages (sampled each minute, shown up to a few
 * minutes late): pulling a large production backlog would be slow and costly.
 */
async function deadLetterBacklog(
  pubsub: PubSub,
  subscription: string,
  emulated: boolean,
): Promise<{ messages: number | null; how: string }> {
  if (emulated) {
    const queue = await DeadLetterQueue.open(pubsub, subscription).catch(() => undefined);
    if (queue === undefined) return { messages: null, how: `no subscription ${subscription}` };
    let messages = 0;
    try {
      for (let batch; (batch = await queue.pull(1000)).length > 0;) messages += batch.length;
    } finally {
      await queue.close();
    }
    return { messages, how: "counted by pulling without acking (emulator)" };
  }
  const project = await pubsub.getClientConfig().then((config) => config.projectId);
  const now = Date.now();
  const params = new URLSearchParams({
    filter:
      'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" AND ' +
      `resource.labels.subscription_id="${subscription}"`,
    "interval.startTime": new Date(now - 10 * 60_000).toISOString(),
    "interval.endTime": new Date(now).toISOString(),
  });
  const url = `https://monitoring.googleapis.com/v3/projects/${project}/timeSeries?${params}`;
  try {
    const response = await pubsub.auth.request<{
      timeSeries?: { points?: { value?: { int64Value?: string } }[] }[];
    }>({ url });
    const latest = response.data.timeSeries?.[0]?.points?.[0]?.value?.int64Value;
    if (latest === undefined) {
      return { messages: null, how: "Cloud Monitoring has no sample of the last 10 minutes" };
    }
    return {
      messages: Number(latest),
      how: "Cloud Monitoring num_undelivered_messages, latest sample",
    };
  } catch (error) {
    return { messages: null, how: `Cloud Monitoring unreachable: ${(error as Error).message}` };
  }
}

const OPTIONS = {
  ...TARGET_OPTIONS,
  tenant: { type: "string", multiple: true },
  json: { type: "boolean" },
} as const;

runCli("status", USAGE, { options: OPTIONS }, async ({ values }) => {
  const named = values.tenant?.map(checkTenantId);
  const target = connect(values);
  const subscription = target.deadLetterSubscription;
  try {
    const tenants = named ?? (await tenantIds(target.firestore));
    const [rows, deadLetterDocuments, backlog] = await Promise.all([
      Promise.all(tenants.map((tenant) => tenantStatus(target.firestore, tenant))),
      countOf(target.firestore.collection(DEAD_LETTERS)),
      deadLetterBacklog(target.pubsub, subscription, target.emulated),
    ]);
    if (!values.json) {
      const columns = ["tenant", "processed", ...FAILURE_REASONS, "other"];
      const table = rows.map((row) => [
        row.tenant_id,
        String(row.processed),
        ...columns.slice(2).map((reason) => String(row.failed[reason] ?? 0)),
      ]);
      const widths = columns.map((name, i) =>
        Math.max(name.length, ...table.map((cells) => (cells[i] ?? "").length)),
      );
      const line = (cells: readonly string[]) =>
        cells
          .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
          .join("  ");
      console.log(target.description);
      console.log(line(columns));
      table.forEach((cells) => console.log(line(cells)));
      console.log(`dead_letters documents (no tenant named): ${deadLetterDocuments}`);
      console.log(
        `dead-letter subscription ${subscription}: ${backlog.messages ?? "unknown"} messages (${backlog.how})`,
      );
    }
    console.log(
      JSON.stringify({
        tenants: rows,
        dead_letter_documents: deadLetterDocuments,
        dead_letter_subscription: {
          name: subscription,
          backlog: backlog.messages,
          how: backlog.how,
        },
      }),
    );
    return 0;
  } finally {
    await target.close();
  }
});

/**
 * What `npm run status` reports: per tenant, its processed records and its failures by reason,
 * and the backlog of the dead-letter subscription.
 */
import type { Firestore, Query } from "@google-cloud/firestore";
import type { PubSub } from "@google-cloud/pubsub";
import { FAILED_LOGS, PROCESSED_LOGS, TENANTS } from "../../../functions/src/lib/paths";
import type { FailureReason } from "../../../functions/src/lib/store";
import { DeadLetterQueue } from "./replay";

// A record keyed by the union, so the compiler notices a reason added to the worker.
const REASONS: Record<FailureReason, true> = {
  invalid_message: true,
  invalid_record: true,
  expired: true,
  log_id_conflict: true,
  rejected_by_store: true,
  retries_exhausted: true,
};
export const FAILURE_REASONS: readonly string[] = Object.keys(REASONS);

export interface TenantStatus {
  readonly tenant_id: string;
  readonly processed: number;
  /** Failure entries by reason; "other" for a reason this version does not know. */
  readonly failed: Readonly<Record<string, number>>;
}

/** A count() aggregation: it reads no document, and costs one read per 1,000 counted. */
export const countOf = async (query: Query) => (await query.count().get()).data().count;

export async function tenantStatus(firestore: Firestore, tenantId: string): Promise<TenantStatus> {
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

export interface Backlog {
  readonly messages: number | null;
  /** How it was measured, or why it could not be. */
  readonly how: string;
}

/**
 * The dead-letter subscription's backlog. On the emulator (no metrics), by pulling every
 * message without acking and handing them back. On a project, from Cloud Monitoring's
 * num_undelivered_messages (sampled each minute, shown up to a few minutes late), through the
 * Pub/Sub client's own credentials: pulling a large production backlog would be slow and costly.
 */
export async function deadLetterBacklog(
  pubsub: PubSub,
  subscription: string,
  emulated: boolean,
): Promise<Backlog> {
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
  const filter =
    'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" AND ' +
    `resource.labels.subscription_id="${subscription}"`;
  const params = new URLSearchParams({
    filter,
    "interval.startTime": new Date(now - 10 * 60_000).toISOString(),
    "interval.endTime": new Date(now).toISOString(),
  });
  const url = `https://monitoring.googleapis.com/v3/projects/${project}/timeSeries?${params}`;
  try {
    const response = await pubsub.auth.request<{
      timeSeries?: { points?: { value?: { int64Value?: string } }[] }[];
    }>({ url });
    const latest = response.data.timeSeries?.[0]?.points?.[0]?.value?.int64Value;
    return latest === undefined
      ? { messages: null, how: "Cloud Monitoring has no sample of the last 10 minutes" }
      : {
          messages: Number(latest),
          how: "Cloud Monitoring num_undelivered_messages, latest sample",
        };
  } catch (error) {
    return { messages: null, how: `Cloud Monitoring unreachable: ${(error as Error).message}` };
  }
}

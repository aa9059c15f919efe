/**
 * `npm run logs`: a tenant's processed (or failed) records as JSON, or one record by id. In log-id
 * order, not newest first: the timestamps are exempt from indexing (firestore.indexes.json).
 */
import { Firestore, Timestamp } from "@google-cloud/firestore";
import { isLogId } from "../../functions/src/lib/ids";
import { FAILED_LOGS, PROCESSED_LOGS, TENANTS } from "../../functions/src/lib/paths";
import { UsageError, checkTenantId, projectOf, runCli } from "./lib/operator-cli";

const USAGE = "Usage: npm run logs -- <tenant> [<log_id>] [--failed] [--limit N] [--project P]";

/** Timestamps print as ISO strings, the way the rest of the product writes times. */
const plain = (data: Record<string, unknown>) =>
  Object.fromEntries(
    Object.entries(data).map(([key, value]) => [
      key,
      value instanceof Timestamp ? value.toDate().toISOString() : value,
    ]),
  );

const OPTIONS = {
  failed: { type: "boolean", default: false },
  limit: { type: "string", default: "20" },
  project: { type: "string" },
} as const;

runCli(
  "logs",
  USAGE,
  { options: OPTIONS, allowPositionals: true },
  async ({ values, positionals }) => {
    const [tenant, logId, ...extra] = positionals;
    const limit = Number(values.limit);
    if (extra.length > 0 || !Number.isInteger(limit) || limit < 1) throw new UsageError("");
    const tenantId = checkTenantId(tenant);
    const firestore = new Firestore({ projectId: projectOf(values.project) ?? "demo-rdp" });
    try {
      const collection = firestore.collection(
        `${TENANTS}/${tenantId}/${values.failed ? FAILED_LOGS : PROCESSED_LOGS}`,
      );
      if (logId === undefined) {
        const snapshot = await collection.limit(limit).get();
        console.log(
          JSON.stringify(
            snapshot.docs.map((doc) => plain(doc.data())),
            null,
            2,
          ),
        );
        return 0;
      }
      const snapshot = isLogId(logId) ? await collection.doc(logId).get() : undefined;
      if (!snapshot?.exists) {
        console.error(`No record ${logId} for tenant ${tenantId}`);
        return 1;
      }
      console.log(JSON.stringify(plain(snapshot.data() ?? {}), null, 2));
      return 0;
    } finally {
      await firestore.terminate();
    }
  },
  1,
);

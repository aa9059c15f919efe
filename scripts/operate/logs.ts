/**
 * `npm run logs -- <tenant> [<log_id>] [--failed] [--limit N] [--project P]`: prints a
 * tenant's processed (or failed) records as JSON, in log-id order, or one record by id.
 * (Not newest first: the timestamps are exempt from indexing, see firestore.indexes.json.)
 * Firestore is found as every Google client finds it: FIRESTORE_EMULATOR_HOST for the
 * emulator, else the project's Application Default Credentials.
 */
import { parseArgs } from "node:util";
import { Firestore, Timestamp } from "@google-cloud/firestore";
import { TENANT_ID_RULE, isLogId, isTenantId } from "../../functions/src/lib/ids";
import { FAILED_LOGS, PROCESSED_LOGS, TENANTS } from "../../functions/src/lib/paths";

const USAGE = "Usage: npm run logs -- <tenant> [<log_id>] [--failed] [--limit N] [--project P]";

/** Timestamps print as ISO strings, the way the rest of the product writes times. */
function plain(data: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(data).map(([key, value]) => [
      key,
      value instanceof Timestamp ? value.toDate().toISOString() : value,
    ]),
  );
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      failed: { type: "boolean", default: false },
      limit: { type: "string", default: "20" },
      project: { type: "string" },
    },
  });
  const [tenantId, logId, ...extra] = positionals;
  const limit = Number(values.limit);
  if (tenantId === undefined || extra.length > 0 || !Number.isInteger(limit) || limit < 1) {
    console.error(USAGE);
    return 2;
  }
  if (!isTenantId(tenantId)) {
    console.error(`"${tenantId}" is not a valid tenant id: ${TENANT_ID_RULE}`);
    return 2;
  }
  const projectId =
    values.project ?? process.env.GOOGLE_CLOUD_PROJECT ?? process.env.GCLOUD_PROJECT ?? "demo-rdp";
  const firestore = new Firestore({ projectId });
  try {
    const collection = firestore.collection(
      `${TENANTS}/${tenantId}/${values.failed ? FAILED_LOGS : PROCESSED_LOGS}`,
    );
    if (logId !== undefined) {
      const snapshot = isLogId(logId) ? await collection.doc(logId).get() : undefined;
      if (!snapshot?.exists) {
        console.error(`No record ${logId} for tenant ${tenantId}`);
        return 1;
      }
      console.log(JSON.stringify(plain(snapshot.data() ?? {}), null, 2));
      return 0;
    }
    const snapshot = await collection.limit(limit).get();
    console.log(
      JSON.stringify(
        snapshot.docs.map((doc) => plain(doc.data())),
        null,
        2,
      ),
    );
    return 0;
  } finally {
    await firestore.terminate();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);

/**
 * `npm run status`: per tenant, processed records and failures by reason; the dead_letters
 * documents; the dead-letter subscription's backlog. Against the emulators or a project
 * (see scripts/operate/lib/operator-cli.ts). The logic lives in scripts/operate/lib/status.ts.
 */
import { DEAD_LETTERS } from "../../functions/src/lib/paths";
import {
  TARGET_OPTIONS,
  TARGET_USAGE,
  checkTenantId,
  connect,
  runCli,
  tenantIds,
} from "./lib/operator-cli";
import { FAILURE_REASONS, countOf, deadLetterBacklog, tenantStatus } from "./lib/status";

const USAGE = `Usage: npm run status -- [options]

  --tenant T                     only this tenant (repeatable; default: every tenant)
  --json                         print only the JSON line
${TARGET_USAGE}`;

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

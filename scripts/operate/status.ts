/**
 * `npm run status`: per tenant, processed records and failures by reason; the dead_letters
 * documents; the dead-letter subscription's backlog. Against the emulators or a project
 * (see scripts/operate/lib/ops-target.ts). The logic lives in scripts/operate/lib/status.ts.
 *
 *   npm run status -- [--tenant T]... [--dead-letter-subscription S] [--json] [target options]
 */
import { parseArgs } from "node:util";
import { TENANT_ID_RULE, isTenantId } from "../../functions/src/lib/ids";
import { TARGET_OPTIONS, TARGET_USAGE, connect, deployConfigValue } from "./lib/ops-target";
import {
  FAILURE_REASONS,
  countDeadLetterDocuments,
  deadLetterBacklog,
  tenantIds,
  tenantStatus,
} from "./lib/status";

const USAGE = `Usage: npm run status -- [options]

  --tenant T                     only this tenant (repeatable; default: every tenant)
  --dead-letter-subscription S   default: DEAD_LETTER_SUBSCRIPTION of deploy/config.env
  --json                         print only the JSON line
${TARGET_USAGE}`;

async function main(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        ...TARGET_OPTIONS,
        tenant: { type: "string", multiple: true },
        "dead-letter-subscription": { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
    const bad = values.tenant?.find((tenant) => !isTenantId(tenant));
    if (bad !== undefined) throw new Error(`"${bad}": a tenant id is ${TENANT_ID_RULE}`);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const target = connect(values);
  const subscription =
    values["dead-letter-subscription"] ?? deployConfigValue("DEAD_LETTER_SUBSCRIPTION") ?? "";
  try {
    const tenants = values.tenant ?? (await tenantIds(target.firestore));
    const [rows, deadLetterDocuments, backlog] = await Promise.all([
      Promise.all(tenants.map((tenant) => tenantStatus(target.firestore, tenant))),
      countDeadLetterDocuments(target.firestore),
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
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`status failed: ${(error as Error).message ?? String(error)}`);
    process.exit(3);
  },
);

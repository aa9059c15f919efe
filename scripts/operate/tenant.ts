/**
 * `npm run tenant`: one tenant's API keys, redaction policy and settings, and the erasure of its
 * data (USAGE below). Exit codes: 0 done, 1 not found or failed, 2 usage. The logic lives in
 * functions/src/lib (api-keys, redaction-policies, tenant-settings) and ./lib/erase.ts.
 */
import type { parseArgs } from "node:util";
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { LOG_ID_RULE, isLogId } from "../../functions/src/lib/ids";
import { createFirestoreRedactionPolicies } from "../../functions/src/lib/redaction-policies";
import {
  MAX_PHONE_REGIONS,
  REDACTION_KINDS,
  changeStoredPolicy,
  describePolicy,
  isRedactionKind,
  policyFromStored,
  validateStoredRedactionPolicy,
  type StoredRedactionPolicy,
} from "../../functions/src/lib/redaction-policy";
import {
  createFirestoreTenantSettings,
  validateStoredTenantLimits,
  type StoredTenantLimits,
} from "../../functions/src/lib/tenant-settings";
import { eraseRecord, purgeTenant } from "./lib/erase";
import { UsageError, checkTenantId, projectOf, runCli } from "./lib/operator-cli";

const USAGE = `Usage:
  npm run tenant -- create <tenant> [--label <label>] [--project <project>]
  npm run tenant -- list <tenant> [--project <project>]
  npm run tenant -- revoke <tenant> <key_id> [--project <project>]
  npm run tenant -- policy <tenant> [--enable <kinds>] [--disable <kinds>]
                                    [--regions <CC,CC,...>|default] [--reset] [--project <project>]
  npm run tenant -- settings <tenant> [--retention-days <days>|default]
                                      [--rate-limit <records/s>|default] [--project <project>]
  npm run tenant -- purge <tenant> [--dry-run] [--project <project>]
                                    erases all of the tenant's data; prints counts per collection
  npm run tenant -- erase <tenant> <log_id> [--dry-run] [--project <project>]
                                    erases one record (stored and failed); prints the paths

Redaction kinds: ${REDACTION_KINDS.join(", ")} (ip is off by default, the rest on).
--regions lists the ISO 3166 regions whose national phone formats count, in order.
policy without options shows the tenant's effective policy; the worker applies a change
within REDACTION_POLICY_CACHE_SECONDS.
settings shows the tenant's retention (days its records are kept, 1-3650) and ingest rate limit
(records a second per ingest instance, 1-1000000); "default" removes the tenant's own value, so
RETENTION_DAYS / TENANT_RATE_LIMIT_PER_SECOND apply. Changes apply within the same cache time.

Firestore: FIRESTORE_EMULATOR_HOST selects the emulator; the project comes from --project,
GOOGLE_CLOUD_PROJECT or GCLOUD_PROJECT. create prints the key once: store it now.`;

const EXIT_FAILED = 1;

/** Each command's argument after the tenant id, if any, and the options only it takes. */
const COMMANDS: Record<string, { argument?: string; options: readonly string[] }> = {
  create: { options: ["label"] },
  list: { options: [] },
  revoke: { argument: "key_id", options: [] },
  policy: { options: ["enable", "disable", "regions", "reset"] },
  settings: { options: ["retention-days", "rate-limit"] },
  purge: { options: ["dry-run"] },
  erase: { argument: "log_id", options: ["dry-run"] },
};

const OPTIONS = {
  project: { type: "string" },
  label: { type: "string" },
  enable: { type: "string", multiple: true },
  disable: { type: "string", multiple: true },
  regions: { type: "string" },
  reset: { type: "boolean" },
  "retention-days": { type: "string" },
  "rate-limit": { type: "string" },
  "dry-run": { type: "boolean" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];

/** Policy options may be repeated or comma-separated: --enable ip --enable email,card. */
const listOption = (values: readonly string[] | undefined) =>
  (values ?? []).flatMap((value) => value.split(",")).map((value) => value.trim());

function kindsOption(name: string, values: readonly string[] | undefined) {
  const kinds = listOption(values);
  const bad = kinds.find((kind) => !isRedactionKind(kind));
  if (bad === undefined) return kinds.filter(isRedactionKind);
  throw new UsageError(`--${name}: "${bad}" is not a kind (${REDACTION_KINDS.join(", ")})`);
}

/** The policy change asked for, or undefined to only show the policy. */
function policyChangeOf(values: Values) {
  const enable = kindsOption("enable", values.enable);
  const disable = kindsOption("disable", values.disable);
  const both = enable.find((kind) => disable.includes(kind));
  if (both !== undefined) throw new UsageError(`"${both}" is both enabled and disabled`);
  const { regions } = values;
  const phoneRegions =
    regions === undefined
      ? undefined
      : listOption(regions === "default" ? [] : [regions]).map((cc) => cc.toUpperCase());
  if (phoneRegions && !validateStoredRedactionPolicy({ phone_regions: phoneRegions })) {
    throw new UsageError(
      `--regions must be "default" or up to ${MAX_PHONE_REGIONS} distinct ISO 3166 region ` +
        `codes that libphonenumber knows (e.g. US,GB,DE), got "${regions}"`,
    );
  }
  const reset = values.reset ?? false;
  if (!reset && enable.length === 0 && disable.length === 0 && phoneRegions === undefined) {
    return undefined;
  }
  return { enable, disable, phoneRegions, reset };
}

/** The limits to set (a number) or remove (null, from "default"); empty to only show them. */
function limitsChangeOf(values: Values) {
  const change: { [K in keyof StoredTenantLimits]?: number | null } = {};
  const fields = { "retention-days": "retention_days", "rate-limit": "rate_limit_per_second" };
  for (const [option, field] of Object.entries(fields) as [keyof typeof fields, string][]) {
    const value = values[option];
    if (value === undefined) continue;
    const number = value === "default" ? null : /^\d+$/.test(value) ? Number(value) : NaN;
    if (number !== null && !validateStoredTenantLimits({ [field]: number })) {
      throw new UsageError(
        `--${option} must be a whole number in range or "default", got "${value}"`,
      );
    }
    change[field as keyof StoredTenantLimits] = number;
  }
  return change;
}

const print = (value: unknown) => process.stdout.write(JSON.stringify(value) + "\n");

/** Timeout of one Firestore call of the CLI. */
const CALL_TIMEOUT_MS = 10_000;

async function runPolicy(firestore: Firestore, tenantId: string, values: Values) {
  const change = policyChangeOf(values);
  const policies = createFirestoreRedactionPolicies(firestore, CALL_TIMEOUT_MS);
  const raw = await policies.read(tenantId);
  let stored: StoredRedactionPolicy | undefined;
  if (validateStoredRedactionPolicy(raw)) {
    stored = raw;
  } else if (raw !== undefined && raw !== null) {
    // The worker redacts every kind for this tenant until the policy is written again.
    console.error(`The stored policy of ${tenantId} is invalid; --reset replaces it.`);
    if (change?.reset !== true) return EXIT_FAILED;
  }
  if (change !== undefined) {
    stored = changeStoredPolicy(change.reset ? undefined : stored, change);
    await policies.write(tenantId, stored);
    console.error(`Updated the redaction policy of ${tenantId}.`);
  }
  print({ tenant_id: tenantId, ...describePolicy(policyFromStored(stored)), stored: stored ?? {} });
  return 0;
}

async function runSettings(firestore: Firestore, tenantId: string, values: Values) {
  const change = limitsChangeOf(values);
  const settings = createFirestoreTenantSettings(firestore, CALL_TIMEOUT_MS);
  if (Object.keys(change).length > 0) {
    await settings.writeLimits(tenantId, change);
    console.error(`Updated the settings of ${tenantId}.`);
  }
  const stored = (await settings.read(tenantId)) ?? {};
  const shown = (field: keyof StoredTenantLimits) => {
    const value: unknown = stored[field];
    if (value === undefined || value === null) return null;
    if (!validateStoredTenantLimits({ [field]: value })) {
      // The instances ignore it and apply the default until it is set again.
      console.error(`The stored ${field} of ${tenantId} is invalid; set it again.`);
    }
    return value;
  };
  // null: the deployment's RETENTION_DAYS / TENANT_RATE_LIMIT_PER_SECOND applies.
  print({
    tenant_id: tenantId,
    retention_days: shown("retention_days"),
    rate_limit_per_second: shown("rate_limit_per_second"),
  });
  return 0;
}

/** Runs a checked command; `argument` is revoke's key_id or erase's log_id. */
async function run(
  firestore: Firestore,
  [action, tenantId, argument]: [string, string, string],
  values: Values,
) {
  const keys = createFirestoreApiKeys(firestore);
  const dryRun = values["dry-run"] === true;
  switch (action) {
    case "create": {
      const { key_id, label, key } = await keys.create(tenantId, values.label ?? "");
      // The only time the secret exists outside the caller's hands: stdout, once.
      print({ tenant_id: tenantId, key_id, label, api_key: key });
      console.error(`Created key ${key_id} for tenant ${tenantId}; it is shown only once.`);
      return 0;
    }
    case "list": {
      const listed = await keys.list(tenantId);
      print(listed.sort((a, b) => (a.created_at ?? "").localeCompare(b.created_at ?? "")));
      return 0;
    }
    case "revoke": {
      if (!(await keys.revoke(tenantId, argument))) {
        console.error(`Tenant ${tenantId} has no key ${JSON.stringify(argument)}`);
        return EXIT_FAILED;
      }
      print({ tenant_id: tenantId, key_id: argument, revoked: true });
      return 0;
    }
    case "policy":
      return runPolicy(firestore, tenantId, values);
    case "settings":
      return runSettings(firestore, tenantId, values);
  }
  const erased =
    action === "purge"
      ? { documents: await purgeTenant(firestore, tenantId, dryRun) }
      : {
          log_id: argument,
          documents: await eraseRecord(firestore, tenantId, argument, dryRun),
        };
  print({ tenant_id: tenantId, dry_run: dryRun, ...erased });
  if (dryRun) console.error("Dry run: nothing was deleted.");
  return 0;
}

runCli(
  "tenant",
  USAGE,
  { options: OPTIONS, allowPositionals: true },
  async ({ values, positionals }) => {
    const [action = "", tenant, argument, ...extra] = positionals;
    const command = COMMANDS[action];
    if (command === undefined) throw new UsageError(action && `Unknown command "${action}"`);
    const tenantId = checkTenantId(tenant);
    if (command.argument !== undefined && argument === undefined) {
      throw new UsageError(`${action} needs a ${command.argument}`);
    }
    const unexpected = command.argument === undefined ? argument : extra[0];
    if (unexpected !== undefined) throw new UsageError(`Unexpected argument "${unexpected}"`);
    if (action === "erase" && !isLogId(argument)) {
      throw new UsageError(`"${argument}" is not a valid log_id: ${LOG_ID_RULE}`);
    }
    const misplaced = Object.keys(values).find(
      (name) => name !== "project" && name !== "help" && !command.options.includes(name),
    );
    if (misplaced !== undefined) throw new UsageError(`--${misplaced} does not go with ${action}`);
    const label = values.label ?? "";
    if (label.length > 200 || [...label].some((char) => char < " " || char === "\u007f")) {
      throw new UsageError("--label must be at most 200 characters without control characters");
    }
    if (values.project !== undefined && !/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/.test(values.project)) {
      throw new UsageError(`"${values.project}" is not a valid project id`);
    }
    const firestore = new Firestore({ projectId: projectOf(values.project) });
    try {
      return await run(firestore, [action, tenantId, argument ?? ""], values);
    } finally {
      await firestore.terminate();
    }
  },
  EXIT_FAILED,
);

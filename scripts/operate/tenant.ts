/**
 * The tenant CLI: API keys and the redaction policy of one tenant, against the emulators or a
 * real project.
 *
 *   npm run tenant -- create <tenant> [--label L] [--project P]   prints the new key once, as JSON
 *   npm run tenant -- list <tenant> [--project P]                 prints the tenant's keys, no secrets
 *   npm run tenant -- revoke <tenant> <key_id> [--project P]      revokes one key
 *   npm run tenant -- policy <tenant> [--enable K,..] [--disable K,..] [--regions CC,..|default]
 *                                     [--reset] [--project P]     shows (and changes) the policy
 *   npm run tenant -- settings <tenant> [--retention-days N|default] [--rate-limit N|default]
 *                                     [--project P]               shows (and changes) the limits
 *
 * Firestore is found the way every Google client finds it: FIRESTORE_EMULATOR_HOST for the
 * emulator, and the project from --project, GOOGLE_CLOUD_PROJECT / GCLOUD_PROJECT or the
 * Application Default Credentials. Exit codes: 0 done, 1 not found or failed, 2 usage.
 * The logic lives in functions/src/lib/api-keys.ts, redaction-policies.ts and
 * tenant-settings.ts; this file only parses and prints.
 */
import { parseArgs } from "node:util";
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { ERASE_USAGE, runEraseCommand } from "./lib/erase";
import { TENANT_ID_RULE, isTenantId } from "../../functions/src/lib/ids";
import { createFirestoreRedactionPolicies } from "../../functions/src/lib/redaction-policies";
import {
  MAX_PHONE_REGIONS,
  REDACTION_KINDS,
  changeStoredPolicy,
  describePolicy,
  isRedactionKind,
  policyFromStored,
  validateStoredRedactionPolicy,
  type PolicyChange,
  type RedactionKind,
  type StoredRedactionPolicy,
} from "../../functions/src/lib/redaction-policy";
import {
  createFirestoreTenantSettings,
  validateStoredTenantLimits,
  type StoredTenantLimits,
} from "../../functions/src/lib/tenant-settings";

const USAGE = `Usage:
  npm run tenant -- create <tenant> [--label <label>] [--project <project>]
  npm run tenant -- list <tenant> [--project <project>]
  npm run tenant -- revoke <tenant> <key_id> [--project <project>]
  npm run tenant -- policy <tenant> [--enable <kinds>] [--disable <kinds>]
                                    [--regions <CC,CC,...>|default] [--reset] [--project <project>]
  npm run tenant -- settings <tenant> [--retention-days <days>|default]
                                      [--rate-limit <records/s>|default] [--project <project>]

Redaction kinds: ${REDACTION_KINDS.join(", ")} (ip is off by default, the rest on).
--regions lists the ISO 3166 regions whose national phone formats count, in order.
policy without options shows the tenant's effective policy; the worker applies a change
within REDACTION_POLICY_CACHE_SECONDS.
settings shows the tenant's retention (days its records are kept, 1-3650) and ingest rate limit
(records a second per ingest instance, 1-1000000); "default" removes the tenant's own value, so
RETENTION_DAYS / TENANT_RATE_LIMIT_PER_SECOND apply. Changes apply within the same cache time.

Firestore: FIRESTORE_EMULATOR_HOST selects the emulator; the project comes from --project,
GOOGLE_CLOUD_PROJECT or GCLOUD_PROJECT. create prints the key once: store it now.`;

const EXIT_OK = 0;
const EXIT_NOT_FOUND = 1;
const EXIT_USAGE = 2;

class UsageError extends Error {}

const ACTIONS = ["create", "list", "revoke", "policy", "settings"] as const;
type Action = (typeof ACTIONS)[number];
const isAction = (value: string | undefined): value is Action =>
  (ACTIONS as readonly (string | undefined)[]).includes(value);

interface Command {
  readonly action: Action;
  readonly tenantId: string;
  readonly keyId: string | undefined;
  readonly label: string;
  readonly project: string | undefined;
  /** For policy: the change asked for, or undefined to only show it. */
  readonly policyChange: (PolicyChange & { readonly reset: boolean }) | undefined;
  /** For settings: the limits to set (a number) or remove (null); empty to only show them. */
  readonly limitsChange: { [K in keyof StoredTenantLimits]?: number | null };
}

/** A limit option: a whole number in the schema's range, or "default" to remove it. */
function limitOption(
  option: string,
  field: keyof StoredTenantLimits,
  value: string | undefined,
): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === "default") return null;
  const number = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!validateStoredTenantLimits({ [field]: number })) {
    throw new UsageError(
      `--${option} must be a whole number in range or "default", got "${value}"`,
    );
  }
  return number;
}

/** Policy options may be repeated or comma-separated: --enable ip --enable email,card. */
function listOption(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((value) => value.split(",")).map((value) => value.trim());
}

function kindsOption(name: string, values: readonly string[] | undefined): RedactionKind[] {
  return listOption(values).map((kind) => {
    if (!isRedactionKind(kind)) {
      throw new UsageError(`--${name}: "${kind}" is not a kind (${REDACTION_KINDS.join(", ")})`);
    }
    return kind;
  });
}

function policyChangeOf(values: {
  enable?: string[];
  disable?: string[];
  regions?: string;
  reset?: boolean;
}): Command["policyChange"] {
  const enable = kindsOption("enable", values.enable);
  const disable = kindsOption("disable", values.disable);
  const both = enable.find((kind) => disable.includes(kind));
  if (both !== undefined) throw new UsageError(`"${both}" is both enabled and disabled`);
  let phoneRegions: string[] | undefined;
  if (values.regions !== undefined) {
    phoneRegions = values.regions === "default" ? [] : listOption([values.regions]);
    phoneRegions = phoneRegions.map((region) => region.toUpperCase());
    if (!validateStoredRedactionPolicy({ phone_regions: phoneRegions })) {
      throw new UsageError(
        `--regions must be "default" or up to ${MAX_PHONE_REGIONS} distinct ISO 3166 region ` +
          `codes that libphonenumber knows (e.g. US,GB,DE), got "${values.regions}"`,
      );
    }
  }
  const reset = values.reset ?? false;
  if (!reset && enable.length === 0 && disable.length === 0 && phoneRegions === undefined) {
    return undefined;
  }
  return { enable, disable, phoneRegions, reset };
}

function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        label: { type: "string" },
        project: { type: "string" },
        enable: { type: "string", multiple: true },
        disable: { type: "string", multiple: true },
        regions: { type: "string" },
        reset: { type: "boolean" },
        "retention-days": { type: "string" },
        "rate-limit": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) throw new UsageError("");
  const [action, tenantId, keyId, ...extra] = positionals;
  if (!isAction(action)) {
    throw new UsageError(action === undefined ? "" : `Unknown command "${action}"`);
  }
  if (tenantId === undefined) throw new UsageError(`${action} needs a tenant id`);
  if (!isTenantId(tenantId)) {
    throw new UsageError(`"${tenantId}" is not a valid tenant id: ${TENANT_ID_RULE}`);
  }
  if (action === "revoke" && keyId === undefined) throw new UsageError("revoke needs a key_id");
  if ((action !== "revoke" && keyId !== undefined) || extra.length > 0) {
    throw new UsageError(`Unexpected argument "${action === "revoke" ? extra[0] : keyId}"`);
  }
  if (action !== "create" && values.label !== undefined) {
    throw new UsageError("--label only goes with create");
  }
  const policyOptions = ["enable", "disable", "regions", "reset"] as const;
  if (action !== "policy" && policyOptions.some((name) => values[name] !== undefined)) {
    throw new UsageError("--enable, --disable, --regions and --reset only go with policy");
  }
  const policyChange = action === "policy" ? policyChangeOf(values) : undefined;
  if (
    action !== "settings" &&
    (values["retention-days"] !== undefined || values["rate-limit"] !== undefined)
  ) {
    throw new UsageError("--retention-days and --rate-limit only go with settings");
  }
  const limitsChange = Object.fromEntries(
    Object.entries({
      retention_days: limitOption("retention-days", "retention_days", values["retention-days"]),
      rate_limit_per_second: limitOption(
        "rate-limit",
        "rate_limit_per_second",
        values["rate-limit"],
      ),
    }).filter(([, value]) => value !== undefined),
  );
  const label = values.label ?? "";
  if (label.length > 200 || [...label].some((char) => char < " " || char === "\u007f")) {
    throw new UsageError("--label must be at most 200 characters without control characters");
  }
  if (values.project !== undefined && !/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/.test(values.project)) {
    throw new UsageError(`"${values.project}" is not a valid project id`);
  }
  return {
    action,
    tenantId,
    keyId,
    label,
    project: values.project,
    policyChange,
    limitsChange,
  };
}

function firestoreFor(project: string | undefined): Firestore {
  const projectId = project ?? process.env.GOOGLE_CLOUD_PROJECT ?? process.env.GCLOUD_PROJECT;
  return new Firestore(projectId === undefined ? {} : { projectId });
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

async function run(command: Command): Promise<number> {
  const firestore = firestoreFor(command.project);
  try {
    const keys = createFirestoreApiKeys(firestore);
    switch (command.action) {
      case "create": {
        const created = await keys.create(command.tenantId, command.label);
        // The only time the secret exists outside the caller's hands: stdout, once.
        print({
          tenant_id: created.tenant_id,
          key_id: created.key_id,
          label: created.label,
          api_key: created.key,
        });
        console.error(
          `Created key ${created.key_id} for tenant ${created.tenant_id}; it is shown only once.`,
        );
        return EXIT_OK;
      }
      case "list": {
        const listed = await keys.list(command.tenantId);
        listed.sort((a, b) => (a.created_at ?? "").localeCompare(b.created_at ?? ""));
        print(listed);
        return EXIT_OK;
      }
      case "revoke": {
        const keyId = command.keyId ?? "";
        if (!(await keys.revoke(command.tenantId, keyId))) {
          console.error(`Tenant ${command.tenantId} has no key ${JSON.stringify(keyId)}`);
          return EXIT_NOT_FOUND;
        }
        print({ tenant_id: command.tenantId, key_id: keyId, revoked: true });
        return EXIT_OK;
      }
      case "policy": {
        return await runPolicy(firestore, command);
      }
      case "settings": {
        return await runSettings(firestore, command);
      }
    }
  } finally {
    await firestore.terminate();
  }
}

/** Timeout of one Firestore call of the CLI. */
const POLICY_TIMEOUT_MS = 10_000;

async function runPolicy(firestore: Firestore, command: Command): Promise<number> {
  const policies = createFirestoreRedactionPolicies(firestore, POLICY_TIMEOUT_MS);
  const raw = await policies.read(command.tenantId);
  let stored: StoredRedactionPolicy | undefined;
  if (validateStoredRedactionPolicy(raw)) {
    stored = raw;
  } else if (raw !== undefined && raw !== null) {
    // The worker redacts every kind for this tenant until the policy is written again.
    console.error(`The stored policy of ${command.tenantId} is invalid; --reset replaces it.`);
    if (command.policyChange?.reset !== true) return EXIT_NOT_FOUND;
  }
  const change = command.policyChange;
  if (change !== undefined) {
    stored = changeStoredPolicy(change.reset ? undefined : stored, change);
    await policies.write(command.tenantId, stored);
    console.error(`Updated the redaction policy of ${command.tenantId}.`);
  }
  print({
    tenant_id: command.tenantId,
    ...describePolicy(policyFromStored(stored)),
    stored: stored ?? {},
  });
  return EXIT_OK;
}

async function runSettings(firestore: Firestore, command: Command): Promise<number> {
  const settings = createFirestoreTenantSettings(firestore, POLICY_TIMEOUT_MS);
  if (Object.keys(command.limitsChange).length > 0) {
    await settings.writeLimits(command.tenantId, command.limitsChange);
    console.error(`Updated the settings of ${command.tenantId}.`);
  }
  const stored = (await settings.read(command.tenantId)) ?? {};
  const shown = (field: keyof StoredTenantLimits) => {
    const value: unknown = stored[field];
    if (value === undefined || value === null) return null;
    if (!validateStoredTenantLimits({ [field]: value })) {
      // The instances ignore it and apply the default until it is set again.
      console.error(`The stored ${field} of ${command.tenantId} is invalid; set it again.`);
    }
    return value;
  };
  // null: the deployment's RETENTION_DAYS / TENANT_RATE_LIMIT_PER_SECOND applies.
  print({
    tenant_id: command.tenantId,
    retention_days: shown("retention_days"),
    rate_limit_per_second: shown("rate_limit_per_second"),
  });
  return EXIT_OK;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === "purge" || argv[0] === "erase") return runEraseCommand(argv);
  let command: Command;
  try {
    command = parseCommand(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message !== "") console.error(error.message);
    console.error(USAGE + ERASE_USAGE);
    return EXIT_USAGE;
  }
  try {
    return await run(command);
  } catch (error) {
    // Firestore errors name the project and the cause; they never contain a key.
    console.error(`tenant ${command.action} failed: ${(error as Error).message ?? String(error)}`);
    return EXIT_NOT_FOUND;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = EXIT_NOT_FOUND;
  },
);

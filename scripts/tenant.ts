/**
 * The tenant CLI: API keys of one tenant, against the emulators or a real project.
 *
 *   npm run tenant -- create <tenant> [--label L] [--project P]   prints the new key once, as JSON
 *   npm run tenant -- list <tenant> [--project P]                 prints the tenant's keys, no secrets
 *   npm run tenant -- revoke <tenant> <key_id> [--project P]      revokes one key
 *
 * Firestore is found the way every Google client finds it: FIRESTORE_EMULATOR_HOST for the
 * emulator, and the project from --project, GOOGLE_CLOUD_PROJECT / GCLOUD_PROJECT or the
 * Application Default Credentials. Exit codes: 0 done, 1 not found or failed, 2 usage.
 * The logic lives in functions/src/lib/api-keys.ts; this file only parses and prints.
 */
import { parseArgs } from "node:util";
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../functions/src/lib/api-keys";
import { TENANT_ID_RULE, isTenantId } from "../functions/src/lib/ids";

const USAGE = `Usage:
  npm run tenant -- create <tenant> [--label <label>] [--project <project>]
  npm run tenant -- list <tenant> [--project <project>]
  npm run tenant -- revoke <tenant> <key_id> [--project <project>]

Firestore: FIRESTORE_EMULATOR_HOST selects the emulator; the project comes from --project,
GOOGLE_CLOUD_PROJECT or GCLOUD_PROJECT. create prints the key once: store it now.`;

const EXIT_OK = 0;
const EXIT_NOT_FOUND = 1;
const EXIT_USAGE = 2;

class UsageError extends Error {}

interface Command {
  readonly action: "create" | "list" | "revoke";
  readonly tenantId: string;
  readonly keyId: string | undefined;
  readonly label: string;
  readonly project: string | undefined;
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
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) throw new UsageError("");
  const [action, tenantId, keyId, ...extra] = positionals;
  if (action !== "create" && action !== "list" && action !== "revoke") {
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
  const label = values.label ?? "";
  if (label.length > 200 || [...label].some((char) => char < " " || char === "\u007f")) {
    throw new UsageError("--label must be at most 200 characters without control characters");
  }
  if (values.project !== undefined && !/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/.test(values.project)) {
    throw new UsageError(`"${values.project}" is not a valid project id`);
  }
  return { action, tenantId, keyId, label, project: values.project };
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
    }
  } finally {
    await firestore.terminate();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    if (error.message !== "") console.error(error.message);
    console.error(USAGE);
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

/**
 * What the operator CLIs (tenant, logs, replay, status) share: how they parse, fail and exit, and
 * where they work. That is the emulators when their hosts are given (flag or
 * PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST, as every Google client reads them), else the
 * project's real services through Application Default Credentials. Names the CLIs need and the
 * operator did not pass (topic, dead-letter subscription) come from deploy/config.env.
 */
import fs from "node:fs";
import path from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { Firestore, type Query } from "@google-cloud/firestore";
import type { PubSub } from "@google-cloud/pubsub";
import { TENANT_ID_RULE, isTenantId } from "../../../functions/src/lib/ids";
import { TENANTS } from "../../../functions/src/lib/paths";
import { REPO_ROOT } from "../../local/lib/emulators";

/** Bad arguments: the CLI prints the message and its usage, and exits 2. */
export class UsageError extends Error {}

/**
 * Parses this process's arguments (plus --help) and runs `main`; exits with its code. A usage
 * error exits 2, any other error `failureCode`. The exit waits for stdout to flush: `tenant
 * create` prints a key that exists nowhere else.
 */
export function runCli<T extends ParseArgsConfig>(
  name: string,
  usage: string,
  config: T,
  main: (parsed: ReturnType<typeof parseArgs<T>>) => Promise<number>,
  failureCode = 3,
): void {
  const run = async () => {
    const options = { ...config.options, help: { type: "boolean", short: "h" } } as const;
    const parsed = parseArgs({ ...config, args: process.argv.slice(2), options });
    if ((parsed.values as { help?: boolean }).help) return (console.log(usage), 0);
    return main(parsed as ReturnType<typeof parseArgs<T>>);
  };
  run()
    .catch((error: Error & { code?: string }) => {
      if (error instanceof UsageError || error.code?.startsWith("ERR_PARSE_ARGS")) {
        console.error(error.message ? `${error.message}\n\n${usage}` : usage);
        return 2;
      }
      console.error(`${name} failed: ${error.message ?? String(error)}`);
      return failureCode;
    })
    .then((code) => process.stdout.write("", () => process.exit(code)));
}

export function checkTenantId(tenantId: string | undefined): string {
  if (tenantId === undefined) throw new UsageError("A tenant id is needed");
  if (!isTenantId(tenantId)) {
    throw new UsageError(`"${tenantId}" is not a valid tenant id: ${TENANT_ID_RULE}`);
  }
  return tenantId;
}

/** Every tenant with data, sorted; listDocuments includes those without a document of their own. */
export async function tenantIds(firestore: Firestore): Promise<string[]> {
  return (await firestore.collection(TENANTS).listDocuments()).map((ref) => ref.id).sort();
}

/** A count() aggregation: it reads no document, and costs one read per 1,000 counted. */
export const countOf = async (query: Query) => (await query.count().get()).data().count;

/** --project, else the environment's; undefined leaves it to Application Default Credentials. */
export const projectOf = (flag: string | undefined) =>
  flag ?? process.env.GOOGLE_CLOUD_PROJECT ?? process.env.GCLOUD_PROJECT;

export const TARGET_OPTIONS = {
  project: { type: "string" },
  "firestore-host": { type: "string" },
  "pubsub-host": { type: "string" },
  "dead-letter-subscription": { type: "string" },
} as const;

export const TARGET_USAGE = `  --project P                    default: GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, else demo-rdp
  --firestore-host H:P           the Firestore emulator (default: FIRESTORE_EMULATOR_HOST)
  --pubsub-host H:P              the Pub/Sub emulator (default: PUBSUB_EMULATOR_HOST)
                                 without emulator hosts: the project's services, with ADC
  --dead-letter-subscription S   default: DEAD_LETTER_SUBSCRIPTION of deploy/config.env`;

export function connect(values: Partial<Record<keyof typeof TARGET_OPTIONS, string>>) {
  const firestoreHost = values["firestore-host"] || process.env.FIRESTORE_EMULATOR_HOST;
  const pubsubHost = values["pubsub-host"] || process.env.PUBSUB_EMULATOR_HOST;
  if (firestoreHost) process.env.FIRESTORE_EMULATOR_HOST = firestoreHost;
  if (pubsubHost) process.env.PUBSUB_EMULATOR_HOST = pubsubHost;
  // Spare google-auth its probe for a GCE metadata server when only emulators are used.
  if (firestoreHost && pubsubHost) process.env.METADATA_SERVER_DETECTION ??= "none";
  const project = projectOf(values.project) ?? "demo-rdp";
  const firestore = new Firestore({ projectId: project });
  let pubsub: PubSub | undefined;
  const where = (host: string | undefined) => (host ? `emulator ${host}` : "ADC");
  return {
    project,
    firestore,
    /** Loaded on first use: half a second of start-up that the tenant CLI never needs. */
    get pubsub(): PubSub {
      if (pubsub === undefined) {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const client = require("@google-cloud/pubsub") as typeof import("@google-cloud/pubsub");
        pubsub = new client.PubSub({ projectId: project });
      }
      return pubsub;
    },
    emulated: Boolean(firestoreHost && pubsubHost),
    description: `project ${project}: Firestore ${where(firestoreHost)}, Pub/Sub ${where(pubsubHost)}`,
    deadLetterSubscription:
      values["dead-letter-subscription"] ?? deployConfigValue("DEAD_LETTER_SUBSCRIPTION") ?? "",
    async close() {
      await Promise.allSettled([firestore.terminate(), pubsub?.close()]);
    },
  };
}

/** A value of deploy/config.env (KEY=VALUE lines, optionally quoted), or undefined. */
export function deployConfigValue(
  key: string,
  file = path.join(REPO_ROOT, "deploy", "config.env"),
) {
  const match = new RegExp(`^${key}=(.*)$`, "m").exec(fs.readFileSync(file, "utf8"));
  return match?.[1]?.trim().replace(/^(["'])(.*)\1$/, "$2");
}

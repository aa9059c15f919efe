/**
 * Where the operator CLIs (replay, status) work: the emulators when their hosts are given (flag or
 * PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST, as every Google client reads them), else the
 * project's real services through Application Default Credentials. Names the CLIs need and the
 * operator did not pass (topic, dead-letter subscription) come from deploy/config.env.
 */
import fs from "node:fs";
import path from "node:path";
import { Firestore } from "@google-cloud/firestore";
import { PubSub } from "@google-cloud/pubsub";
import { REPO_ROOT } from "../../local/lib/emulators";

export const TARGET_OPTIONS = {
  project: { type: "string" },
  "firestore-host": { type: "string" },
  "pubsub-host": { type: "string" },
} as const;

export const TARGET_USAGE = `  --project P                default: GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, else demo-rdp
  --firestore-host H:P       the Firestore emulator (default: FIRESTORE_EMULATOR_HOST)
  --pubsub-host H:P          the Pub/Sub emulator (default: PUBSUB_EMULATOR_HOST)
                             without emulator hosts: the project's services, with ADC`;

export interface OpsTarget {
  readonly project: string;
  readonly firestore: Firestore;
  readonly pubsub: PubSub;
  /** Both services are emulators. */
  readonly emulated: boolean;
  readonly description: string;
  close(): Promise<void>;
}

export function connect(values: {
  project?: string;
  "firestore-host"?: string;
  "pubsub-host"?: string;
}): OpsTarget {
  const firestoreHost = values["firestore-host"] || process.env.FIRESTORE_EMULATOR_HOST;
  const pubsubHost = values["pubsub-host"] || process.env.PUBSUB_EMULATOR_HOST;
  if (firestoreHost) process.env.FIRESTORE_EMULATOR_HOST = firestoreHost;
  if (pubsubHost) process.env.PUBSUB_EMULATOR_HOST = pubsubHost;
  // Spare google-auth its probe for a GCE metadata server when only emulators are used.
  if (firestoreHost && pubsubHost) process.env.METADATA_SERVER_DETECTION ??= "none";
  const project =
    values.project ?? process.env.GOOGLE_CLOUD_PROJECT ?? process.env.GCLOUD_PROJECT ?? "demo-rdp";
  const firestore = new Firestore({ projectId: project });
  const pubsub = new PubSub({ projectId: project });
  const where = (host: string | undefined) => (host ? `emulator ${host}` : "ADC");
  return {
    project,
    firestore,
    pubsub,
    emulated: Boolean(firestoreHost && pubsubHost),
    description: `project ${project}: Firestore ${where(firestoreHost)}, Pub/Sub ${where(pubsubHost)}`,
    async close() {
      await Promise.allSettled([firestore.terminate(), pubsub.close()]);
    },
  };
}

/** A value of deploy/config.env (KEY=VALUE lines, optionally quoted), or undefined. */
export function deployConfigValue(
  key: string,
  file = path.join(REPO_ROOT, "deploy", "config.env"),
) {
  const line = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${key}=`));
  return line
    ?.slice(key.length + 1)
    .trim()
    .replace(/^(["'])(.*)\1$/, "$2");
}

/**
 * The machine image's Cloud SDK emulators, placed where firebase-tools looks for its own
 * downloads (its cache folder: FIREBASE_EMULATORS_PATH or ~/.cache/firebase/emulators), under
 * the names of the versions it pins. Then `firebase emulators:start` finds them and downloads
 * nothing, and the production-faithful stack starts the very same files.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
// firebase-tools' own list of what it would download, with the paths it looks at.
import DOWNLOADS from "firebase-tools/lib/emulator/downloadableEmulatorInfo.json";

const FIRESTORE_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore";
const CACHE_DIR =
  process.env.FIREBASE_EMULATORS_PATH || path.join(os.homedir(), ".cache/firebase/emulators");

/** What firebase-tools runs: `java -jar <firestore>` and `<pubsub> --port=.. --host=..`. */
export const EMULATOR_FILES = {
  firestore: path.join(CACHE_DIR, DOWNLOADS.firestore.downloadPathRelativeToCacheDir),
  pubsub: path.join(CACHE_DIR, DOWNLOADS.pubsub.binaryPathRelativeToCacheDir),
};

/**
 * Places both emulators (idempotent; a moved SDK is followed):
 * - Pub/Sub: a link to the SDK's launcher script, which resolves links to find its jar;
 * - Firestore: a launcher jar, since firebase-tools runs `java -jar` and the SDK jar has no
 *   Main-Class. Its manifest names the main class and the SDK jar as class path; a copy beside
 *   it (`.MF`) tells whether it is up to date.
 * A machine without the SDK's emulators or a JDK gets one error naming everything missing.
 */
export function installEmulators(): typeof EMULATOR_FILES {
  const gcloud = onPath("gcloud");
  // `<root>/bin/gcloud` in every SDK layout; `gcloud info` would cost seconds of Python.
  const sdkRoot =
    process.env.CLOUDSDK_ROOT ||
    (gcloud ? path.resolve(fs.realpathSync(gcloud), "../..") : "<no gcloud, no CLOUDSDK_ROOT>");
  const sdk = {
    pubsub: path.join(sdkRoot, "platform/pubsub-emulator/bin/cloud-pubsub-emulator"),
    firestore: path.join(sdkRoot, "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"),
  };
  const java = onPath("java");
  const jar = path.join(java ? path.dirname(fs.realpathSync(java)) : "<no java on PATH>", "jar");
  const required = [
    [sdk.pubsub, "the Cloud SDK's Pub/Sub emulator"],
    [sdk.firestore, "the Cloud SDK's Firestore emulator"],
    [jar, "a JDK (Java 17 runs both emulators; a JRE has no jar tool)"],
  ] as const;
  const missing = required.flatMap(([file, what]) =>
    fs.existsSync(file) ? [] : [`${what}: ${file}`],
  );
  if (missing.length > 0) {
    throw new Error(
      `Cannot set up the local emulators; missing:\n  - ${missing.join("\n  - ")}\n` +
        "On Debian/Ubuntu with Google Cloud's apt repository: sudo apt-get install \\\n" +
        "  google-cloud-cli-pubsub-emulator google-cloud-cli-firestore-emulator " +
        "openjdk-17-jdk-headless\nWith an SDK from Google's archive: " +
        "gcloud components install pubsub-emulator cloud-firestore-emulator",
    );
  }

  const { pubsub, firestore } = EMULATOR_FILES;
  // Built aside and renamed into place, so a concurrent run never sees half a file.
  const staged = (file: string) => `${file}.${process.pid}.tmp`;
  fs.mkdirSync(path.dirname(pubsub), { recursive: true });
  fs.symlinkSync(sdk.pubsub, staged(pubsub));
  fs.renameSync(staged(pubsub), pubsub);
  const manifest = `Main-Class: ${FIRESTORE_MAIN_CLASS}\nClass-Path: ${pathToFileURL(sdk.firestore)}\n`;
  const manifestFile = `${firestore}.MF`;
  const current = fs.existsSync(manifestFile) && fs.readFileSync(manifestFile, "utf8");
  if (!fs.existsSync(firestore) || current !== manifest) {
    fs.writeFileSync(staged(manifestFile), manifest);
    execFileSync(jar, ["cfm", staged(firestore), staged(manifestFile)], { stdio: "pipe" });
    fs.renameSync(staged(firestore), firestore);
    fs.renameSync(staged(manifestFile), manifestFile);
  }
  return EMULATOR_FILES;
}

function onPath(command: string): string | undefined {
  return (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter((dir) => path.isAbsolute(dir))
    .map((dir) => path.join(dir, command))
    .find((file) => fs.existsSync(file));
}

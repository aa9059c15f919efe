/**
 * `npm run reconcile`: checks that every record a run got a 202 for is stored exactly once
 * (README, "Checking a run"; the options and exit codes are in USAGE). The logic lives in
 * scripts/operate/lib/reconcile.ts; this file only parses and prints.
 */
import fs from "node:fs";
import { parseArgs } from "node:util";
import { Firestore } from "@google-cloud/firestore";
import {
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_QUIET_MS,
  fileSizeActivity,
  formatReport,
  parseRecordsJsonl,
  reconcileRun,
  reportJson,
} from "./lib/reconcile";

const USAGE = `Usage: npm run reconcile -- --accepted <file.jsonl> [options]

  --accepted FILE          records the run got 202 for, JSONL: {"tenant_id","log_id","text_sha256"}
                           (+ "outcome": "in_doubt" for requests without a definite answer); - = stdin
  --project P              Firestore project (default: GOOGLE_CLOUD_PROJECT, GCLOUD_PROJECT, demo-rdp)
  --firestore-host H:P     the Firestore emulator (default: FIRESTORE_EMULATOR_HOST; without
                           either, the project's real Firestore through Application Default Credentials)
  --tenant T               also scan tenant T for unexpected documents (repeatable)
  --drain-timeout S        longest wait for the pipeline to drain, seconds (default ${DEFAULT_DRAIN_TIMEOUT_MS / 1000})
  --quiet S                drained once nothing changed for S seconds; keep it above the
                           subscription's longest redelivery delay (default ${DEFAULT_QUIET_MS / 1000})
  --activity-file F        a file that grows while the pipeline works, e.g. .run/start/process.log
                           (repeatable); without one, only the document count is watched
  --dead-letters-since T   also count dead_letters/ documents failed since T (ISO time)
  --no-wait                reconcile at once, without waiting for the pipeline to drain
  --json                   print only the JSON line

Exit codes: 0 all stored exactly once, 1 missing / duplicated / wrong content / unexpected,
2 usage or input error, 3 the check itself failed (Firestore unreachable).`;

const EXIT = { ok: 0, findings: 1, usage: 2, unchecked: 3 } as const;

function seconds(raw: string, name: string): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 86_400) {
    throw new Error(`${name} must be a number of seconds from 0 to 86400, got "${raw}"`);
  }
  return value * 1000;
}

function parseOptions(argv: readonly string[]) {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      accepted: { type: "string" },
      project: { type: "string" },
      "firestore-host": { type: "string" },
      tenant: { type: "string", multiple: true },
      "drain-timeout": { type: "string", default: String(DEFAULT_DRAIN_TIMEOUT_MS / 1000) },
      quiet: { type: "string", default: String(DEFAULT_QUIET_MS / 1000) },
      "activity-file": { type: "string", multiple: true },
      "dead-letters-since": { type: "string" },
      "no-wait": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help === true) return undefined;
  const file = values.accepted;
  if (file === undefined) throw new Error("--accepted is required");
  let input;
  try {
    input = parseRecordsJsonl(fs.readFileSync(file === "-" ? 0 : file, "utf8"));
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`);
  }
  const sinceText = values["dead-letters-since"];
  const since = sinceText === undefined ? null : new Date(sinceText);
  if (since !== null && !Number.isFinite(since.getTime())) {
    throw new Error(`--dead-letters-since is not a time: "${sinceText}"`);
  }
  const activityFiles = values["activity-file"] ?? [];
  const options = {
    wait: values["no-wait"] !== true,
    timeoutMs: seconds(values["drain-timeout"], "--drain-timeout"),
    quietMs: seconds(values.quiet, "--quiet"),
    deadLettersSince: since,
    ...(activityFiles.length > 0 ? { activity: fileSizeActivity(activityFiles) } : {}),
    onProgress:
      values.json === true
        ? undefined
        : (documents: number, expected: number) =>
            console.error(`waiting for the pipeline: ${documents} of ${expected} documents`),
  };
  return { values, input: { ...input, tenants: values.tenant ?? [] }, options };
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseOptions(argv);
  } catch (error) {
    // Every error of parsing (parseArgs', the input file's) is one of usage or input.
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (parsed === undefined) {
    console.log(USAGE);
    return EXIT.ok;
  }
  const { values, input, options } = parsed;
  const host = values["firestore-host"] ?? process.env.FIRESTORE_EMULATOR_HOST;
  if (host !== undefined && host !== "") process.env.FIRESTORE_EMULATOR_HOST = host;
  // Spare google-auth its probe for a GCE metadata server when only an emulator is read.
  if (host) process.env.METADATA_SERVER_DETECTION ??= "none";
  const projectId =
    values.project ?? process.env.GOOGLE_CLOUD_PROJECT ?? process.env.GCLOUD_PROJECT ?? "demo-rdp";
  if (values.json !== true) {
    console.error(
      host
        ? `reading the Firestore emulator at ${host}, project ${projectId}`
        : `reading the real Firestore of project ${projectId} (no emulator host given)`,
    );
  }
  const firestore = new Firestore({ projectId });
  try {
    const report = await reconcileRun(firestore, input, options);
    if (values.json !== true) console.log(formatReport(report));
    console.log(reportJson(report));
    return report.ok ? EXIT.ok : EXIT.findings;
  } finally {
    await firestore.terminate();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`reconcile could not check: ${(error as Error).stack ?? String(error)}`);
    process.exit(EXIT.unchecked);
  },
);

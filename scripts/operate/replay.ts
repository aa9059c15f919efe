/**
 * `npm run replay`: re-drives failed records through the normal publish path. The logic lives in
 * scripts/operate/lib/replay.ts; this file parses, shows progress and prints.
 */
import { Presets, SingleBar } from "cli-progress";
import { loadConfig } from "../../functions/src/lib/config";
import { createTopicPublisher } from "../../functions/src/lib/publisher";
import { compileValidators } from "../../functions/src/lib/schema";
import {
  TARGET_OPTIONS,
  TARGET_USAGE,
  UsageError,
  checkTenantId,
  connect,
  deployConfigValue,
  runCli,
} from "./lib/operator-cli";
import {
  DeadLetterQueue,
  FAILURE_REASONS,
  type ItemResult,
  type Outcome,
  type ReplayItem,
  deadLetterItem,
  failureItems,
  replayChunk,
  selectFailures,
  summarise,
} from "./lib/replay";

const USAGE = `Usage: npm run replay -- [options]

Replays the records kept in failed_logs (by default), or with --dead-letters the messages held
on the dead-letter subscription, by publishing them to the ingest topic with their log_ids. A
failure entry is deleted (a dead letter acked) only once its records are found stored.
invalid_record and invalid_message entries fail the schema again: they stay, as still failing.

  --tenant T                     only this tenant (repeatable; default: every tenant)
  --reason R                     only these reasons (repeatable or R,R; ${FAILURE_REASONS.join(", ")})
  --since ISO / --until ISO      only failures recorded (failed_at) in [since, until)
  --dead-letters                 replay the dead-letter subscription instead of failed_logs
  --topic T                      the ingest topic (default: INGEST_TOPIC, else deploy/config.env)
  --wait S                       longest wait for a chunk's records to be stored (default 60)
  --dry-run                      list what would be done; publish, delete and ack nothing
  --json                         print only the summary's JSON line
${TARGET_USAGE}

Exit codes: 0 nothing left failing, 1 something still failing, 2 usage, 3 the replay itself
failed (a service unreachable, say).`;

const CHUNK = 100;

const OPTIONS = {
  ...TARGET_OPTIONS,
  tenant: { type: "string", multiple: true },
  reason: { type: "string", multiple: true },
  since: { type: "string" },
  until: { type: "string" },
  "dead-letters": { type: "boolean" },
  topic: { type: "string" },
  wait: { type: "string", default: "60" },
  "dry-run": { type: "boolean" },
  json: { type: "boolean" },
} as const;

const DRY_RUN_VERB: Partial<Record<Outcome, string>> = {
  replayed: "would replay",
  already_stored: "already stored (entry would go)",
};

function describe(result: ItemResult, dryRun: boolean): string {
  const outcome =
    result.outcomes.find((o) => o === "still_failing") ?? result.outcomes[0] ?? "still_failing";
  const verb = (dryRun && DRY_RUN_VERB[outcome]) || outcome.replace("_", " ");
  return `${verb}: ${result.label}${result.why ? ` (${result.why})` : ""}`;
}

runCli("replay", USAGE, { options: OPTIONS }, async ({ values }) => {
  const tenants = (values.tenant ?? []).map(checkTenantId);
  const reasons = (values.reason ?? []).flatMap((value) => value.split(","));
  const badReason = reasons.find((reason) => !FAILURE_REASONS.includes(reason));
  if (badReason !== undefined) throw new UsageError(`"${badReason}" is not a failure reason`);
  const time = (name: "since" | "until") => {
    if (values[name] === undefined) return undefined;
    const date = new Date(values[name]);
    if (!Number.isFinite(date.getTime())) throw new UsageError(`--${name} is not a time`);
    return date;
  };
  const filters = { tenants, reasons, since: time("since"), until: time("until") };
  const waitSeconds = Number(values.wait);
  // Dead letters stay leased for ten minutes at most: the wait must end well before.
  if (!(waitSeconds >= 0 && waitSeconds <= 540)) throw new UsageError("--wait is 0 to 540 seconds");
  const selectors = [values.tenant, values.reason, values.since, values.until];
  if (values["dead-letters"] && selectors.some((value) => value !== undefined)) {
    throw new UsageError("--tenant, --reason, --since and --until select failed_logs entries");
  }
  const dryRun = values["dry-run"] === true;
  const config = loadConfig(process.env);
  const validators = compileValidators(config);
  const target = connect(values);
  const topic = values.topic ?? process.env.INGEST_TOPIC ?? deployConfigValue("INGEST_TOPIC") ?? "";
  const log = (line: string) => (values.json ? undefined : console.log(line));
  log(`${dryRun ? "dry run: " : ""}${target.description}; ingest topic ${topic}`);
  const bar = new SingleBar(
    { stream: process.stderr, format: "replay [{bar}] {value}/{total} | ETA {eta}s" },
    Presets.shades_classic,
  );
  const results: ItemResult[] = [];
  const deps = {
    firestore: target.firestore,
    publisher: createTopicPublisher(target.pubsub, topic, config),
    dryRun,
    waitMs: waitSeconds * 1000,
  };
  const replay = async (items: ReplayItem[]) => {
    results.push(...(await replayChunk(items, deps)));
    bar.increment(items.length);
  };
  try {
    if (!dryRun && !(await target.pubsub.topic(topic).exists())[0]) {
      throw new Error(`The ingest topic ${topic} does not exist in project ${target.project}`);
    }
    if (values["dead-letters"]) {
      const queue = await DeadLetterQueue.open(target.pubsub, target.deadLetterSubscription);
      log(`dead letters: ${queue.subscription}`);
      bar.start(0, 0);
      try {
        for (let total = 0; ;) {
          const messages = await queue.pull(CHUNK);
          if (messages.length === 0) break;
          bar.setTotal((total += messages.length));
          await replay(messages.map((message) => deadLetterItem(message, queue, validators)));
        }
      } finally {
        await queue.close();
      }
    } else {
      const refs = await selectFailures(target.firestore, filters);
      bar.start(refs.length, 0);
      for (let start = 0; start < refs.length; start += CHUNK) {
        const chunk = refs.slice(start, start + CHUNK);
        await replay(
          await failureItems(target.firestore, chunk, validators, config.maxMessageBytes),
        );
      }
    }
  } finally {
    bar.stop();
    await target.close();
  }
  for (const result of results) {
    if (dryRun || result.why !== undefined) log(describe(result, dryRun));
  }
  const summary = summarise(results);
  log(
    `${dryRun ? "would replay" : "replayed"} ${summary.replayed}, already stored ` +
      `${summary.already_stored}, still failing ${summary.still_failing} (records)`,
  );
  console.log(JSON.stringify({ dry_run: dryRun, ...summary }));
  return summary.still_failing > 0 ? 1 : 0;
});

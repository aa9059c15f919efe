/**
 * The release scripts, checked without a cloud project:
 * - scripts/ship/deploy.sh --dry-run prints the whole plan, runs nothing, and refuses unsafe settings;
 *   the functions' options in it are the ones declared in their triggers, and it turns on the TTL
 *   policies and creates the log-based metrics and alert policies;
 * - every flag of every gcloud command in the deploy and teardown plans exists in that command's
 *   `gcloud ... --help` (the installed Google Cloud SDK is the reference), so a misspelled or
 *   removed flag fails here instead of half-way through a real deploy;
 * - the upload set of functions/ holds only the compiled code and the manifests, and it installs
 *   and loads with production dependencies only;
 * - run for real against a fake `gcloud` (a script answering from a table) in a copy of the
 *   release files, deploy.sh does the right next thing after each answer a real project gives
 *   that no dry run shows: an organization policy refusing allUsers, a function labelled by a
 *   deploy whose later step failed, an unchanged trigger, an API still "disabled" right after
 *   enabling, a permission error whose text holds "404"; and a second run in a row changes
 *   nothing. Every command it ran passes the same --help check.
 */
import { expect } from "chai";
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const FUNCTIONS_DIR = path.join(REPO_ROOT, "functions");
const CONFIG_FILE = path.join(REPO_ROOT, "deploy", "config.env");
const PROJECT = "demo-sample-123";

// ---------------------------------------------------------------------------------------------
// Running the scripts

/** Every key deploy/config.env sets: deploy.sh refuses a different value in its environment. */
function configKeys(): string[] {
  return fs
    .readFileSync(CONFIG_FILE, "utf8")
    .split("\n")
    .map((line) => /^\s*([A-Za-z_][A-Za-z0-9_]*)=/.exec(line)?.[1])
    .filter((key): key is string => key !== undefined);
}

/** This process's environment minus whatever would make a deploy refuse or differ. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const drop = new Set(configKeys());
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("FAULT_") && !drop.has(name)) env[name] = value;
  }
  return { ...env, ...extra };
}

/**
 * A PATH whose gcloud, npm, npx and firebase only record that they were called, so a dry run
 * that runs anything is caught.
 */
function tripwirePath(dir: string): { env: Record<string, string>; calls: string } {
  const calls = path.join(dir, "calls.log");
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  for (const tool of ["gcloud", "npm", "npx", "firebase"]) {
    const stub = path.join(bin, tool);
    fs.writeFileSync(stub, `#!/bin/sh\necho "${tool} $*" >> '${calls}'\nexit 97\n`);
    fs.chmodSync(stub, 0o755);
  }
  return { env: { PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` }, calls };
}

interface ScriptRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The "+ " lines, split into words the way the shell would. */
  readonly commands: PlanCommand[];
}

interface PlanCommand {
  readonly line: string;
  readonly argv: string[];
  readonly check: boolean;
}

function runScript(script: string, args: string[], env: NodeJS.ProcessEnv): ScriptRun {
  const result = spawnSync("bash", [path.resolve(REPO_ROOT, "scripts", "ship", script), ...args], {
    cwd: REPO_ROOT,
    env,
    encoding: "utf8",
    // A run loads the functions (from source in a dry run): allow for a busy shared machine.
    timeout: 180_000,
  });
  if (result.error) throw result.error;
  const commands = result.stdout
    .split("\n")
    .filter((line) => line.startsWith("+ "))
    .map((line) => ({
      line,
      argv: shellWords(line.slice(2)),
      check: / {2}# check: /.test(line),
    }));
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, commands };
}

/** Splits one line into words like the shell: quotes, backslashes, and a trailing # comment. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated ' in: ${line}`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i += 1;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === "\\" && '"\\$`'.includes(line[i + 1] ?? "x")) i += 1;
        word += line[i];
        i += 1;
      }
      if (i >= line.length) throw new Error(`unterminated " in: ${line}`);
      inWord = true;
      i += 1;
    } else if (c === "\\") {
      word += line[i + 1] ?? "";
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i += 1;
    } else if (c === "#" && !inWord) {
      break;
    } else {
      word += c;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) words.push(word);
  return words;
}

let openDemoRun: ScriptRun | undefined;

/**
 * One full dry run (each loads the functions from source: seconds of CPU) for the tests of three
 * flags at once: an open demo (AUTH_MODE=disabled with --allow-open-demo) in Europe, notifying a
 * channel given by flag.
 */
function openDemoInEurope(): ScriptRun {
  if (openDemoRun) return openDemoRun;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rdp-open-demo-"));
  const config = path.join(dir, "open.env");
  const text = fs.readFileSync(CONFIG_FILE, "utf8");
  fs.writeFileSync(config, text.replace(/^AUTH_MODE=.*$/m, "AUTH_MODE=disabled"));
  const args = ["--config", config, "--allow-open-demo", "--region", "europe-west1"];
  try {
    openDemoRun = runScript(
      "deploy.sh",
      ["--project", PROJECT, "--dry-run", ...args, "--notification-channel", "1234567890"],
      cleanEnv(),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return openDemoRun;
}

// ---------------------------------------------------------------------------------------------
// Checking flags against `gcloud ... --help`

const GCLOUD_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  CLOUDSDK_CORE_DISABLE_PROMPTS: "1",
  PAGER: "cat",
  CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: "true",
};

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}

/** The body of a man-page section ("SYNOPSIS", "GCLOUD WIDE FLAGS", ...) of a help text. */
function section(help: string, title: string): string {
  const start = help.search(new RegExp(`^${title}$`, "m"));
  if (start < 0) return "";
  const rest = help.slice(start + title.length);
  const end = rest.search(/^[A-Z][A-Z0-9 ]+$/m);
  return end < 0 ? rest : rest.slice(0, end);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Resolves gcloud command paths and their flags from the installed SDK's --help, cached. */
class GcloudHelp {
  private readonly cache = new Map<string, Promise<string | null>>();
  /** Commands already resolved, by their path, so "describe ingest" reuses "describe process". */
  private readonly commands = new Map<string, { path: string[]; help: string }>();
  /** Resolutions under way, by their first two words: one gcloud run per command. */
  private readonly resolving = new Map<string, Promise<unknown>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  /** The help text of `gcloud WORDS --help`, or null when gcloud rejects WORDS. */
  help(words: readonly string[]): Promise<string | null> {
    const key = words.join(" ");
    let text = this.cache.get(key);
    if (text === undefined) {
      text = this.limited(() =>
        execFileAsync("gcloud", [...words, "--help"], {
          env: GCLOUD_ENV,
          maxBuffer: 32 * 1024 * 1024,
          timeout: 120_000,
        }).then(
          (result) => stripAnsi(result.stdout),
          () => null,
        ),
      );
      this.cache.set(key, text);
    }
    return text;
  }

  /** Six gcloud processes at a time: each is a Python interpreter. */
  private async limited<T>(task: () => Promise<T>): Promise<T> {
    while (this.running >= 6) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running += 1;
    try {
      return await task();
    } finally {
      this.running -= 1;
      this.waiting.shift()?.();
    }
  }

  /**
   * The command that ARGS (what follows "gcloud") runs: the leading words that the help of all of
   * them names (its NAME section), when that help is a command's rather than a group's.
   * Positionals after it are not part of it.
   */
  async command(args: readonly string[]): Promise<{ path: string[]; help: string }> {
    const words: string[] = [];
    for (const arg of args) {
      if (arg.startsWith("-")) break;
      words.push(arg);
    }
    const neighbourhood = words.slice(0, 2).join(" ");
    const known = () =>
      [...this.commands.values()].find(({ path }) => path.every((word, i) => words[i] === word));
    // Commands of one group resolve one after another, so a second one reuses the first's help.
    while (this.resolving.has(neighbourhood) && !known()) {
      await this.resolving.get(neighbourhood)?.catch(() => undefined);
    }
    const found = known();
    if (found) return found;
    const resolution = this.resolve(words);
    this.resolving.set(neighbourhood, resolution);
    try {
      return await resolution;
    } finally {
      if (this.resolving.get(neighbourhood) === resolution) this.resolving.delete(neighbourhood);
    }
  }

  /** Whether the static tree has ARGS' command (not a group) and every one of its --flags. */
  private async treeKnowsAll(args: readonly string[]): Promise<boolean> {
    const tree = await gcloudStaticTree().catch(() => undefined);
    if (tree === undefined) return false;
    let node = tree;
    for (const arg of args) {
      const next = arg.startsWith("-") ? undefined : node.commands[arg];
      if (next === undefined) break;
      node = next;
    }
    if (node === tree || Object.keys(node.commands).length > 0) return false;
    return args
      .filter((arg) => arg.startsWith("--"))
      .map((arg) => arg.split("=")[0] as string)
      .every((flag) => flag in node.flags || flag in tree.flags);
  }

  private async resolve(words: string[]): Promise<{ path: string[]; help: string }> {
    const help = await this.help(words);
    if (help === null) {
      throw new Error(`"gcloud ${words.join(" ")}" is not a gcloud command or group`);
    }
    const name = /^\s*gcloud\s+(\S.*?)\s+-\s/m.exec(section(help, "NAME"))?.[1] ?? "";
    const commandPath = name.split(/\s+/);
    const groupSynopsis = new RegExp(
      `^\\s*gcloud\\s+${commandPath.map(escapeRegExp).join("\\s+")}\\s+(GROUP|COMMAND)\\b`,
      "m",
    );
    if (!commandPath.every((word, i) => words[i] === word)) {
      throw new Error(`"gcloud ${words.join(" ")}" names "${name}" in its help`);
    }
    if (groupSynopsis.test(section(help, "SYNOPSIS"))) {
      throw new Error(`"gcloud ${words.join(" ")}" is a command group, not a command`);
    }
    const command = { path: commandPath, help };
    this.commands.set(commandPath.join(" "), command);
    return command;
  }

  /**
   * The --flags of ARGS that its command's --help does not list. The SDK's own static command
   * tree (what gcloud's completion reads, written with each release) answers first, in one
   * Python start for every command; --help decides whatever the tree does not vouch for.
   */
  async unknownFlags(args: readonly string[]): Promise<string[]> {
    if (await this.treeKnowsAll(args)) return [];
    const { help } = await this.command(args);
    const known = new Set<string>();
    const listed = section(help, "SYNOPSIS") + section(help, "GCLOUD WIDE FLAGS");
    for (const match of listed.matchAll(/--(\[no-\])?([a-z0-9][a-z0-9-]*)/g)) {
      known.add(`--${match[2]}`);
      if (match[1]) known.add(`--no-${match[2]}`);
    }
    return args
      .filter((arg) => arg.startsWith("--"))
      .map((arg) => arg.split("=")[0] as string)
      .filter((flag) => !known.has(flag));
  }
}

interface CommandTree {
  readonly commands: Readonly<Record<string, CommandTree>>;
  readonly flags: Readonly<Record<string, unknown>>;
}

let staticTree: Promise<CommandTree> | undefined;

/** The installed SDK's data/cli/gcloud_completions.py, as data. */
function gcloudStaticTree(): Promise<CommandTree> {
  staticTree ??= (async () => {
    const sdkRoot = path.dirname(path.dirname(fs.realpathSync(await which("gcloud"))));
    const file = path.join(sdkRoot, "data", "cli", "gcloud_completions.py");
    const load =
      "import importlib.util, json, sys; s = importlib.util.spec_from_file_location('t', sys.argv[1]); " +
      "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); " +
      "json.dump(m.STATIC_COMPLETION_CLI_TREE, sys.stdout)";
    // The SDK's own Python, as gcloud picks it: it ships this file compiled (__pycache__), which
    // loads in a third of the time another Python takes to compile it.
    const bundled = path.join(sdkRoot, "platform", "bundledpythonunix", "bin", "python3");
    const python = process.env.CLOUDSDK_PYTHON ?? (fs.existsSync(bundled) ? bundled : "python3");
    const { stdout } = await execFileAsync(python, ["-c", load, file], {
      maxBuffer: 256 * 1024 * 1024,
      timeout: 120_000,
    });
    return JSON.parse(stdout) as CommandTree;
  })();
  return staticTree;
}

async function which(command: string): Promise<string> {
  return (await execFileAsync("bash", ["-c", `command -v ${command}`])).stdout.trim();
}

/** One cache of help texts for every test of this file. */
const gcloudHelp = new GcloudHelp();

/** The --flags of a Firebase CLI command (ARGV[0] the binary) that its --help does not list. */
async function firebaseUnknownFlags(argv: readonly string[]): Promise<string[]> {
  const [binary, command] = argv as [string, string];
  const known = new Set<string>();
  for (const words of [["--help"], [command, "--help"]]) {
    const { stdout } = await execFileAsync(binary, words, { env: process.env, timeout: 60_000 });
    for (const match of stdout.matchAll(/^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)/gm))
      known.add(match[1] as string);
  }
  return argv
    .filter((arg) => arg.startsWith("--"))
    .map((arg) => arg.split("=")[0] as string)
    .filter((flag) => !known.has(flag));
}

// ---------------------------------------------------------------------------------------------
// The build and the upload set

function ensureFunctionsBuilt(): void {
  if (fs.existsSync(path.join(FUNCTIONS_DIR, "lib", "index.js"))) return;
  const tsc = spawnSync(
    path.join(REPO_ROOT, "node_modules", ".bin", "tsc"),
    ["-p", "tsconfig.build.json"],
    { cwd: REPO_ROOT, encoding: "utf8", timeout: 120_000 },
  );
  expect(tsc.status, `tsc -p tsconfig.build.json failed:\n${tsc.stdout}${tsc.stderr}`).to.equal(0);
  expect(fs.existsSync(path.join(FUNCTIONS_DIR, "lib", "index.js"))).to.equal(true);
}

function flagValue(command: PlanCommand, flag: string): string | undefined {
  const arg = command.argv.find((word) => word.startsWith(`${flag}=`));
  return arg?.slice(flag.length + 1);
}

function findCommand(commands: PlanCommand[], ...prefix: string[]): PlanCommand {
  const found = commands.find(
    (command) => !command.check && prefix.every((word, i) => command.argv[i] === word),
  );
  if (!found) throw new Error(`the plan has no "${prefix.join(" ")}" command`);
  return found;
}

function indexOf(commands: PlanCommand[], command: PlanCommand): number {
  return commands.indexOf(command);
}

interface AlertPolicy {
  readonly filter: string;
  readonly threshold: number;
  readonly duration: string;
  readonly channels: string[];
}

/** The alert policies a plan creates or updates (their --policy JSON), by display name. */
function alertPolicies(commands: { argv: string[] }[]): Record<string, AlertPolicy> {
  const policies: Record<string, AlertPolicy> = {};
  for (const command of commands) {
    if (command.argv.slice(0, 4).join(" ") !== "gcloud alpha monitoring policies") continue;
    const json = command.argv.find((arg) => arg.startsWith("--policy="))?.slice("--policy=".length);
    if (json === undefined) continue;
    const policy = JSON.parse(json);
    const condition = policy.conditions[0].conditionThreshold;
    policies[policy.displayName] = {
      filter: condition.filter,
      threshold: condition.thresholdValue,
      duration: condition.duration,
      channels: policy.notificationChannels,
    };
  }
  return policies;
}

/** The Firebase CLI's words of a plan line ("env VAR=... .../firebase deploy ..."), if any. */
function firebaseArgv(command: PlanCommand): string[] | undefined {
  const at = command.argv.findIndex((word) => word.endsWith("/firebase"));
  return at < 0 ? undefined : command.argv.slice(at);
}

// ---------------------------------------------------------------------------------------------

describe("release: deploy and teardown plans, upload set, production install", function () {
  this.timeout(180_000); // each dry run loads the functions from source

  let scratch: string;
  let tripwire: { env: Record<string, string>; calls: string };
  let deploy: ScriptRun;
  let teardown: ScriptRun;
  const gcloud = gcloudHelp;

  before(function () {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "rdp-deploy-plan-"));
    tripwire = tripwirePath(scratch);
    deploy = runScript("deploy.sh", ["--project", PROJECT, "--dry-run"], cleanEnv(tripwire.env));
    teardown = runScript(
      "teardown.sh",
      ["--project", PROJECT, "--dry-run", "--delete-data"],
      cleanEnv(tripwire.env),
    );
  });

  after(function () {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it("deploy --dry-run exits 0, runs nothing and prints the whole plan in order", function () {
    expect(deploy.status, deploy.stderr).to.equal(0);
    expect(fs.existsSync(tripwire.calls), "the dry run ran a tool").to.equal(false);
    const { commands } = deploy;

    const build = findCommand(commands, "npm");
    expect(build.argv.slice(-2)).to.deep.equal(["run", "build"]);
    const apis = findCommand(commands, "gcloud", "services", "enable");
    const database = findCommand(commands, "gcloud", "firestore", "databases", "create");
    const rules = commands.find((c) => firebaseArgv(c)?.[1] === "deploy");
    expect(rules, "no firebase deploy of the rules").to.not.equal(undefined);
    expect(rules?.argv).to.include("--only=firestore").and.include("--non-interactive");
    // The Firebase CLI bills its calls to the project deployed to, whatever the ADC's quota project.
    expect(rules?.argv).to.include(`GOOGLE_CLOUD_QUOTA_PROJECT=${PROJECT}`);
    expect(flagValue(database, "--location")).to.equal("nam5"); // REGION=us-central1 in config.env
    const topic = findCommand(commands, "gcloud", "pubsub", "topics", "create", "rdp-ingest");
    const deadLetterTopic = findCommand(
      commands,
      "gcloud",
      "pubsub",
      "topics",
      "create",
      "rdp-ingest-dead-letter",
    );
    const hold = findCommand(commands, "gcloud", "pubsub", "subscriptions", "create");
    expect(flagValue(hold, "--topic")).to.equal("rdp-ingest-dead-letter");
    expect(flagValue(hold, "--expiration-period")).to.equal("never");
    expect(flagValue(hold, "--message-retention-duration")).to.equal("31d"); // the Pub/Sub maximum

    const ingest = findCommand(commands, "gcloud", "functions", "deploy", "ingest");
    const processFn = findCommand(commands, "gcloud", "functions", "deploy", "process");
    for (const fn of [ingest, processFn]) {
      expect(fn.argv).to.include("--gen2").and.include("--runtime=nodejs22");
      expect(flagValue(fn, "--source")).to.equal(FUNCTIONS_DIR);
      expect(flagValue(fn, "--entry-point")).to.equal(fn.argv[3]);
      for (const flag of ["--memory", "--cpu", "--concurrency", "--timeout"]) {
        expect(flagValue(fn, flag), `${fn.argv[3]} ${flag}`).to.be.a("string");
      }
      expect(flagValue(fn, "--min-instances")).to.equal("0");
      expect(flagValue(fn, "--max-instances")).to.match(/^[1-9][0-9]*$/);
      expect(flagValue(fn, "--run-service-account")).to.match(/@demo-sample-123\.iam\./);
      expect(fn.argv).to.include("--quiet");
    }
    expect(ingest.argv).to.include("--trigger-http");
    // Opened by its own step (with a fallback), never by the deploy itself.
    expect(ingest.argv.filter((arg) => arg.includes("allow-unauthenticated"))).to.deep.equal([]);
    const open = findCommand(
      commands,
      "gcloud",
      "functions",
      "add-invoker-policy-binding",
      "ingest",
    );
    expect(flagValue(open, "--member")).to.equal("allUsers");
    expect(processFn.argv).to.include("--retry").and.include("--no-allow-unauthenticated");
    expect(processFn.argv).to.not.include("--allow-unauthenticated");
    expect(processFn.argv).to.not.include("--trigger-http");
    expect(flagValue(processFn, "--trigger-topic")).to.equal("rdp-ingest");
    expect(flagValue(processFn, "--trigger-service-account")).to.match(/^rdp-process-trigger@/);
    const envVars = flagValue(processFn, "--set-env-vars") ?? "";
    expect(envVars).to.include("INGEST_TOPIC=rdp-ingest").and.include("AUTH_MODE=api_key");
    expect(envVars).to.not.match(/FAULT_/);
    const timeout = Number(flagValue(processFn, "--timeout")?.replace(/s$/, ""));
    expect(envVars).to.include(`PROCESS_TIMEOUT_SECONDS=${timeout}`);

    const invoker = findCommand(
      commands,
      "gcloud",
      "functions",
      "add-invoker-policy-binding",
      "process",
    );
    expect(flagValue(invoker, "--member")).to.match(/^serviceAccount:rdp-process-trigger@/);
    const deadLetters = findCommand(commands, "gcloud", "pubsub", "subscriptions", "update");
    expect(flagValue(deadLetters, "--dead-letter-topic")).to.equal(
      "projects/demo-sample-123/topics/rdp-ingest-dead-letter",
    );
    expect(Number(flagValue(deadLetters, "--max-delivery-attempts"))).to.be.within(5, 100);
    expect(Number(flagValue(deadLetters, "--ack-deadline"))).to.be.at.least(timeout);
    expect(flagValue(deadLetters, "--min-retry-delay")).to.match(/^\d+s$/);
    expect(flagValue(deadLetters, "--max-retry-delay")).to.match(/^\d+s$/);
    const subscriber = findCommand(
      commands,
      "gcloud",
      "pubsub",
      "subscriptions",
      "add-iam-policy-binding",
    );
    expect(flagValue(subscriber, "--role")).to.equal("roles/pubsub.subscriber");
    const publisher = findCommand(commands, "gcloud", "pubsub", "topics", "add-iam-policy-binding");
    expect(publisher.argv[4]).to.equal("rdp-ingest");
    expect(flagValue(publisher, "--member")).to.match(/^serviceAccount:rdp-ingest@/);
    expect(flagValue(publisher, "--role")).to.equal("roles/pubsub.publisher");

    // The options come from the triggers (functions/src/ingest.ts, process.ts), not the config.
    expect(flagValue(ingest, "--ingress-settings")).to.equal("all");
    expect(flagValue(processFn, "--ingress-settings")).to.equal("internal-only");
    expect(
      configKeys().filter((key) => /_(MEMORY|CPU|CONCURRENCY|INSTANCES|INGRESS)$/.test(key)),
    ).to.deep.equal([]);

    // TTL on expire_at for processed, failed and dead-lettered documents, each after its check.
    const ttls = commands.filter(
      (c) => c.argv.slice(0, 5).join(" ") === "gcloud firestore fields ttls update",
    );
    expect(ttls.map((c) => flagValue(c, "--collection-group"))).to.deep.equal([
      "processed_logs",
      "failed_logs",
      "dead_letters",
    ]);
    for (const ttl of ttls) {
      expect(ttl.argv[5]).to.equal("expire_at");
      expect(ttl.argv).to.include("--enable-ttl");
      expect(commands[indexOf(commands, ttl) - 1]?.check).to.equal(true);
    }
    // Two log-based metrics from their definition files, and three alert policies.
    const metrics = commands.filter(
      (c) => c.argv.slice(0, 4).join(" ") === "gcloud logging metrics create",
    );
    expect(metrics.map((c) => c.argv[4])).to.deep.equal(["rdp_records_failed", "rdp_ingest_5xx"]);
    for (const metric of metrics) {
      const file = fs.readFileSync(flagValue(metric, "--config-from-file") ?? "", "utf8");
      expect(file).to.match(/^filter: /m);
    }
    const policies = alertPolicies(commands);
    expect(Object.keys(policies)).to.have.members([
      "rdp: dead letters waiting",
      "rdp: records failed",
      "rdp: ingest 5xx",
    ]);
    const backlog = policies["rdp: dead letters waiting"];
    expect(backlog?.filter).to.include(
      'metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages"',
    );
    expect(backlog?.filter).to.include(
      'resource.label.subscription_id="rdp-ingest-dead-letter-hold"',
    );
    expect([backlog?.threshold, backlog?.duration]).to.deep.equal([0, "300s"]);
    expect(policies["rdp: records failed"]?.filter).to.include("user/rdp_records_failed");
    expect(policies["rdp: ingest 5xx"]?.filter).to.include("user/rdp_ingest_5xx");
    for (const policy of Object.values(policies)) expect(policy.channels).to.deep.equal([]);

    // Every create is preceded by the check that makes a re-run skip it.
    for (const create of commands.filter((c) => !c.check && c.argv.includes("create"))) {
      if (create.argv[1] === "beta") continue; // service identities: naturally idempotent
      const previous = commands[indexOf(commands, create) - 1];
      expect(previous?.check, `no check before: ${create.line}`).to.equal(true);
    }
    const order = [
      build,
      apis,
      database,
      rules as PlanCommand,
      ...ttls,
      topic,
      deadLetterTopic,
      hold,
    ];
    order.push(ingest, processFn, invoker, deadLetters, ...metrics);
    const positions = order.map((command) => indexOf(commands, command));
    expect(positions).to.deep.equal([...positions].sort((a, b) => a - b));
  });

  it("every flag of every gcloud and firebase command in both plans exists in its --help", async function () {
    // One `gcloud ... --help` run per command (a Python start each, six at a time): a minute or
    // more on these shared 2-core machines when busy. The later check of the fake runs reuses them.
    this.timeout(360_000);
    expect(teardown.status, teardown.stderr).to.equal(0);
    const lines = new Map<string, string[]>();
    for (const command of [...deploy.commands, ...teardown.commands]) {
      if (command.argv[0] === "gcloud") lines.set(command.line, command.argv.slice(1));
    }
    expect(lines.size).to.be.greaterThan(20);
    const problems: string[] = [];
    await Promise.all(
      [...lines].map(async ([line, args]) => {
        try {
          const unknown = await gcloud.unknownFlags(args);
          if (unknown.length > 0) problems.push(`${unknown.join(", ")} unknown in: ${line}`);
        } catch (error) {
          problems.push(`${(error as Error).message}: ${line}`);
        }
      }),
    );
    const firebase = deploy.commands.map(firebaseArgv).filter((argv) => argv !== undefined);
    expect(firebase).to.have.length.greaterThan(0);
    for (const argv of firebase) {
      const command = { line: argv.join(" ") };
      const unknown = await firebaseUnknownFlags(argv);
      if (unknown.length > 0) problems.push(`${unknown.join(", ")} unknown in: ${command.line}`);
    }
    expect(problems).to.deep.equal([]);
  });

  it("the flag check catches a misspelled flag and a misspelled command", async function () {
    this.timeout(120_000);
    expect(
      await gcloud.unknownFlags(["functions", "deploy", "process", "--retry", "--retyr"]),
    ).to.deep.equal(["--retyr"]);
    expect(
      await gcloud.unknownFlags(["functions", "describe", "process", "--gen2", "--v2"]),
    ).to.deep.equal(["--gen2"]);
    let failure: Error | undefined;
    await gcloud.unknownFlags(["pubsub", "topics", "crete", "x"]).catch((error: Error) => {
      failure = error;
    });
    expect(failure?.message).to.match(/not a gcloud command/);
  });

  it("refuses to deploy while FAULT_FAILURE_RATE is set in the environment", function () {
    const run = runScript(
      "deploy.sh",
      ["--project", PROJECT, "--dry-run"],
      cleanEnv({ ...tripwire.env, FAULT_FAILURE_RATE: "0.1" }),
    );
    expect(run.status).to.not.equal(0);
    expect(run.stderr).to.include("FAULT_FAILURE_RATE");
    expect(run.commands).to.deep.equal([]);
  });

  it("refuses FAULT_* in the config file, and AUTH_MODE=disabled without --allow-open-demo", function () {
    // Each full dry run loads the functions from source (tsx): seconds of CPU, more when busy.
    this.timeout(240_000);
    const config = fs.readFileSync(CONFIG_FILE, "utf8");
    const faulty = path.join(scratch, "faulty.env");
    fs.writeFileSync(faulty, `${config}\nFAULT_CRASH_RATE=0.5\n`);
    const fault = runScript(
      "deploy.sh",
      ["--project", PROJECT, "--dry-run", "--config", faulty],
      cleanEnv(tripwire.env),
    );
    expect(fault.status).to.not.equal(0);
    expect(fault.stderr).to.include("FAULT_CRASH_RATE");

    const open = path.join(scratch, "open.env");
    fs.writeFileSync(open, config.replace(/^AUTH_MODE=.*$/m, "AUTH_MODE=disabled"));
    const args = ["--project", PROJECT, "--dry-run", "--config", open];
    const refused = runScript("deploy.sh", args, cleanEnv(tripwire.env));
    expect(refused.status).to.not.equal(0);
    expect(refused.stderr).to.include("--allow-open-demo");
    const allowed = openDemoInEurope();
    expect(allowed.status, allowed.stderr).to.equal(0);
    expect(allowed.stdout).to.include("AUTH_MODE=disabled");
  });

  it("alert policies notify the channel given by flag, as a full channel name", function () {
    // Each full dry run loads the functions from source (tsx): seconds of CPU, more when busy.
    this.timeout(240_000);
    const run = openDemoInEurope();
    expect(run.status, run.stderr).to.equal(0);
    const policies = Object.values(alertPolicies(run.commands));
    expect(policies).to.have.length(3);
    for (const policy of policies) {
      expect(policy.channels).to.deep.equal([
        `projects/${PROJECT}/notificationChannels/1234567890`,
      ]);
    }
  });

  it("teardown --dry-run exits 0, runs nothing and prints the deletes", function () {
    expect(teardown.status, teardown.stderr).to.equal(0);
    expect(fs.existsSync(tripwire.calls), "the dry run ran a tool").to.equal(false);
    const { commands } = teardown;
    findCommand(commands, "gcloud", "functions", "delete", "process");
    findCommand(commands, "gcloud", "functions", "delete", "ingest");
    findCommand(commands, "gcloud", "pubsub", "topics", "delete", "rdp-ingest");
    findCommand(commands, "gcloud", "pubsub", "topics", "delete", "rdp-ingest-dead-letter");
    findCommand(commands, "gcloud", "pubsub", "subscriptions", "delete");
    findCommand(commands, "gcloud", "projects", "remove-iam-policy-binding");
    const accounts = commands.filter(
      (c) => c.argv.slice(0, 4).join(" ") === "gcloud iam service-accounts delete",
    );
    expect(accounts).to.have.length(4);
    findCommand(commands, "gcloud", "firestore", "bulk-delete");
    findCommand(commands, "gcloud", "alpha", "monitoring", "policies", "delete");
    findCommand(commands, "gcloud", "logging", "metrics", "delete", "rdp_records_failed");
    findCommand(commands, "gcloud", "logging", "metrics", "delete", "rdp_ingest_5xx");
    // Kept data keeps expiring: teardown leaves the TTL policies on.
    expect(commands.some((c) => c.argv.includes("--disable-ttl"))).to.equal(false);

    const keep = runScript(
      "teardown.sh",
      ["--project", PROJECT, "--dry-run"],
      cleanEnv(tripwire.env),
    );
    expect(keep.status, keep.stderr).to.equal(0);
    expect(keep.commands.some((c) => c.argv.includes("bulk-delete"))).to.equal(false);
    expect(keep.stdout).to.match(/Firestore data left in place/);
  });

  it("firestore.indexes.json is valid for the Firebase CLI and exempts the rising timestamps", function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { FirestoreApi } = require("firebase-tools/lib/firestore/api");
    const spec = JSON.parse(
      fs.readFileSync(path.join(REPO_ROOT, "firestore.indexes.json"), "utf8"),
    );
    const api = new FirestoreApi();
    api.validateSpec(api.upgradeOldSpec(spec));
    const exempt = (
      spec.fieldOverrides as { collectionGroup: string; fieldPath: string; indexes: unknown[] }[]
    )
      .filter((field) => field.indexes.length === 0)
      .map((field) => `${field.collectionGroup}.${field.fieldPath}`);
    expect(exempt).to.include.members([
      "processed_logs.received_at",
      "processed_logs.processed_at",
      "failed_logs.failed_at",
      "api_keys.created_at",
      "processed_logs.otlp",
      // Raw text in an index is a second copy of personal data, and costly (docs/OPERATIONS.md).
      "processed_logs.original_text",
      "processed_logs.modified_data",
      "failed_logs.original_text",
      "dead_letters.data_base64",
    ]);
    // api_keys are looked up by tenant_id: that field must stay indexed.
    expect(exempt).to.not.include("api_keys.tenant_id");
  });

  it("gcloud uploads only lib/, proto/, package.json and package-lock.json from functions/", function () {
    this.timeout(180_000);
    ensureFunctionsBuilt();
    const listing = spawnSync("gcloud", ["meta", "list-files-for-upload", FUNCTIONS_DIR], {
      env: GCLOUD_ENV,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(listing.status, listing.stderr).to.equal(0);
    const files = listing.stdout
      .split("\n")
      .filter(Boolean)
      .map((file) => file.replace(/\\/g, "/"));
    expect(files).to.include.members([
      "lib/index.js",
      "package.json",
      "package-lock.json",
      "proto/opentelemetry/proto/collector/logs/v1/logs_service.proto",
    ]);
    const unexpected = files.filter(
      (file) =>
        !["package.json", "package-lock.json"].includes(file) &&
        !file.startsWith("lib/") &&
        !file.startsWith("proto/"),
    );
    expect(unexpected, "files outside lib/, proto/ and the manifests").to.deep.equal([]);
    const forbidden = files.filter(
      (file) =>
        /(^|\/)(src|test|tests|load|node_modules|__tests__)\//.test(file) ||
        (/\.ts$/.test(file) && !/\.d\.ts$/.test(file)) ||
        /\.(test|spec)\.js$/.test(file),
    );
    expect(forbidden).to.deep.equal([]);
  });

  it("the upload set installs with production dependencies only and exports both entry points", function () {
    this.timeout(180_000);
    ensureFunctionsBuilt();
    const manifest = JSON.parse(fs.readFileSync(path.join(FUNCTIONS_DIR, "package.json"), "utf8"));
    expect(manifest.main).to.equal("lib/index.js");
    expect(manifest.devDependencies ?? {}, "functions/package.json devDependencies").to.deep.equal(
      {},
    );
    // Cloud Build's Node.js buildpack runs these; the upload has no TypeScript to build.
    for (const script of [
      "build",
      "gcp-build",
      "preinstall",
      "install",
      "postinstall",
      "prepare",
    ]) {
      expect(manifest.scripts?.[script], `functions/package.json scripts.${script}`).to.equal(
        undefined,
      );
    }

    const app = path.join(scratch, "app");
    fs.mkdirSync(app);
    for (const file of ["package.json", "package-lock.json"]) {
      fs.copyFileSync(path.join(FUNCTIONS_DIR, file), path.join(app, file));
    }
    // What the function loads at start-up: the compiled code and the OTLP definitions.
    for (const folder of ["lib", "proto"]) {
      fs.cpSync(path.join(FUNCTIONS_DIR, folder), path.join(app, folder), { recursive: true });
    }

    const env = cleanEnv();
    for (const name of ["npm_config_prefix", "npm_config_local_prefix", "npm_config_global"]) {
      delete env[name];
    }
    const install = spawnSync(
      "npm",
      // Offline first: the packages are in npm's cache since the repository's own install.
      ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
      { cwd: app, env, encoding: "utf8", timeout: 170_000 },
    );
    expect(install.status, `npm ci failed:\n${install.stdout}${install.stderr}`).to.equal(0);

    const load = spawnSync(
      process.execPath,
      [
        "-e",
        'const m = require("./lib/index.js");' +
          "console.log(JSON.stringify({ ingest: typeof m.ingest, process: typeof m.process }));",
      ],
      { cwd: app, env, encoding: "utf8", timeout: 60_000 },
    );
    expect(load.status, `loading lib/index.js failed:\n${load.stdout}${load.stderr}`).to.equal(0);
    const exported = JSON.parse(load.stdout.trim().split("\n").pop() ?? "{}");
    expect(exported).to.deep.equal({ ingest: "function", process: "function" });
  });
});

// ---------------------------------------------------------------------------------------------
// deploy.sh run for real against a fake gcloud

/** One row of the fake's table: the first row whose pattern matches a call answers it. */
interface FakeAnswer {
  /** A bash regular expression (ERE), matched against "TOOL ARG ARG ..." (gcloud, firebase). */
  readonly match: string;
  /** Answers this many calls, then lets the rows below answer. */
  readonly times?: number;
  readonly exit?: number;
  readonly stdout?: string;
  readonly stderr?: string;
}

interface FakeCall {
  readonly tool: string;
  readonly argv: string[];
  readonly line: string;
  /** GOOGLE_CLOUD_QUOTA_PROJECT in the caller's environment. */
  readonly quotaProject: string;
}

/**
 * The fake `gcloud` (and `firebase`), in bash for speed (a run makes some 50 calls): logs each
 * call (words separated by \x1f, calls by \x1e), then answers from the table, one directory per
 * row (see Sandbox.deploy). A call no row matches succeeds silently, as a create or a grant does.
 */
const FAKE_TOOL = [
  // bash found directly, not through env: one process less for each of those calls.
  "#!/bin/bash",
  "# Builtins only where it can: a run makes some 50 calls on a busy machine.",
  "dir=$FAKE_CLOUD_DIR",
  'line="${0##*/} $*"',
  'printf \'%s\\x1f\' "${0##*/}" "${GOOGLE_CLOUD_QUOTA_PROJECT-}" "$@" >>"$dir/calls.log"',
  "printf '\\x1e' >>\"$dir/calls.log\"",
  'for row in "$dir"/rows/*; do',
  '  IFS= read -r match <"$row/match"',
  "  [[ $line =~ $match ]] || continue",
  "  if [[ -f $row/times ]]; then",
  '    used="" times=""',
  '    IFS= read -r used <"$row/used"',
  '    IFS= read -r times <"$row/times"',
  "    ((${#used} < times)) || continue",
  '    printf x >>"$row/used"',
  "  fi",
  '  out="" err="" status=0',
  '  IFS= read -r -d "" out <"$row/stdout"',
  '  IFS= read -r -d "" err <"$row/stderr"',
  '  IFS= read -r status <"$row/exit"',
  "  printf '%s' \"$out\"",
  "  printf '%s' \"$err\" >&2",
  '  exit "$status"',
  "done",
  "exit 0",
].join("\n");

const PROJECT_NUMBER = "123456789012";
const SA = (id: string) => `${id}@${PROJECT}.iam.gserviceaccount.com`;
const TRIGGER_SUBSCRIPTION = `projects/${PROJECT}/subscriptions/eventarc-us-central1-process-481-sub-102`;
const WANTED_TRIGGER = [
  `projects/${PROJECT}/topics/rdp-ingest`,
  SA("rdp-process-trigger"),
  "RETRY_POLICY_RETRY",
].join("\t");

/** The roles Google grants the service agents when their APIs are enabled. */
const AGENT_ROLES = [
  ["roles/cloudfunctions.serviceAgent", "gcf-admin-robot"],
  ["roles/run.serviceAgent", "serverless-robot-prod"],
  ["roles/eventarc.serviceAgent", "gcp-sa-eventarc"],
  ["roles/pubsub.serviceAgent", "gcp-sa-pubsub"],
].map(
  ([role, agent]) =>
    `${role}\tserviceAccount:service-${PROJECT_NUMBER}@${agent}.iam.gserviceaccount.com\n`,
);
const DEPLOYMENT_ROLES = [
  `roles/datastore.viewer\tserviceAccount:${SA("rdp-ingest")}\n`,
  `roles/datastore.user\tserviceAccount:${SA("rdp-process")}\n`,
  `roles/logging.logWriter\tserviceAccount:${SA("rdp-build")}\n`,
  `roles/artifactregistry.writer\tserviceAccount:${SA("rdp-build")}\n`,
  `roles/storage.objectAdmin\tserviceAccount:${SA("rdp-build")}\n`,
];

/** How gcloud reports an API error: "ERROR: (gcloud.<command>) <STATUS>: <message>". */
function gcloudError(command: string, status: string, message: string): FakeAnswer {
  return { match: "", exit: 1, stderr: `ERROR: (gcloud.${command}) ${status}: ${message}\n` };
}
function row(match: string, answer: Partial<FakeAnswer> = {}): FakeAnswer {
  return { ...answer, match };
}
const FUNCTION_NOT_FOUND = (name: string): FakeAnswer => ({
  match: "",
  exit: 1,
  // `gcloud functions` words its errors its own way (api_lib/functions/v1/util.py).
  stderr:
    `ERROR: (gcloud.functions.describe) ResponseError: status=[404], code=[Ok], message=[Function ` +
    `${name} in region us-central1 in project ${PROJECT} does not exist]\n`,
});
const NOT_FOUND = (command: string) =>
  gcloudError(command, "NOT_FOUND", "Resource not found (resource=x).");

/** The answers of a project deploy.sh has never touched (APIs enablable, billing on). */
function freshProject(): FakeAnswer[] {
  return [
    row("^gcloud projects describe ", { stdout: `${PROJECT_NUMBER}\n` }),
    row("^gcloud billing projects describe ", { stdout: "True\n" }),
    row("^gcloud projects get-iam-policy ", { stdout: AGENT_ROLES.join("") }),
    row("^gcloud firestore databases describe ", NOT_FOUND("firestore.databases.describe")),
    row("^gcloud auth application-default print-access-token", { stdout: "ya29.fake-token\n" }),
    row("^gcloud pubsub topics describe ", NOT_FOUND("pubsub.topics.describe")),
    row("^gcloud pubsub subscriptions describe rdp-ingest-dead-letter-hold ", {
      ...NOT_FOUND("pubsub.subscriptions.describe"),
    }),
    row("^gcloud iam service-accounts describe ", {
      ...gcloudError("iam.service-accounts.describe", "NOT_FOUND", "Unknown service account"),
    }),
    row("^gcloud functions describe ingest .*value\\(state", FUNCTION_NOT_FOUND("ingest")),
    row("^gcloud functions describe process .*value\\(state", FUNCTION_NOT_FOUND("process")),
    row("^gcloud run services (get-iam-policy|describe) ", NOT_FOUND("run.services.describe")),
    row("^gcloud functions describe process .*eventTrigger.trigger\\)", {
      stdout: `projects/${PROJECT}/locations/us-central1/triggers/process-481\n`,
    }),
    row("^gcloud eventarc triggers describe ", { stdout: `${TRIGGER_SUBSCRIPTION}\n` }),
    row(`^gcloud pubsub subscriptions describe ${TRIGGER_SUBSCRIPTION} `, {
      stdout: "10\t\t\t\t\n",
    }),
    row("^gcloud functions describe ingest .*serviceConfig.uri", {
      stdout: "https://ingest-x2d4-uc.a.run.app\n",
    }),
  ];
}

/** The answers of the same project after a complete deploy whose labels were HASHES. */
function deployedProject(hashes: { ingest: string; process: string }): FakeAnswer[] {
  return [
    row("^gcloud projects get-iam-policy ", {
      stdout: [...AGENT_ROLES, ...DEPLOYMENT_ROLES].join(""),
    }),
    row("^gcloud firestore databases describe ", { stdout: "FIRESTORE_NATIVE\tnam5\n" }),
    row("^gcloud pubsub topics describe [^ ]+ ", { stdout: `projects/${PROJECT}/topics/t\n` }),
    row("^gcloud pubsub subscriptions describe rdp-ingest-dead-letter-hold ", {
      stdout: "2678400s\n",
    }),
    row("^gcloud iam service-accounts describe [^ ]+ ", { stdout: "an-email\n" }),
    row("^gcloud functions describe ingest .*value\\(state", {
      stdout: `ACTIVE\t${hashes.ingest}\t\t\t\n`,
    }),
    row("^gcloud run services get-iam-policy ingest ", { stdout: "roles/run.invoker\tallUsers\n" }),
    row("^gcloud functions describe process .*value\\(state", {
      stdout: `ACTIVE\t${hashes.process}\t${WANTED_TRIGGER}\n`,
    }),
    row(`^gcloud pubsub subscriptions describe ${TRIGGER_SUBSCRIPTION} `, {
      stdout: `120\tprojects/${PROJECT}/topics/rdp-ingest-dead-letter\t10\t10s\t600s\n`,
    }),
    row("^gcloud firestore indexes fields describe expire_at ", { stdout: "ACTIVE\n" }),
    row("^gcloud logging metrics describe ", { stdout: "a-metric\n" }),
    row("^gcloud alpha monitoring policies list ", {
      stdout: `projects/${PROJECT}/alertPolicies/1234\n`,
    }),
    ...freshProject(),
  ];
}

interface FakeRun extends ScriptRun {
  readonly calls: FakeCall[];
}

/** Words of the gcloud calls, as "gcloud functions deploy ingest ..." lines. */
function callLines(run: FakeRun): string[] {
  return run.calls.map((call) => call.line);
}

function deployFlag(call: FakeCall | undefined, flag: string): string | undefined {
  return call?.argv.find((arg) => arg.startsWith(`${flag}=`))?.slice(flag.length + 1);
}

/**
 * A copy of what `npm run deploy` reads (scripts, deploy/config.env, firebase.json and the rules,
 * functions/ with its built lib/) in its own folder, with fake gcloud, firebase and npm.
 */
class Sandbox {
  readonly root: string;
  private readonly cloud: string;
  private readonly bin: string;
  private runs = 0;

  constructor(parent: string, name: string) {
    this.root = path.join(parent, name, "repo");
    this.cloud = path.join(parent, name, "cloud");
    this.bin = path.join(parent, name, "bin");
    for (const dir of ["scripts/ship/lib", "deploy/monitoring", "functions", "node_modules/.bin"]) {
      fs.mkdirSync(path.join(this.root, dir), { recursive: true });
    }
    fs.mkdirSync(this.bin, { recursive: true });
    for (const file of [
      "scripts/ship/deploy.sh",
      "scripts/ship/teardown.sh",
      "scripts/ship/lib/gcloud-plan.sh",
      "scripts/ship/lib/function-options.cjs",
      "deploy/config.env",
      "firebase.json",
      "firestore.rules",
      "firestore.indexes.json",
      "functions/package.json",
      "functions/package-lock.json",
      "functions/.gcloudignore",
    ]) {
      fs.copyFileSync(path.join(REPO_ROOT, file), path.join(this.root, file));
    }
    // The compiled code and the OTLP definitions it loads at start-up.
    for (const folder of ["lib", "proto"]) {
      fs.cpSync(path.join(FUNCTIONS_DIR, folder), path.join(this.root, "functions", folder), {
        recursive: true,
      });
    }
    // The log-based metrics and alert policies.
    fs.cpSync(
      path.join(REPO_ROOT, "deploy", "monitoring"),
      path.join(this.root, "deploy", "monitoring"),
      {
        recursive: true,
      },
    );
    // The exports check loads lib/index.js, which needs the functions' dependencies.
    fs.symlinkSync(
      path.join(FUNCTIONS_DIR, "node_modules"),
      path.join(this.root, "functions", "node_modules"),
    );
    const tool = (file: string, text: string) => {
      fs.writeFileSync(file, text);
      fs.chmodSync(file, 0o755);
    };
    tool(path.join(this.bin, "gcloud"), FAKE_TOOL);
    tool(path.join(this.root, "node_modules", ".bin", "firebase"), FAKE_TOOL);
    tool(path.join(this.root, "node_modules", ".bin", "tsc"), "#!/bin/sh\nexit 97\n");
    // `npm run build` brings back the lib/ the step before deleted (compiled by the real build).
    tool(
      path.join(this.bin, "npm"),
      `#!/bin/sh\ncp -R '${path.join(FUNCTIONS_DIR, "lib")}' '${path.join(this.root, "functions", "lib")}'\n`,
    );
    fs.writeFileSync(
      path.join(this.root, "adc.json"),
      JSON.stringify({ type: "authorized_user", quota_project_id: "someone-elses-project" }),
    );
  }

  /** Runs deploy.sh against TABLE; returns its output and the calls the fake answered. */
  deploy(table: FakeAnswer[], args: string[] = [], env: Record<string, string> = {}): FakeRun {
    this.runs += 1;
    const cloud = path.join(this.cloud, String(this.runs));
    fs.mkdirSync(cloud, { recursive: true });
    table.forEach((answer, i) => {
      const dir = path.join(cloud, "rows", String(i).padStart(4, "0"));
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, "match"), answer.match);
      fs.writeFileSync(path.join(dir, "stdout"), answer.stdout ?? "");
      fs.writeFileSync(path.join(dir, "stderr"), answer.stderr ?? "");
      fs.writeFileSync(path.join(dir, "exit"), String(answer.exit ?? 0));
      if (answer.times !== undefined) {
        fs.writeFileSync(path.join(dir, "times"), String(answer.times));
        fs.writeFileSync(path.join(dir, "used"), "");
      }
    });
    const run = runScript(
      path.join(this.root, "scripts", "ship", "deploy.sh"),
      ["--project", PROJECT, ...args],
      cleanEnv({
        PATH: `${this.bin}${path.delimiter}${process.env.PATH ?? ""}`,
        FAKE_CLOUD_DIR: cloud,
        GOOGLE_APPLICATION_CREDENTIALS: path.join(this.root, "adc.json"),
        RDP_RETRY_WAIT_SECONDS: "0",
        ...env,
      }),
    );
    const log = path.join(cloud, "calls.log");
    const calls = (fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "")
      .split("\x1e")
      .filter(Boolean)
      .map((entry): FakeCall => {
        const [tool = "", quotaProject = "", ...argv] = entry.split("\x1f").slice(0, -1);
        return { tool, argv, line: [tool, ...argv].join(" "), quotaProject };
      });
    return { ...run, calls };
  }
}

/** Every gcloud call of every run below, for the --help check at the end. */
const ranAgainstFake = new Map<string, string[]>();

function remember(run: FakeRun): FakeRun {
  for (const call of run.calls) {
    if (call.tool === "gcloud") ranAgainstFake.set(call.line, call.argv);
  }
  return run;
}

function find(run: FakeRun, pattern: RegExp): FakeCall | undefined {
  return run.calls.find((call) => pattern.test(call.line));
}

function count(run: FakeRun, pattern: RegExp): number {
  return run.calls.filter((call) => pattern.test(call.line)).length;
}

function position(run: FakeRun, pattern: RegExp): number {
  return run.calls.findIndex((call) => pattern.test(call.line));
}

describe("release: deploy.sh against a fake gcloud that answers like a real project", function () {
  // Each run spends a few seconds on a busy machine (the exports check loads the functions).
  this.timeout(120_000);

  let scratch: string;
  let first: Sandbox;
  let firstRun: FakeRun;
  let hashes: { ingest: string; process: string };

  before(function () {
    this.timeout(180_000);
    ensureFunctionsBuilt();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), "rdp-deploy-fake-"));
    first = new Sandbox(scratch, "first");
    firstRun = remember(first.deploy(freshProject()));
    const label = (name: string) =>
      deployFlag(
        find(firstRun, new RegExp(`^gcloud functions deploy ${name} `)),
        "--update-labels",
      )?.replace(/^rdp_deploy_hash=/, "") ?? "";
    hashes = { ingest: label("ingest"), process: label("process") };
  });

  after(function () {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it("first run on an empty project: creates everything, opens ingest, labels both functions", function () {
    expect(firstRun.status, firstRun.stderr).to.equal(0);
    expect(hashes.ingest).to.match(/^[0-9a-f]{40}$/);
    expect(hashes.process).to.match(/^[0-9a-f]{40}$/);
    const lines = callLines(firstRun);
    // Billing is checked before any API is enabled.
    expect(position(firstRun, /^gcloud billing projects describe /)).to.be.lessThan(
      position(firstRun, /^gcloud services enable /),
    );
    // The service agents' roles are seen before the first deploy.
    expect(position(firstRun, /^gcloud projects get-iam-policy /)).to.be.lessThan(
      position(firstRun, /^gcloud functions deploy /),
    );
    expect(lines).to.include(
      `gcloud functions add-invoker-policy-binding ingest --region=us-central1 --project=${PROJECT} --member=allUsers --format=none --quiet`,
    );
    // ADC checked, then the Firebase CLI told which project to bill, whatever the ADC file says.
    const firebase = firstRun.calls.find((call) => call.tool === "firebase");
    expect(position(firstRun, /application-default print-access-token/)).to.be.lessThan(
      firstRun.calls.indexOf(firebase as FakeCall),
    );
    expect(firebase?.quotaProject).to.equal(PROJECT);
    expect(firstRun.stdout).to.include("quota project is someone-elses-project");
    const processDeploy = find(firstRun, /^gcloud functions deploy process /);
    expect(deployFlag(processDeploy, "--trigger-topic")).to.equal("rdp-ingest");
    expect(firstRun.stdout).to.include("Deployed. Ingest URL: https://ingest-x2d4-uc.a.run.app");
  });

  it("second run in a row, from another folder: changes nothing", function () {
    const elsewhere = new Sandbox(scratch, "another-checkout");
    const run = remember(elsewhere.deploy(deployedProject(hashes)));
    expect(run.status, run.stderr).to.equal(0);
    // Nothing created, deployed, updated or granted at project level. What still runs: the
    // read-only checks, and the calls that are no-ops when in place (enabling enabled APIs,
    // service identities, the resource-level grants, the Firestore rules release).
    // Log-based metrics and alert policies are given their definitions again: checked below to
    // be the very definitions the first run created.
    const noOps =
      /^(gcloud beta services identity create|gcloud (pubsub topics|pubsub subscriptions|iam service-accounts) add-iam-policy-binding|gcloud functions add-invoker-policy-binding process|firebase deploy --only=firestore|gcloud logging metrics update|gcloud alpha monitoring policies update) /;
    const changes = callLines(run).filter(
      (line) => /\b(create|deploy|update|add-iam-policy-binding)\b/.test(line) && !noOps.test(line),
    );
    expect(changes).to.deep.equal([]);
    const definitions = (of: FakeRun, verb: string) =>
      of.calls
        .filter((call) => call.line.startsWith(`gcloud logging metrics ${verb} `))
        .map(
          (call) =>
            `${call.argv[3]} ${path.basename(deployFlag(call, "--config-from-file") ?? "")}`,
        );
    expect(definitions(run, "update")).to.deep.equal(definitions(firstRun, "create"));
    expect(definitions(run, "update")).to.have.length(2);
    const withTool = (of: FakeRun) => of.calls.map((call) => ({ argv: [call.tool, ...call.argv] }));
    const policies = alertPolicies(withTool(run));
    expect(policies).to.deep.equal(alertPolicies(withTool(firstRun)));
    expect(Object.keys(policies)).to.have.length(3);
    expect(
      count(
        run,
        /^gcloud alpha monitoring policies update projects\/demo-sample-123\/alertPolicies\/1234 /,
      ),
    ).to.equal(3);
    expect(count(run, /^gcloud functions add-invoker-policy-binding ingest /)).to.equal(0);
    expect(run.stdout).to.match(/ingest is unchanged since its last deploy/);
    expect(run.stdout).to.match(/process is unchanged since its last deploy/);
  });

  it("org policy refuses allUsers: falls back to turning off the invoker IAM check, and says so", function () {
    const refusal = gcloudError(
      "functions.add-invoker-policy-binding",
      "FAILED_PRECONDITION",
      "One or more users named in the policy do not belong to a permitted customer, perhaps due to an organization policy.",
    );
    const run = remember(
      first.deploy([
        row("^gcloud functions add-invoker-policy-binding ingest ", refusal),
        ...freshProject(),
      ]),
    );
    expect(run.status, run.stderr).to.equal(0);
    const grant = position(run, /^gcloud functions add-invoker-policy-binding ingest /);
    expect(run.calls[grant + 1]?.line).to.equal(
      `gcloud run services update ingest --region=us-central1 --project=${PROJECT} --no-invoker-iam-check --quiet`,
    );
    expect(count(run, /add-invoker-policy-binding ingest /), "not retried").to.equal(1);
    expect(run.stderr).to.match(
      /organization policy \(domain restricted sharing\) refuses allUsers/,
    );
    expect(run.stdout).to.include("ingest is public through: no-invoker-iam-check");

    // The fallback refused as well: stop, and say that ingest is closed.
    const closed = remember(
      first.deploy([
        row("^gcloud functions add-invoker-policy-binding ingest ", refusal),
        row("^gcloud run services update ingest ", {
          ...gcloudError(
            "run.services.update",
            "FAILED_PRECONDITION",
            "Constraint constraints/run.managed.requireInvokerIam violated.",
          ),
        }),
        ...freshProject(),
      ]),
    );
    expect(closed.status).to.equal(1);
    expect(closed.stderr).to.match(/the fallback failed too \(FAILED_PRECONDITION/);
    expect(closed.stderr).to.include("answers 403 to everyone");
    expect(
      callLines(closed).some((line) => line.startsWith("gcloud functions deploy process")),
    ).to.equal(false);
  });

  it("label present after a failed step: deploys that function again and opens it", function () {
    const run = remember(
      first.deploy([
        // ingest carries this build's label, but its opening failed last time: closed.
        row("^gcloud run services get-iam-policy ingest ", {
          stdout: "roles/run.invoker\tserviceAccount:someone@x\n",
        }),
        row("^gcloud run services describe ingest ", { stdout: "\n" }),
        // and the dead letters are still kept 7 days, as the previous version of this script set.
        row("^gcloud pubsub subscriptions describe rdp-ingest-dead-letter-hold ", {
          stdout: "604800s\n",
        }),
        ...deployedProject(hashes),
      ]),
    );
    expect(run.status, run.stderr).to.equal(0);
    expect(run.stdout).to.match(
      /ingest carries this build's label, but its last deploy did not complete/,
    );
    const redeploy = position(run, /^gcloud functions deploy ingest /);
    expect(redeploy).to.be.greaterThan(-1);
    expect(
      position(run, /^gcloud functions add-invoker-policy-binding ingest .*--member=allUsers/),
    ).to.be.greaterThan(redeploy);
    expect(count(run, /^gcloud functions deploy process /), "process is complete").to.equal(0);
    expect(callLines(run)).to.include(
      `gcloud pubsub subscriptions update rdp-ingest-dead-letter-hold --message-retention-duration=31d --project=${PROJECT} --quiet`,
    );
  });

  it("unchanged trigger: redeploys new code of process without trigger flags; a changed one needs --replace-trigger", function () {
    const changedCode = { ...hashes, process: "0".repeat(40) };
    const run = remember(first.deploy(deployedProject(changedCode)));
    expect(run.status, run.stderr).to.equal(0);
    const redeploy = find(run, /^gcloud functions deploy process /);
    expect(redeploy, "process redeployed").to.not.equal(undefined);
    const triggerFlags = redeploy?.argv.filter((arg) => /^--(trigger-|retry|no-retry)/.test(arg));
    expect(triggerFlags).to.deep.equal([]);
    expect(deployFlag(redeploy, "--update-labels")).to.equal(`rdp_deploy_hash=${hashes.process}`);
    expect(run.stdout).to.include("deploying without trigger flags");

    const otherTopic = [
      row("^gcloud functions describe process .*value\\(state", {
        stdout: `ACTIVE\t${hashes.process}\tprojects/${PROJECT}/topics/old-topic\t${SA("rdp-process-trigger")}\tRETRY_POLICY_RETRY\n`,
      }),
      ...deployedProject(hashes),
    ];
    const refused = remember(first.deploy(otherTopic));
    expect(refused.status).to.equal(3);
    expect(refused.stderr).to.match(
      /REFUSED: process's trigger is .*old-topic.*--replace-trigger/s,
    );
    expect(count(refused, /^gcloud functions deploy process /)).to.equal(0);
    const replaced = remember(first.deploy(otherTopic, ["--replace-trigger"]));
    expect(replaced.status, replaced.stderr).to.equal(0);
    expect(
      deployFlag(find(replaced, /^gcloud functions deploy process /), "--trigger-topic"),
    ).to.equal("rdp-ingest");
  });

  it("disabled API right after enabling, fresh accounts, late service-agent roles: waits and goes on", function () {
    const disabled = gcloudError(
      "firestore.databases.describe",
      "PERMISSION_DENIED",
      `Cloud Firestore API has not been used in project ${PROJECT_NUMBER} before or it is disabled. Enable it by visiting the console then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.`,
    );
    const notYet = gcloudError(
      "projects.add-iam-policy-binding",
      "INVALID_ARGUMENT",
      `Service account ${SA("rdp-ingest")} does not exist.`,
    );
    const run = remember(
      first.deploy([
        row("^gcloud firestore databases describe ", { ...disabled, times: 2 }),
        row("^gcloud projects add-iam-policy-binding .*rdp-ingest@", { ...notYet, times: 1 }),
        // Eventarc's agent has no role yet on the first two looks.
        row("^gcloud projects get-iam-policy ", {
          times: 2,
          stdout: AGENT_ROLES.filter((line) => !line.includes("eventarc")).join(""),
        }),
        ...freshProject(),
      ]),
    );
    expect(run.status, run.stderr).to.equal(0);
    expect(count(run, /^gcloud firestore databases describe /)).to.equal(3);
    expect(count(run, /^gcloud firestore databases create /)).to.equal(1);
    expect(count(run, /^gcloud projects add-iam-policy-binding .*rdp-ingest@/)).to.equal(2);
    // 2 looks without the role, 1 with it, then step_iam's own look.
    expect(count(run, /^gcloud projects get-iam-policy /)).to.equal(4);
    expect(run.stderr).to.match(/service agent role\(s\) not granted yet; retrying in 0s/);

    // Roles that never come: stop before any deploy, saying which grant is missing.
    const never = remember(
      first.deploy(
        [
          row("^gcloud projects get-iam-policy ", { stdout: AGENT_ROLES.slice(1).join("") }),
          ...freshProject(),
        ],
        [],
        { RDP_RETRY_ATTEMPTS: "3" },
      ),
    );
    expect(never.status).to.equal(1);
    expect(never.stderr).to.include(
      `--member=serviceAccount:service-${PROJECT_NUMBER}@gcf-admin-robot.iam.gserviceaccount.com --role=roles/cloudfunctions.serviceAgent`,
    );
    expect(count(never, /^gcloud functions deploy /)).to.equal(0);
  });

  it("a permission error that mentions 404 is not an absence: stops, creates nothing, retries nothing", function () {
    const denied = gcloudError(
      "iam.service-accounts.describe",
      "PERMISSION_DENIED",
      `Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist). Caller project: 404040404040.`,
    );
    const run = remember(
      first.deploy([
        row("^gcloud iam service-accounts describe rdp-ingest@", denied),
        ...freshProject(),
      ]),
    );
    expect(run.status).to.equal(1);
    expect(run.stderr).to.match(/the check above failed with PERMISSION_DENIED \(not NOT_FOUND/);
    expect(count(run, /^gcloud iam service-accounts describe rdp-ingest@/)).to.equal(1);
    expect(count(run, /^gcloud iam service-accounts create /)).to.equal(0);

    // A permanent error of a step is not retried either.
    const badDeploy = remember(
      first.deploy([
        row("^gcloud functions deploy process ", {
          exit: 1,
          stderr:
            "ERROR: (gcloud.functions.deploy) ResponseError: status=[400], code=[Bad Request], message=[Invalid runtime]\n",
        }),
        ...freshProject(),
      ]),
    );
    expect(badDeploy.status).to.equal(1);
    expect(count(badDeploy, /^gcloud functions deploy process /)).to.equal(1);
    expect(badDeploy.stderr).to.match(
      /failed with status=\[400\] .*not one of the transient errors/s,
    );
  });

  it("billing off, or no Application Default Credentials: stops before the step that needs them", function () {
    const run = remember(
      first.deploy([
        row("^gcloud billing projects describe ", { stdout: "False\n" }),
        ...freshProject(),
      ]),
    );
    expect(run.status).to.equal(1);
    expect(run.stderr).to.include("billing is not enabled on demo-sample-123");
    expect(count(run, /^gcloud services enable /)).to.equal(0);

    const noAdc = remember(
      first.deploy([
        row("^gcloud auth application-default print-access-token", {
          exit: 1,
          stderr:
            "ERROR: (gcloud.auth.application-default.print-access-token) Your default credentials were not found.\n",
        }),
        ...freshProject(),
      ]),
    );
    expect(noAdc.status).to.equal(1);
    expect(noAdc.stderr).to.include("run 'gcloud auth application-default login'");
    expect(noAdc.calls.filter((call) => call.tool === "firebase")).to.deep.equal([]);
  });

  it("Firestore location follows the region; a mismatch is refused unless asked for", function () {
    // Each full dry run loads the functions from source (tsx): seconds of CPU, more when busy.
    this.timeout(240_000);
    const europe = openDemoInEurope();
    expect(europe.status, europe.stderr).to.equal(0);
    expect(
      flagValue(
        findCommand(europe.commands, "gcloud", "firestore", "databases", "create"),
        "--location",
      ),
    ).to.equal("eur3");

    // An existing database in nam5, functions asked for in Europe.
    const existing = remember(first.deploy(deployedProject(hashes), ["--region", "europe-west1"]));
    expect(existing.status).to.equal(3);
    expect(existing.stderr).to.match(
      /REFUSED: the \(default\) database of demo-sample-123 is nam5, but the functions run in europe-west1/,
    );
    expect(count(existing, /^gcloud functions deploy /)).to.equal(0);

    // An explicit location on another continent, refused before anything runs.
    const config = path.join(scratch, "nam5.env");
    fs.writeFileSync(
      config,
      fs
        .readFileSync(CONFIG_FILE, "utf8")
        .replace(/^FIRESTORE_LOCATION=.*$/m, "FIRESTORE_LOCATION=nam5"),
    );
    const args = [
      "--project",
      PROJECT,
      "--dry-run",
      "--region",
      "europe-west1",
      "--config",
      config,
    ];
    const refused = runScript("deploy.sh", args, cleanEnv());
    expect(refused.status).to.equal(3);
    expect(refused.commands).to.deep.equal([]);
    const allowed = runScript("deploy.sh", [...args, "--allow-location-mismatch"], cleanEnv());
    expect(allowed.status, allowed.stderr).to.equal(0);
    expect(
      flagValue(
        findCommand(allowed.commands, "gcloud", "firestore", "databases", "create"),
        "--location",
      ),
    ).to.equal("nam5");
  });

  it("every gcloud command deploy.sh ran against the fake exists with these flags in --help", async function () {
    this.timeout(180_000);
    const gcloud = gcloudHelp;
    expect(ranAgainstFake.size).to.be.greaterThan(30);
    const problems: string[] = [];
    await Promise.all(
      [...ranAgainstFake].map(async ([line, args]) => {
        try {
          const unknown = await gcloud.unknownFlags(args);
          if (unknown.length > 0) problems.push(`${unknown.join(", ")} unknown in: ${line}`);
        } catch (error) {
          problems.push(`${(error as Error).message}: ${line}`);
        }
      }),
    );
    expect(problems).to.deep.equal([]);
    // The fallback and the retention update are among them.
    expect(
      [...ranAgainstFake.keys()].some((line) => line.includes("--no-invoker-iam-check")),
    ).to.equal(true);
  });
});

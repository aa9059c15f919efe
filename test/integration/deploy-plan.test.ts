/**
 * The release scripts, checked without a cloud project:
 * - scripts/deploy.sh --dry-run prints the whole plan, runs nothing, and refuses unsafe settings;
 * - every flag of every gcloud command in the deploy and teardown plans exists in that command's
 *   `gcloud ... --help` (the installed Google Cloud SDK is the reference), so a misspelled or
 *   removed flag fails here instead of half-way through a real deploy;
 * - the upload set of functions/ holds only the compiled code and the manifests, and it installs
 *   and loads with production dependencies only.
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
  const result = spawnSync("bash", [path.join(REPO_ROOT, "scripts", script), ...args], {
    cwd: REPO_ROOT,
    env,
    encoding: "utf8",
    timeout: 60_000,
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
   * The command that ARGS (what follows "gcloud") runs: its leading words, up to the first one
   * whose help is a command's rather than a group's. Positionals after it are not part of it.
   */
  async command(args: readonly string[]): Promise<{ path: string[]; help: string }> {
    const words: string[] = [];
    for (const arg of args) {
      if (arg.startsWith("-")) break;
      words.push(arg);
    }
    for (let n = 1; n <= words.length; n += 1) {
      const commandPath = words.slice(0, n);
      const help = await this.help(commandPath);
      if (help === null) {
        throw new Error(`"gcloud ${commandPath.join(" ")}" is not a gcloud command or group`);
      }
      const synopsis = section(help, "SYNOPSIS");
      const groupSynopsis = new RegExp(
        `^\\s*gcloud\\s+${commandPath.map(escapeRegExp).join("\\s+")}\\s+(GROUP|COMMAND)\\b`,
        "m",
      );
      if (!groupSynopsis.test(synopsis)) return { path: commandPath, help };
    }
    throw new Error(`"gcloud ${words.join(" ")}" is a command group, not a command`);
  }

  /** The --flags of ARGS that its command's --help does not list. */
  async unknownFlags(args: readonly string[]): Promise<string[]> {
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

// ---------------------------------------------------------------------------------------------

describe("release: deploy and teardown plans, upload set, production install", function () {
  this.timeout(60_000);

  let scratch: string;
  let tripwire: { env: Record<string, string>; calls: string };
  let deploy: ScriptRun;
  let teardown: ScriptRun;
  const gcloud = new GcloudHelp();

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
    const rules = commands.find((c) => c.argv[0]?.endsWith("firebase") && c.argv[1] === "deploy");
    expect(rules, "no firebase deploy of the rules").to.not.equal(undefined);
    expect(rules?.argv).to.include("--only=firestore").and.include("--non-interactive");
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
    expect(ingest.argv).to.include("--trigger-http").and.include("--allow-unauthenticated");
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

    const invoker = findCommand(commands, "gcloud", "functions", "add-invoker-policy-binding");
    expect(invoker.argv[3]).to.equal("process");
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

    // Every create is preceded by the check that makes a re-run skip it.
    for (const create of commands.filter((c) => !c.check && c.argv.includes("create"))) {
      if (create.argv[1] === "beta") continue; // service identities: naturally idempotent
      const previous = commands[indexOf(commands, create) - 1];
      expect(previous?.check, `no check before: ${create.line}`).to.equal(true);
    }
    const order = [build, apis, database, rules as PlanCommand, topic, deadLetterTopic, hold];
    order.push(ingest, processFn, invoker, deadLetters);
    const positions = order.map((command) => indexOf(commands, command));
    expect(positions).to.deep.equal([...positions].sort((a, b) => a - b));
  });

  it("every flag of every gcloud and firebase command in both plans exists in its --help", async function () {
    this.timeout(180_000);
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
    const firebase = deploy.commands.filter((command) => command.argv[0]?.endsWith("/firebase"));
    expect(firebase).to.have.length.greaterThan(0);
    for (const command of firebase) {
      const unknown = await firebaseUnknownFlags(command.argv);
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
    const allowed = runScript("deploy.sh", [...args, "--allow-open-demo"], cleanEnv(tripwire.env));
    expect(allowed.status, allowed.stderr).to.equal(0);
    expect(allowed.stdout).to.include("AUTH_MODE=disabled");
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
    ]);
    // api_keys are looked up by tenant_id: that field must stay indexed.
    expect(exempt).to.not.include("api_keys.tenant_id");
  });

  it("gcloud uploads only lib/, package.json and package-lock.json from functions/", function () {
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
    expect(files).to.include.members(["lib/index.js", "package.json", "package-lock.json"]);
    const unexpected = files.filter(
      (file) => !["package.json", "package-lock.json"].includes(file) && !file.startsWith("lib/"),
    );
    expect(unexpected, "files outside lib/ and the manifests").to.deep.equal([]);
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
    fs.cpSync(path.join(FUNCTIONS_DIR, "lib"), path.join(app, "lib"), { recursive: true });

    const env = cleanEnv();
    for (const name of ["npm_config_prefix", "npm_config_local_prefix", "npm_config_global"]) {
      delete env[name];
    }
    const install = spawnSync(
      "npm",
      ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"],
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

/**
 * syslog-ng from Debian's packages, as a tenant runs it: it follows a log file and forwards
 * each line to ingest with its http() destination, batched as NDJSON with the API key header.
 * The recipe is the one docs/CLIENTS.md gives. Every line must end as exactly one document.
 */
import { expect } from "chai";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../../../functions/src/lib/api-keys";
import { RUN_ID, pollUntil, sharedTestStack, type TestStack } from "../support/stack";

const INSTALL_HINT =
  "run scripts/local/install-test-clients.sh as root (it installs Debian's syslog-ng-core and " +
  "syslog-ng-mod-http); the test needs the real client and does not skip without it";

/**
 * The syslog-ng binary with its http() module; fails, naming the install script, without them.
 * Debian installs it in /usr/sbin, which a non-root PATH often lacks.
 */
function requireSyslogNg(): { binary: string; version: string } {
  for (const binary of ["syslog-ng", "/usr/sbin/syslog-ng"]) {
    const version = spawnSync(binary, ["--version"], { encoding: "utf8" });
    if (version.error !== undefined || version.status !== 0) continue;
    const modules = spawnSync(binary, ["--module-registry"], { encoding: "utf8" });
    if (!/^Module: http$/m.test(modules.stdout)) {
      throw new Error(`syslog-ng has no http() destination module: ${INSTALL_HINT}`);
    }
    return { binary, version: version.stdout.split("\n")[0] ?? binary };
  }
  throw new Error(`syslog-ng is not installed: ${INSTALL_HINT}`);
}

/** The docs/CLIENTS.md recipe, with the test's file, URL and key filled in. */
function syslogNgConfig(options: { file: string; url: string; apiKey: string }): string {
  return `@version: 3.38
options { stats-freq(0); };

source s_app {
  file("${options.file}" flags(no-parse) follow-freq(1));
};

destination d_rdp {
  http(
    url("${options.url}")
    method("POST")
    headers("Authorization: Bearer ${options.apiKey}", "Content-Type: application/x-ndjson")
    # One JSON object a line; the id is a hash of the line, so a resent batch is stored once.
    body("$(format-json --scope none text=$MSG log_id=sng-$(sha1 --length 32 $MSG))")
    delimiter("\\n")
    batch-lines(100)
    batch-bytes(512KiB)
    batch-timeout(200)
    timeout(30)
    retries(10)
  );
};

log { source(s_app); destination(d_rdp); };
`;
}

const expectedLogId = (line: string) =>
  `sng-${createHash("sha1").update(line).digest("hex").slice(0, 32)}`;

describe("syslog-ng (Debian package) forwarding a file to ingest as NDJSON", function () {
  this.timeout(180_000);
  const tenant = `sng-${RUN_ID}`;
  let stack: TestStack;
  let firestore: Firestore;
  let workDir: string;
  let syslogNg: ChildProcess | undefined;
  let syslogNgOutput = "";
  let syslogNgBinary = "syslog-ng";

  before(async () => {
    const found = requireSyslogNg();
    syslogNgBinary = found.binary;
    console.log(`      using ${found.version}`);
    stack = await sharedTestStack();
    firestore = new Firestore({ projectId: stack.project });
    workDir = await mkdtemp(path.join(os.tmpdir(), `rdp-syslog-ng-${RUN_ID}-`));
  });

  after(async () => {
    if (syslogNg && syslogNg.exitCode === null) {
      const exited = new Promise((resolve) => syslogNg?.once("exit", resolve));
      syslogNg.kill("SIGTERM");
      await exited;
    }
    await firestore?.terminate();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("stores every line of a followed file exactly once, redacted", async () => {
    const apiKey = (await createFirestoreApiKeys(firestore).create(tenant, "syslog-ng test")).key;
    const file = path.join(workDir, "app.log");
    const conf = path.join(workDir, "syslog-ng.conf");
    // Quotes, backslashes, tabs and non-ASCII test the JSON template's escaping.
    const lines = Array.from({ length: 240 }, (_, i) => {
      const n = String(i).padStart(3, "0");
      return i % 40 === 0
        ? `line ${n} ${RUN_ID}: call 555-0199 "now" \\ tab\there café`
        : `line ${n} ${RUN_ID}: request handled in ${i} ms`;
    });
    const [before, after] = [lines.slice(0, 150), lines.slice(150)];
    await writeFile(file, before.map((line) => `${line}\n`).join(""));
    await writeFile(
      conf,
      syslogNgConfig({ file, url: new URL("ingest", stack.ingestUrl).href, apiKey }),
    );

    syslogNg = spawn(
      syslogNgBinary,
      [
        "-F",
        "-e",
        "-f",
        conf,
        "-R",
        path.join(workDir, "syslog-ng.persist"),
        "-p",
        path.join(workDir, "syslog-ng.pid"),
        "-c",
        path.join(workDir, "syslog-ng.ctl"),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    for (const stream of [syslogNg.stdout, syslogNg.stderr]) {
      stream?.on("data", (chunk: Buffer) => (syslogNgOutput += chunk.toString()));
    }
    // Lines appended while syslog-ng runs are followed too.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(syslogNg.exitCode, `syslog-ng exited early:\n${syslogNgOutput}`).to.equal(null);
    await appendFile(file, after.map((line) => `${line}\n`).join(""));

    const collection = firestore.collection(`tenants/${tenant}/processed_logs`);
    await pollUntil(
      async (note) => {
        const stored = (await collection.count().get()).data().count;
        note(`${stored} stored; syslog-ng said:\n${syslogNgOutput.slice(-2_000)}`);
        return stored >= lines.length ? stored : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, what: `${lines.length} documents from syslog-ng` },
    );
    // Give a late duplicate (a batch sent twice) time to land before counting once more.
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    const docs = (await collection.get()).docs;
    expect(docs).to.have.length(lines.length);
    const byId = new Map(docs.map((doc) => [doc.id, doc.data()]));
    for (const line of lines) {
      const doc = byId.get(expectedLogId(line));
      expect(doc, `no document for: ${line}`).to.not.equal(undefined);
      expect(doc?.original_text).to.equal(line);
      expect(doc?.source).to.equal("json_upload");
    }
    const redacted = byId.get(expectedLogId(lines[0] ?? ""));
    expect(redacted?.modified_data).to.equal(
      `line 000 ${RUN_ID}: call [REDACTED] "now" \\ tab\there café`,
    );
    expect((await firestore.collection(`tenants/${tenant}/failed_logs`).get()).size).to.equal(0);

    const ingestLog = await readFile(stack.logs.ingest, "utf8");
    expect(ingestLog, "ingest logged the API key").to.not.include(apiKey);
  });
});

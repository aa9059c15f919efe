/**
 * `npm run reconcile` as a user runs it: a real run's accepted list, checked against the
 * Firestore emulator, then against a store that lost a record.
 */
import { expect } from "chai";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Firestore } from "@google-cloud/firestore";
import { runLoad } from "../../scripts/measure/lib/load-engine";
import { toReconcileJsonl } from "../../scripts/operate/lib/reconcile";
import { runCli } from "./support/ops-cli";
import {
  RUN_ID,
  TEST_PROJECT,
  type TestStack,
  sharedEmulators,
  startTestStack,
} from "./support/stack";

describe("npm run reconcile", function () {
  this.timeout(120_000);
  let stack: TestStack;
  let firestore: Firestore;
  let acceptedFile: string;
  const tenants = [`recon-${RUN_ID}-a`, `recon-${RUN_ID}-b`];
  const common = () => [
    "--accepted",
    acceptedFile,
    "--project",
    TEST_PROJECT,
    "--firestore-host",
    sharedEmulators().firestoreHost,
  ];

  before(async () => {
    stack = await startTestStack("reconcile-cli", { AUTH_MODE: "disabled" });
    firestore = new Firestore({ projectId: TEST_PROJECT });
    const load = await runLoad({
      url: stack.ingestUrl,
      records: 60,
      ratePerSecond: 60,
      tenants,
      logIdPrefix: `recon-${RUN_ID}`,
    });
    expect(load.accepted).to.have.length(60);
    acceptedFile = path.join(stack.logs.dir, "accepted.jsonl");
    await writeFile(acceptedFile, toReconcileJsonl(load));
  });

  after(async () => {
    await stack?.stop();
    await firestore?.terminate();
  });

  it("waits for the run to drain and exits 0 when every 202 is stored once", async () => {
    const result = await runCli("reconcile.ts", [
      ...common(),
      "--activity-file",
      stack.logs.process,
      "--quiet",
      "2",
      "--drain-timeout",
      "60",
      "--json",
    ]);
    expect(result.code, result.stdout).to.equal(0);
    const { reconcile: report } = JSON.parse(result.stdout.trim()) as {
      reconcile: Record<string, unknown>;
    };
    expect(report).to.include({ accepted: 60, stored: 60, missing: 0, duplicated: 0 });
  });

  it("exits 1 and names the record when one is missing", async () => {
    const lost = `tenants/${tenants[0]}/processed_logs/recon-${RUN_ID}-0`;
    await firestore.doc(lost).delete();
    const result = await runCli("reconcile.ts", [...common(), "--no-wait"]);
    expect(result.code, result.stdout).to.equal(1);
    expect(result.stdout).to.match(/missing\s+1\b/);
    expect(result.stdout).to.contain(`recon-${RUN_ID}-0`);
  });

  it("exits 2 on an accepted list it cannot read, rather than check less", async () => {
    const broken = path.join(stack.logs.dir, "broken.jsonl");
    await writeFile(broken, '{"tenant_id":"a","log_id":"1","text_sha256":"00"}\nnot json\n');
    const result = await runCli("reconcile.ts", ["--accepted", broken, "--no-wait"]);
    expect(result.code).to.equal(2);
  });
});

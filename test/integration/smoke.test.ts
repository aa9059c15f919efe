/**
 * scripts/ship/smoke.sh, the release's smoke test, run as a user runs it after a deploy: here against
 * the production-faithful local stack, with the emulator host set so it also checks the documents.
 */
import { expect } from "chai";
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { REPO_ROOT } from "../../scripts/local/lib/emulators";
import {
  RUN_ID,
  TEST_PROJECT,
  type TestStack,
  sharedEmulators,
  sharedTestStack,
} from "./support/stack";

const run = promisify(execFile);

async function smoke(url: string, key: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(
      "bash",
      [path.join(REPO_ROOT, "scripts", "ship", "smoke.sh"), url, key],
      {
        env: {
          PATH: process.env.PATH ?? "",
          FIRESTORE_EMULATOR_HOST: sharedEmulators().firestoreHost,
          GOOGLE_CLOUD_PROJECT: TEST_PROJECT,
          SMOKE_WAIT_SECONDS: "30",
        },
        timeout: 90_000,
      },
    );
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === "number" ? failed.code : -1,
      output: (failed.stdout ?? "") + (failed.stderr ?? ""),
    };
  }
}

describe("scripts/ship/smoke.sh against the local stack", function () {
  this.timeout(120_000);
  const tenant = `smoke-${RUN_ID}`;
  let stack: TestStack;
  let firestore: Firestore;
  let apiKey: string;

  before(async () => {
    stack = await sharedTestStack();
    firestore = new Firestore({ projectId: TEST_PROJECT });
    apiKey = (await createFirestoreApiKeys(firestore).create(tenant, "smoke test")).key;
  });

  after(async () => {
    await firestore?.terminate();
  });

  it("passes: both records accepted, processed and redacted", async () => {
    const result = await smoke(stack.ingestUrl, apiKey);
    expect(result.code, result.output).to.equal(0);
    expect(result.output).to.match(/ok {4}text record accepted \(202\): tenant_id=smoke-/);
    expect(result.output).to.match(/ok {4}json record accepted \(202\)/);
    expect(result.output.match(/processed, phone number redacted/g)).to.have.length(2);
    expect(result.output).to.contain("smoke: all checks passed");
  });

  it("fails, naming the answer, when the key is not valid", async () => {
    const result = await smoke(stack.ingestUrl, "rdpk_not-a-key");
    expect(result.code).to.equal(1);
    expect(result.output).to.match(/FAIL {2}text record: expected HTTP 202, got 401/);
  });
});

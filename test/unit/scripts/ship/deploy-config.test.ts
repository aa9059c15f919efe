/**
 * The deployment's settings kept in step with the code they configure: the runtime variables
 * config.ts reads (each deployed with --set-env-vars from one list and given a value in
 * deploy/config.env), the heap limit of the local stack, the collection groups given a TTL
 * policy, and the log line the failed-records metric counts. A drift here would not fail a
 * deploy; it would silently keep a default, expire nothing, or count nothing in production.
 */
import { expect } from "chai";
import { FUNCTION_HEAP_LIMIT } from "../../../../scripts/local/lib/stack";
import { RETAINED_COLLECTION_GROUPS } from "../../../../functions/src/lib/paths";
import { readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(__dirname, "..", "..", "..", "..");
const read = (file: string) => readFileSync(path.join(root, file), "utf8");
const bashList = (name: string) =>
  (
    new RegExp(`^${name}=\\(([^)]*)\\)`, "m").exec(read("scripts/ship/lib/gcloud-plan.sh"))?.[1] ??
    ""
  )
    .split(/\s+/)
    .filter(Boolean);

/** Environment names config.ts reads, except the local-only fault injection. */
function configVariables(): string[] {
  const names = [...read("functions/src/lib/config.ts").matchAll(/reader\.\w+\(\s*"([A-Z_]+)"/g)]
    .map((match) => match[1] as string)
    .filter((name) => !name.startsWith("FAULT_"));
  return [...new Set(names)].sort();
}

describe("deployment settings", () => {
  it("deploys every runtime variable config.ts reads", () => {
    expect(bashList("RUNTIME_VARS").sort()).to.deep.equal(configVariables());
  });

  it("gives each of them a value in deploy/config.env", () => {
    const keys = read("deploy/config.env")
      .split("\n")
      .map((line) => /^([A-Z_]+)=/.exec(line)?.[1])
      .filter((key): key is string => key !== undefined);
    expect(keys).to.include.members(configVariables());
  });

  it("runs the local functions with the heap limit they are deployed with", () => {
    const deployed = /^NODE_OPTIONS=(.*)$/m.exec(read("deploy/config.env"))?.[1];
    expect(deployed).to.equal(FUNCTION_HEAP_LIMIT);
  });

  it("turns TTL on for every collection group whose documents carry expire_at", () => {
    expect(bashList("TTL_COLLECTION_GROUPS")).to.deep.equal([...RETAINED_COLLECTION_GROUPS]);
  });

  it("counts failed records by the log line and field the worker writes", () => {
    const metric = read("deploy/monitoring/rdp_records_failed.yaml");
    const message = /jsonPayload\.message="([^"]+)"/.exec(metric)?.[1] ?? "";
    const field = /EXTRACT\(jsonPayload\.(\w+)\)/.exec(metric)?.[1] ?? "";
    const handler = read("functions/src/lib/process-handler.ts");
    expect(handler).to.include(`logger.warn("${message}", ids)`);
    // The fields the line carries: `ids`, built just above it.
    const before = handler.slice(0, handler.indexOf(message));
    const ids = [...before.matchAll(/const ids = \{([^}]*)\}/g)].pop()?.[1] ?? "";
    expect(ids.split(/[\s,]+/)).to.include(field);
  });
});

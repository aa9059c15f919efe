/**
 * The deploy passes the functions' runtime settings with --set-env-vars from one list; a
 * setting added to config.ts but not to that list would silently keep its default in
 * production. This keeps the three places in step.
 */
import { expect } from "chai";
import { FUNCTION_HEAP_LIMIT } from "../../../scripts/lib/stack";
import { readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(__dirname, "..", "..", "..");
const read = (file: string) => readFileSync(path.join(root, file), "utf8");

/** Environment names config.ts reads, except the local-only fault injection. */
function configVariables(): string[] {
  const names = [...read("functions/src/lib/config.ts").matchAll(/reader\.\w+\(\s*"([A-Z_]+)"/g)]
    .map((match) => match[1] as string)
    .filter((name) => !name.startsWith("FAULT_"));
  return [...new Set(names)].sort();
}

describe("deployment settings", () => {
  it("deploys every runtime variable config.ts reads", () => {
    const list =
      /PLAN_RUNTIME_VARS=\(([^)]*)\)/.exec(read("scripts/lib/gcloud-plan.sh"))?.[1] ?? "";
    expect(list.split(/\s+/).filter(Boolean).sort()).to.deep.equal(configVariables());
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
});

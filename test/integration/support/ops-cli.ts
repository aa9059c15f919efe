/** The operator CLIs (replay, status, tenant) as an operator runs them: own process, exit code. */
import { execFile } from "node:child_process";
import path from "node:path";
import { REPO_ROOT } from "../../../scripts/local/lib/emulators";

/** Runs one of the repository's CLIs in its own process; its exit code and stdout. */
export function runCli(script: string, args: readonly string[]) {
  return new Promise<{ code: number; stdout: string; json: Record<string, unknown> }>((resolve) => {
    const argv = ["--import", "tsx", path.join(REPO_ROOT, "scripts", "operate", script), ...args];
    execFile(process.execPath, argv, { cwd: REPO_ROOT, timeout: 120_000 }, (error, stdout) => {
      const last = stdout.trim().split("\n").pop() ?? "";
      const json = last.startsWith("{") ? (JSON.parse(last) as Record<string, unknown>) : {};
      resolve({
        code: typeof error?.code === "number" ? error.code : error ? -1 : 0,
        stdout,
        json,
      });
    });
  });
}

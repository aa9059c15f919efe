/**
 * The operator CLIs (reconcile, replay, status, tenant) as an operator runs them: own process,
 * exit code. Loaded through tsx's CommonJS hook alone, as the scripts are CommonJS: it starts in
 * about a fifth less CPU than tsx's ESM loader, and the suites start some forty of these.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { REPO_ROOT } from "../../../scripts/local/lib/emulators";

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  /** The last line of stdout, when it is a JSON object. */
  readonly json: Record<string, unknown>;
}

/** Runs scripts/operate/SCRIPT in its own process; its exit code and stdout. */
export function runCli(
  script: string,
  args: readonly string[],
  timeoutMs = 120_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const argv = [
      "--require",
      "tsx/cjs",
      path.join(REPO_ROOT, "scripts", "operate", script),
      ...args,
    ];
    execFile(process.execPath, argv, { cwd: REPO_ROOT, timeout: timeoutMs }, (error, stdout) => {
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

/** `npm run tenant -- ARGS --project PROJECT`. */
export function tenantCli(project: string, args: readonly string[]): Promise<CliResult> {
  return runCli("tenant.ts", [...args, "--project", project]);
}

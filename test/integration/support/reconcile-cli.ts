/** `npm run reconcile` as an operator runs it: the CLI in its own process, its exit code kept. */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "../../../scripts/local/lib/emulators";

const run = promisify(execFile);

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
}

export async function reconcileCli(
  args: readonly string[],
  timeoutMs = 60_000,
): Promise<CliResult> {
  try {
    const { stdout } = await run(
      process.execPath,
      ["--import", "tsx", path.join(REPO_ROOT, "scripts", "operate", "reconcile.ts"), ...args],
      { cwd: REPO_ROOT, timeout: timeoutMs },
    );
    return { code: 0, stdout };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string };
    return {
      code: typeof failed.code === "number" ? failed.code : -1,
      stdout: failed.stdout ?? "",
    };
  }
}

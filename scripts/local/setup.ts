/**
 * `npm run setup` (the first step of every build) makes a fresh clone runnable offline:
 * - functions/ dependencies from their own lock file, when missing or older than it (the root
 *   .npmrc's ignore-scripts, which keeps dependencies from downloading browsers, also skips a
 *   root postinstall hook);
 * - the Cloud SDK's emulators where firebase-tools looks for its own. A machine without them can
 *   still build (and deploy): it gets a warning naming what is missing.
 */
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { REPO_ROOT } from "./lib/emulators";
import { installEmulators } from "./lib/install-emulators";

const functionsDir = path.join(REPO_ROOT, "functions");
const installed = path.join(functionsDir, "node_modules", ".package-lock.json");
const lockFile = path.join(functionsDir, "package-lock.json");
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lockFile).mtimeMs) {
  console.log("Installing functions/ dependencies from functions/package-lock.json ...");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: functionsDir, stdio: "inherit" });
}
try {
  installEmulators();
} catch (error) {
  const needs = "(needed by npm start, npm test and firebase emulators:start)";
  console.warn(`warning: ${(error as Error).message}\n${needs}`);
}

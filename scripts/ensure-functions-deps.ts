/**
 * Installs functions/ dependencies from their own lock file when they are missing
 * or older than it. The root .npmrc sets ignore-scripts (dependency install scripts
 * would try to download browsers), which also skips a root postinstall hook, so
 * `npm start` and `npm test` call this instead.
 */
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";

const functionsDir = join(__dirname, "..", "functions");
const lockFile = join(functionsDir, "package-lock.json");
const installedMarker = join(functionsDir, "node_modules", ".package-lock.json");

const upToDate =
  existsSync(installedMarker) && statSync(installedMarker).mtimeMs >= statSync(lockFile).mtimeMs;
if (!upToDate) {
  console.log("Installing functions/ dependencies from functions/package-lock.json ...");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: functionsDir, stdio: "inherit" });
}

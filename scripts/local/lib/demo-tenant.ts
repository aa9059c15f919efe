/**
 * The demo tenant of both local modes: a fresh API key for `acme`, labelled `demo`, on every start
 * (an earlier one's secret was printed once and is kept nowhere), in the open demo mode too, so
 * that switching modes never leaves the README's curl examples without a key.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createFirestoreApiKeys } from "../../../functions/src/lib/api-keys";
import { REPO_ROOT, emulatorFirestore } from "./emulators";

/** Where the README's curl examples read the demo key from (git-ignored, owner-only). */
const DEMO_KEY_FILE = path.join(REPO_ROOT, ".run", "demo-api-key");

export interface TenantKey {
  readonly tenantId: string;
  readonly apiKey: string;
}

/** Creates one API key a tenant, labelled `label`, in the emulator's api_keys collection. */
export async function seedTenantKeys(
  env: { readonly projectId: string; readonly firestoreHost: string },
  tenants: readonly string[],
  label: string,
): Promise<TenantKey[]> {
  const firestore = emulatorFirestore(env.projectId, env.firestoreHost);
  try {
    const keys = createFirestoreApiKeys(firestore);
    return await Promise.all(
      tenants.map(async (tenantId) => {
        const created = await keys.create(tenantId, label);
        return { tenantId: created.tenant_id, apiKey: created.key };
      }),
    );
  } finally {
    await firestore.terminate();
  }
}

export async function seedDemoTenant(projectId: string, firestoreHost: string): Promise<TenantKey> {
  const [tenant] = await seedTenantKeys({ projectId, firestoreHost }, ["acme"], "demo");
  if (tenant === undefined) throw new Error("the demo tenant's key was not created");
  mkdirSync(path.dirname(DEMO_KEY_FILE), { recursive: true });
  writeFileSync(DEMO_KEY_FILE, `${tenant.apiKey}\n`, { mode: 0o600 });
  return tenant;
}

/** What both local modes print once ready: `rows` (a value may span lines), the key, a curl. */
export function readyBanner(
  title: string,
  rows: ReadonlyArray<readonly [string, string]>,
  curlUrl: string,
  tenant: TenantKey,
): string {
  const keyFile = path.relative(REPO_ROOT, DEMO_KEY_FILE);
  const body = JSON.stringify({ tenant_id: tenant.tenantId, log_id: "demo-1", text: "hello" });
  const table = [
    ...rows,
    ["Tenant", tenant.tenantId],
    ["API key", `${tenant.apiKey}\nalso in ${keyFile}: export KEY=$(cat ${keyFile})`],
  ];
  const indent = (value: string) => value.replace(/\n/g, `\n${" ".repeat(15)}`);
  return [
    "",
    title,
    ...table.map(([label, value]) => `  ${label.padEnd(13)}${indent(value)}`),
    "",
    "Try:",
    `  curl -i -X POST '${curlUrl}' -H 'Content-Type: application/json' -H 'Authorization: Bearer ${tenant.apiKey}' -d '${body}'`,
    "",
    "Ctrl-C stops everything.",
  ].join("\n");
}

/** Tenants and API keys for load runs against a local stack. */
import { emulatorFirestore } from "../../local/lib/emulators";
import { createFirestoreApiKeys } from "../../../functions/src/lib/api-keys";

export interface TenantKey {
  readonly tenantId: string;
  readonly apiKey: string;
}

/** Tenant ids of a load run: `load-<run>-t0`, `load-<run>-t1`, ... (fresh for every run). */
export function tenantIds(runId: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `load-${runId}-t${index}`);
}

/** Creates one API key a tenant in the emulator's api_keys collection. */
export async function seedTenantKeys(
  env: { readonly projectId: string; readonly firestoreHost: string },
  tenants: readonly string[],
): Promise<TenantKey[]> {
  const firestore = emulatorFirestore(env.projectId, env.firestoreHost);
  try {
    const keys = createFirestoreApiKeys(firestore);
    return await Promise.all(
      tenants.map(async (tenantId) => {
        const created = await keys.create(tenantId, "load");
        return { tenantId: created.tenant_id, apiKey: created.key };
      }),
    );
  } finally {
    await firestore.terminate();
  }
}

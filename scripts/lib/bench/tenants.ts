/**
 * Tenants and API keys for load runs against a local stack, and a Firestore client that can
 * only ever reach the given emulator.
 */
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../../../functions/src/lib/api-keys";

export interface TenantKey {
  readonly tenantId: string;
  readonly apiKey: string;
}

/**
 * A client of the given emulator whatever this process's environment says. The library lets
 * FIRESTORE_EMULATOR_HOST override any host passed in settings and reads it only in the
 * constructor, so it is set for that call alone. `ssl: false` marks an emulator connection:
 * the library sends the emulator's admin token and never looks for Google credentials.
 */
export function emulatorFirestore(projectId: string, firestoreHost: string): Firestore {
  const previous = process.env.FIRESTORE_EMULATOR_HOST;
  process.env.FIRESTORE_EMULATOR_HOST = firestoreHost;
  try {
    return new Firestore({ projectId, host: firestoreHost, ssl: false });
  } finally {
    if (previous === undefined) delete process.env.FIRESTORE_EMULATOR_HOST;
    else process.env.FIRESTORE_EMULATOR_HOST = previous;
  }
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

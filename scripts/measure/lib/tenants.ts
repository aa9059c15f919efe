/** Tenants of a load run against a local stack; their keys come from seedTenantKeys. */
export { seedTenantKeys, type TenantKey } from "../../local/lib/demo-tenant";

/** Tenant ids of a load run: `load-<run>-t0`, `load-<run>-t1`, ... (fresh for every run). */
export function tenantIds(runId: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `load-${runId}-t${index}`);
}

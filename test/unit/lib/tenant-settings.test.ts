import { expect } from "chai";
import { DEFAULT_REDACTION_POLICY } from "../../../functions/src/lib/redaction-policy";
import {
  createCachedTenantSettings,
  settingsFromStored,
  validateStoredTenantLimits,
  type TenantSetting,
} from "../../../functions/src/lib/tenant-settings";

function reported() {
  const reports: Array<{ tenantId: string; setting: TenantSetting; violations: string }> = [];
  const onInvalid = (tenantId: string, setting: TenantSetting, violations: readonly string[]) =>
    reports.push({ tenantId, setting, violations: violations.join("; ") });
  return { reports, onInvalid };
}

describe("tenant settings: retention and rate limit", () => {
  it("reads retention_days and rate_limit_per_second beside the redaction policy", () => {
    const { reports, onInvalid } = reported();
    expect(
      settingsFromStored("acme", { retention_days: 7, rate_limit_per_second: 50 }, onInvalid),
    ).to.deep.equal({
      redaction: DEFAULT_REDACTION_POLICY,
      retentionDays: 7,
      rateLimitPerSecond: 50,
    });
    expect(settingsFromStored("acme", undefined, onInvalid)).to.deep.equal({
      redaction: DEFAULT_REDACTION_POLICY,
      retentionDays: undefined,
      rateLimitPerSecond: undefined,
    });
    expect(reports).to.deep.equal([]);
  });

  it("ignores a damaged value (the default applies) and reports which one", () => {
    const { reports, onInvalid } = reported();
    const settings = settingsFromStored(
      "acme",
      { retention_days: 0, rate_limit_per_second: "lots", redaction: {} },
      onInvalid,
    );
    expect(settings.retentionDays).to.equal(undefined);
    expect(settings.rateLimitPerSecond).to.equal(undefined);
    expect(reports.map((report) => report.setting)).to.deep.equal([
      "retention_days",
      "rate_limit_per_second",
    ]);
    expect(reports[0]?.violations).to.include("/retention_days must be >= 1");
  });

  it("validates the stored limits the CLI writes", () => {
    expect(validateStoredTenantLimits({})).to.equal(true);
    expect(validateStoredTenantLimits({ retention_days: 3650, rate_limit_per_second: 1 })).to.equal(
      true,
    );
    for (const invalid of [
      { retention_days: 3651 },
      { retention_days: 1.5 },
      { rate_limit_per_second: 0 },
      { rate_limit_per_second: 1_000_001 },
      { retention: 5 },
    ]) {
      expect(validateStoredTenantLimits(invalid), JSON.stringify(invalid)).to.equal(false);
    }
  });

  it("reads a tenant's settings once within the TTL for every setting", async () => {
    let reads = 0;
    const settings = createCachedTenantSettings(
      async () => {
        reads += 1;
        return { retention_days: 3, rate_limit_per_second: 9 };
      },
      { ttlSeconds: 60, maxEntries: 10, onInvalid: () => undefined, now: () => 0 },
    );
    expect((await settings.settingsFor("acme")).retentionDays).to.equal(3);
    expect((await settings.settingsFor("acme")).rateLimitPerSecond).to.equal(9);
    expect(reads).to.equal(1);
  });
});

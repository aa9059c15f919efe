import { expect } from "chai";
import { ConfigError, loadConfig } from "../../../functions/src/lib/config";

describe("loadConfig: retention, rate limit and write throttling", () => {
  it("defaults to 30 days, 2,000 records/s per tenant per instance with 2 s bursts, throttling on", () => {
    expect(loadConfig({})).to.deep.include({
      retentionDays: 30,
      tenantRateLimitPerSecond: 2_000,
      tenantRateLimitBurstSeconds: 2,
      firestoreThrottling: true,
    });
  });

  it("reads them, and 0 turns the default rate limit off", () => {
    expect(
      loadConfig({
        RETENTION_DAYS: "400",
        TENANT_RATE_LIMIT_PER_SECOND: "0",
        TENANT_RATE_LIMIT_BURST_SECONDS: "10",
        FIRESTORE_THROTTLING: "false",
        RDP_LOCAL_STACK: "true",
      }),
    ).to.deep.include({
      retentionDays: 400,
      tenantRateLimitPerSecond: 0,
      tenantRateLimitBurstSeconds: 10,
      firestoreThrottling: false,
    });
  });

  it("refuses values out of range", () => {
    for (const env of [
      { RETENTION_DAYS: "0" },
      { RETENTION_DAYS: "3651" },
      { RETENTION_DAYS: "7.5" },
      { TENANT_RATE_LIMIT_PER_SECOND: "-1" },
      { TENANT_RATE_LIMIT_BURST_SECONDS: "0" },
      { FIRESTORE_THROTTLING: "off" },
    ]) {
      expect(() => loadConfig(env), JSON.stringify(env)).to.throw(ConfigError);
    }
  });

  it("refuses FIRESTORE_THROTTLING=false outside a local stack", () => {
    expect(() => loadConfig({ FIRESTORE_THROTTLING: "false" })).to.throw(
      ConfigError,
      /FIRESTORE_THROTTLING=false is for local stacks only/,
    );
  });
});

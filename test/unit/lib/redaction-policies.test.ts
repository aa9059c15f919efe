import { expect } from "chai";
import {
  createCachedTenantSettings,
  type SettingsCacheOptions,
} from "../../../functions/src/lib/tenant-settings";
import {
  DEFAULT_REDACTION_POLICY,
  STRICTEST_REDACTION_POLICY,
  changeStoredPolicy,
  describePolicy,
  policyFromStored,
  validateStoredRedactionPolicy,
} from "../../../functions/src/lib/redaction-policy";

function harness(options: Partial<SettingsCacheOptions> = {}) {
  let clock = 0;
  const reads: string[] = [];
  const invalid: Array<{ tenantId: string; violations: readonly string[] }> = [];
  const stored = new Map<string, unknown>();
  let failing = false;
  const settings = createCachedTenantSettings(
    async (tenantId) => {
      reads.push(tenantId);
      if (failing) throw new Error("deadline exceeded");
      return stored.has(tenantId) ? { redaction: stored.get(tenantId) } : undefined;
    },
    {
      ttlSeconds: 60,
      maxEntries: 3,
      onInvalid: (tenantId, _setting, violations) => invalid.push({ tenantId, violations }),
      now: () => clock,
      ...options,
    },
  );
  const policies = {
    policyFor: async (tenantId: string) => (await settings.settingsFor(tenantId)).redaction,
  };
  return {
    policies,
    reads,
    invalid,
    stored,
    advance: (ms: number) => (clock += ms),
    fail: (value: boolean) => (failing = value),
  };
}

describe("redaction policy schema", () => {
  const valid: unknown[] = [
    {},
    { kinds: { ip: true } },
    { kinds: { phone: false, credential: false } },
    { phone_regions: ["GB", "DE"] },
    { kinds: { email: true }, phone_regions: ["US"] },
  ];
  const invalid: unknown[] = [
    null,
    "ip",
    { kinds: { ip: "yes" } },
    { kinds: { names: true } },
    { phone_regions: ["XX"] },
    { phone_regions: ["gb"] },
    { phone_regions: ["GB", "GB"] },
    { phone_regions: Array.from({ length: 21 }, () => "GB") },
    { other: 1 },
  ];
  for (const value of valid) {
    it(`accepts ${JSON.stringify(value)}`, () => {
      expect(validateStoredRedactionPolicy(value)).to.equal(true);
    });
  }
  for (const value of invalid) {
    it(`rejects ${JSON.stringify(value)?.slice(0, 60)}`, () => {
      expect(validateStoredRedactionPolicy(value)).to.equal(false);
    });
  }

  it("an empty stored policy is the default", () => {
    expect(policyFromStored({})).to.deep.equal(DEFAULT_REDACTION_POLICY);
    expect(describePolicy(DEFAULT_REDACTION_POLICY).disabled).to.deep.equal(["ip"]);
  });

  it("a CLI change keeps only what differs from the default", () => {
    const once = changeStoredPolicy(undefined, { enable: ["ip"], disable: ["phone"] });
    expect(once).to.deep.equal({ kinds: { ip: true, phone: false } });
    const back = changeStoredPolicy(once, { enable: ["phone"], phoneRegions: ["GB", "DE"] });
    expect(back).to.deep.equal({ kinds: { ip: true }, phone_regions: ["GB", "DE"] });
    expect(changeStoredPolicy(back, { disable: ["ip"], phoneRegions: [] })).to.deep.equal({});
  });
});

describe("createCachedTenantSettings: the redaction policy", () => {
  it("reads a tenant once within the TTL, and again after it", async () => {
    const { policies, reads, stored, advance } = harness();
    stored.set("acme", { kinds: { ip: true } });
    expect((await policies.policyFor("acme")).enabled.ip).to.equal(true);
    advance(59_000);
    await policies.policyFor("acme");
    expect(reads).to.deep.equal(["acme"]);
    stored.set("acme", {});
    advance(2_000);
    expect((await policies.policyFor("acme")).enabled.ip).to.equal(false);
    expect(reads).to.deep.equal(["acme", "acme"]);
  });

  it("collapses concurrent first reads of one tenant into one", async () => {
    const { policies, reads } = harness();
    await Promise.all([policies.policyFor("acme"), policies.policyFor("acme")]);
    expect(reads).to.deep.equal(["acme"]);
  });

  it("gives a tenant without settings the default policy", async () => {
    const { policies } = harness();
    expect(await policies.policyFor("acme")).to.deep.equal(DEFAULT_REDACTION_POLICY);
  });

  it("keeps at most maxEntries tenants, dropping the least recently read", async () => {
    const { policies, reads } = harness();
    for (const tenant of ["a", "b", "c", "d"]) await policies.policyFor(tenant);
    await policies.policyFor("d");
    await policies.policyFor("b");
    expect(reads).to.deep.equal(["a", "b", "c", "d"]);
    await policies.policyFor("a");
    expect(reads).to.deep.equal(["a", "b", "c", "d", "a"]);
  });

  it("rejects when the read fails and does not remember the failure", async () => {
    const { policies, reads, fail } = harness();
    fail(true);
    let thrown: unknown;
    await policies.policyFor("acme").catch((error: unknown) => (thrown = error));
    expect(thrown).to.be.instanceOf(Error);
    fail(false);
    expect(await policies.policyFor("acme")).to.deep.equal(DEFAULT_REDACTION_POLICY);
    expect(reads).to.deep.equal(["acme", "acme"]);
  });

  it("applies every kind to a damaged stored policy and reports it", async () => {
    const { policies, stored, invalid } = harness();
    stored.set("acme", { kinds: { ip: "yes" } });
    expect(await policies.policyFor("acme")).to.deep.equal(STRICTEST_REDACTION_POLICY);
    expect(invalid).to.have.length(1);
    expect(invalid[0]?.tenantId).to.equal("acme");
    expect(invalid[0]?.violations.join()).to.include("/kinds/ip");
  });
});

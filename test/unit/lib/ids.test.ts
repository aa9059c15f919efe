import { expect } from "chai";
import { isLogId, isTenantId, newLogId } from "../../../functions/src/lib/ids";
import {
  UnsafePathError,
  failedLogPath,
  processedLogPath,
  tenantSettingsPath,
} from "../../../functions/src/lib/paths";

const unsafeIds = [
  "",
  " ",
  ".",
  "..",
  "a/b",
  "../other",
  "__name__",
  "__x__",
  "_leading",
  "-leading",
  "a b",
  "tab\tid",
  "line\nbreak",
  "nul\u0000id",
  "acme\u200b", // zero-width space
  "\u0430cme", // Cyrillic 'а' look-alike
  "ａｃｍｅ", // full-width letters
  "x".repeat(129),
];

describe("id rules", () => {
  for (const id of ["acme", "tenant-1", "t_2", "0", "a".repeat(63)]) {
    it(`accepts tenant id ${JSON.stringify(id.length > 20 ? `${id.slice(0, 8)}…(${id.length})` : id)}`, () => {
      expect(isTenantId(id)).to.equal(true);
    });
  }
  for (const id of [...unsafeIds, "Acme", "a".repeat(64), "a.b", "a:b"]) {
    it(`rejects tenant id ${JSON.stringify(id.slice(0, 20))}`, () => {
      expect(isTenantId(id)).to.equal(false);
    });
  }
  for (const id of ["123", "log-1", "A.b:c_d", "2024-01-01T00:00:00Z", "x".repeat(128)]) {
    it(`accepts log id ${JSON.stringify(id.slice(0, 24))}`, () => {
      expect(isLogId(id)).to.equal(true);
    });
  }
  for (const id of unsafeIds) {
    it(`rejects log id ${JSON.stringify(id.slice(0, 20))}`, () => {
      expect(isLogId(id)).to.equal(false);
    });
  }
  it("rejects non-strings", () => {
    for (const value of [undefined, null, 42, {}, ["acme"]]) {
      expect(isTenantId(value)).to.equal(false);
      expect(isLogId(value)).to.equal(false);
    }
  });

  it("assigns random, valid, non-sequential log ids", () => {
    const ids = Array.from({ length: 1000 }, newLogId);
    expect(new Set(ids).size).to.equal(1000);
    expect(ids.every(isLogId)).to.equal(true);
    const sorted = [...ids].sort();
    expect(sorted).to.not.deep.equal(ids);
  });
});

describe("Firestore paths", () => {
  it("puts records inside their tenant", () => {
    expect(processedLogPath("acme", "123")).to.equal("tenants/acme/processed_logs/123");
    const sha = "0123abcd".repeat(8);
    expect(failedLogPath("acme", "123", "log_id_conflict", sha)).to.equal(
      "tenants/acme/failed_logs/123~log_id_conflict~0123abcd0123abcd",
    );
    expect(failedLogPath("acme", "123", "invalid_message", null)).to.equal(
      "tenants/acme/failed_logs/123~invalid_message~none",
    );
  });

  it("keeps every failure out of reach of client log ids, which never contain '~'", () => {
    const path = failedLogPath("acme", "x", "log_id_conflict", "f".repeat(64));
    const id = path.split("/").at(-1) ?? "";
    expect(isLogId(id)).to.equal(false);
    expect(processedLogPath("acme", "x")).to.not.equal(
      path.replace("failed_logs", "processed_logs"),
    );
  });

  it("refuses ids that could leave the tenant's space", () => {
    expect(() => processedLogPath("acme/../other", "1")).to.throw(UnsafePathError);
    expect(() => processedLogPath("acme", "a/b")).to.throw(UnsafePathError);
    expect(() => failedLogPath("acme", "1", "../x", null)).to.throw(UnsafePathError);
    expect(() => failedLogPath("acme", "1", "expired", "../x")).to.throw(UnsafePathError);
    expect(() => tenantSettingsPath("acme/../other")).to.throw(UnsafePathError);
    expect(() => tenantSettingsPath("__acme__")).to.throw(UnsafePathError);
  });

  it("keeps a tenant's settings beside the API keys, one document per tenant", () => {
    expect(tenantSettingsPath("acme")).to.equal("tenant_settings/acme");
  });
});

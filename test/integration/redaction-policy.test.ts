/**
 * A tenant's redaction policy end to end: the tenant CLI writes it to the Firestore emulator,
 * and the worker of a real stack (ingest → Pub/Sub push → process) redacts by it, while another
 * tenant keeps the default.
 */
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import { Firestore } from "@google-cloud/firestore";
import { createFirestoreApiKeys } from "../../functions/src/lib/api-keys";
import { tenantCli } from "./support/ops-cli";
import { pollUntil, startTestStack, type TestStack } from "./support/stack";

const runId = randomUUID().slice(0, 8);

describe("redaction policy per tenant (tenant CLI → Firestore → worker)", function () {
  this.timeout(120_000);
  let stack: TestStack;
  let firestore: Firestore;
  const custom = `policy-${runId}`;
  const standard = `default-${runId}`;
  const damaged = `damaged-${runId}`;
  const keys = new Map<string, string>();
  const text = "login from 203.0.113.7, call 010-1234-5678 or 555-0199";

  const post = (tenant: string, logId: string) =>
    fetch(stack.ingestUrl, {
      method: "POST",
      body: JSON.stringify({ log_id: logId, text }),
      headers: {
        authorization: `Bearer ${keys.get(tenant)}`,
        "content-type": "application/json",
      },
    });
  const stored = (tenant: string, logId: string) =>
    pollUntil(
      async () => {
        const snapshot = await firestore.doc(`tenants/${tenant}/processed_logs/${logId}`).get();
        return snapshot.exists ? snapshot.data() : undefined;
      },
      { timeoutMs: 30_000, what: `tenants/${tenant}/processed_logs/${logId}` },
    );

  before(async () => {
    // TTL 0: every record reads the policy, so the test need not wait out a cache.
    stack = await startTestStack("policy", { REDACTION_POLICY_CACHE_SECONDS: "0" });
    firestore = new Firestore({ projectId: stack.project });
    const apiKeys = createFirestoreApiKeys(firestore);
    for (const tenant of [custom, standard, damaged]) {
      keys.set(tenant, (await apiKeys.create(tenant, "policy test")).key);
    }
  });
  after(async () => {
    await firestore?.terminate();
    await stack?.stop();
  });

  it("the CLI shows the default, changes it and refuses an unknown kind", async () => {
    const shown = await tenantCli(stack.project, ["policy", custom]);
    expect(shown.code).to.equal(0);
    expect(shown.json).to.deep.include({ disabled: ["ip"], stored: {} });

    const changed = await tenantCli(stack.project, [
      "policy",
      custom,
      "--enable",
      "ip",
      "--regions",
      "KR,GB",
    ]);
    expect(changed.code).to.equal(0);
    expect(changed.json).to.deep.include({
      enabled: ["email", "card", "ssn", "phone", "credential", "ip"],
      phone_regions: ["KR", "GB"],
      stored: { kinds: { ip: true }, phone_regions: ["KR", "GB"] },
    });
    const document = await firestore.doc(`tenant_settings/${custom}`).get();
    expect(document.get("redaction")).to.deep.equal({
      kinds: { ip: true },
      phone_regions: ["KR", "GB"],
    });

    expect((await tenantCli(stack.project, ["policy", custom, "--enable", "names"])).code).to.equal(
      2,
    );
  });

  it("the worker redacts by the tenant's policy and leaves other tenants on the default", async () => {
    expect((await post(custom, `a-${runId}`)).status).to.equal(202);
    expect((await post(standard, `b-${runId}`)).status).to.equal(202);
    const customDoc = await stored(custom, `a-${runId}`);
    const standardDoc = await stored(standard, `b-${runId}`);
    expect(customDoc.modified_data).to.equal(
      "login from [REDACTED], call [REDACTED] or [REDACTED]",
    );
    expect(customDoc.redactions).to.include({ ip: 1, phone: 2 });
    expect(standardDoc.modified_data).to.equal(
      "login from 203.0.113.7, call 010-1234-5678 or [REDACTED]",
    );
    expect(standardDoc.redactions).to.include({ ip: 0, phone: 1 });
  });

  it("a damaged stored policy makes the worker redact every kind", async () => {
    await firestore.doc(`tenant_settings/${damaged}`).set({ redaction: { kinds: { ip: "yes" } } });
    expect((await post(damaged, `c-${runId}`)).status).to.equal(202);
    const doc = await stored(damaged, `c-${runId}`);
    expect(doc.modified_data).to.equal("login from [REDACTED], call 010-1234-5678 or [REDACTED]");
    expect((await tenantCli(stack.project, ["policy", damaged])).code).to.equal(1);
    const reset = await tenantCli(stack.project, ["policy", damaged, "--reset"]);
    expect(reset.code).to.equal(0);
    expect(reset.json).to.deep.include({ stored: {} });
  });
});

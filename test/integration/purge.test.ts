/**
 * `npm run tenant -- purge` and `erase`, and `npm run status`, on the real emulators: two
 * tenants seeded through the pipeline and the tenant CLI; one purged, the other untouched.
 */
import { expect } from "chai";
import { Firestore, type DocumentReference } from "@google-cloud/firestore";
import { PubSub } from "@google-cloud/pubsub";
import { namesTenant } from "../../scripts/operate/lib/erase";
import { runCli, tenantCli } from "./support/ops-cli";
import { RUN_ID, TEST_PROJECT, type TestStack, pollUntil, startTestStack } from "./support/stack";

describe("tenant purge and erase, and status, on the emulators", function () {
  this.timeout(180_000);
  let stack: TestStack;
  let firestore: Firestore;
  let pubsub: PubSub;
  const project = ["--project", TEST_PROJECT];
  const count = async (path: string) =>
    (await firestore.collection(path).count().get()).data().count;

  /** Three records, a conflicting version of the first, and a dead letter naming the tenant. */
  async function seed(tenant: string): Promise<void> {
    const ndjson = [1, 2, 3]
      .map((n) => JSON.stringify({ tenant_id: tenant, log_id: `r${n}`, text: `record ${n}` }))
      .join("\n");
    const post = (body: string, type = "application/x-ndjson") =>
      fetch(stack.ingestUrl, { method: "POST", headers: { "content-type": type }, body });
    expect((await post(ndjson)).status).to.equal(202);
    await pollUntil(
      async () => (await count(`tenants/${tenant}/processed_logs`)) === 3 || undefined,
      {
        timeoutMs: 30_000,
        what: `${tenant}'s records`,
      },
    );
    const conflict = JSON.stringify({ tenant_id: tenant, log_id: "r1", text: "another text" });
    expect((await post(conflict, "application/json")).status).to.equal(202);
    // A log id no path may hold: the worker keeps the record in dead_letters.
    const record = { tenant_id: tenant, log_id: "not a log id", source: "json_upload", text: "x" };
    await pubsub.topic(stack.topic).publishMessage({
      data: Buffer.from(
        JSON.stringify({ v: 1, records: [{ ...record, received_at: new Date().toISOString() }] }),
      ),
    });
    expect((await tenantCli(TEST_PROJECT, ["policy", tenant, "--enable", "ip"])).code).to.equal(0);
    expect((await tenantCli(TEST_PROJECT, ["create", tenant])).code).to.equal(0);
    await pollUntil(
      async () =>
        (await count(`tenants/${tenant}/failed_logs`)) === 1 &&
        (await deadLettersOf(tenant)).length === 1
          ? true
          : undefined,
      { timeoutMs: 30_000, what: `${tenant}'s failure and dead letter` },
    );
  }

  const deadLettersOf = async (tenant: string) =>
    (await firestore.collection("dead_letters").get()).docs.filter((doc) =>
      namesTenant(doc.get("data_base64"), tenant),
    );

  /** Every document of the tenant, by path, with its update time. */
  async function documentsOf(tenant: string): Promise<Record<string, number | undefined>> {
    const found: Record<string, number | undefined> = {};
    const walk = async (ref: DocumentReference) => {
      const snapshot = await ref.get();
      if (snapshot.exists) found[ref.path] = snapshot.updateTime?.toMillis();
      for (const sub of await ref.listCollections()) {
        for (const doc of await sub.listDocuments()) await walk(doc);
      }
    };
    await walk(firestore.doc(`tenants/${tenant}`));
    await walk(firestore.doc(`tenant_settings/${tenant}`));
    const keys = await firestore.collection("api_keys").where("tenant_id", "==", tenant).get();
    for (const doc of [...keys.docs, ...(await deadLettersOf(tenant))]) {
      found[doc.ref.path] = doc.updateTime.toMillis();
    }
    return found;
  }

  before(async () => {
    stack = await startTestStack("purge", { AUTH_MODE: "disabled" });
    firestore = new Firestore({ projectId: TEST_PROJECT });
    pubsub = new PubSub({ projectId: TEST_PROJECT });
  });
  after(async () => {
    await pubsub?.close();
    await firestore?.terminate();
    await stack?.stop();
  });

  it("purges every document of one tenant and touches nothing of another", async () => {
    const [purged, kept] = [`purge-${RUN_ID}-a`, `purge-${RUN_ID}-b`];
    await Promise.all([seed(purged), seed(kept)]);
    const keptBefore = await documentsOf(kept);
    expect(Object.keys(keptBefore)).to.have.length(3 + 1 + 1 + 1 + 1);

    const status = await runCli("status.ts", [...project, "--tenant", purged, "--tenant", kept]);
    const seeded = { processed: 3, failed: { log_id_conflict: 1 } };
    expect(status.json.tenants).to.deep.equal([
      { tenant_id: purged, ...seeded },
      { tenant_id: kept, ...seeded },
    ]);
    expect(status.stdout).to.match(new RegExp(`${purged}\\s+3\\s+0\\s+0\\s+0\\s+1\\s+0\\s+0\\s+0`));

    const counts = {
      processed_logs: 3,
      failed_logs: 1,
      tenant_settings: 1,
      api_keys: 1,
      dead_letters: 1,
    };
    const dry = await tenantCli(TEST_PROJECT, ["purge", purged, "--dry-run"]);
    expect(dry.json).to.deep.equal({ tenant_id: purged, dry_run: true, documents: counts });
    expect(Object.keys(await documentsOf(purged)), "a dry run deletes nothing").to.have.length(7);

    const purge = await tenantCli(TEST_PROJECT, ["purge", purged]);
    expect(purge.code).to.equal(0);
    expect(purge.json).to.deep.equal({ tenant_id: purged, dry_run: false, documents: counts });
    expect(await documentsOf(purged)).to.deep.equal({});
    expect(await firestore.doc(`tenants/${purged}`).listCollections()).to.deep.equal([]);
    expect(await documentsOf(kept)).to.deep.equal(keptBefore);
    expect((await tenantCli(TEST_PROJECT, ["list", purged])).stdout.trim()).to.equal("[]");
  });

  it("erases exactly one record: its stored document and its failure entries", async () => {
    const tenant = `erase-${RUN_ID}`;
    await seed(tenant);
    const before = await documentsOf(tenant);
    const record = [`tenants/${tenant}/processed_logs/r1`];
    const failure = Object.keys(before).find((path) => path.includes("/failed_logs/r1~"));
    expect(failure).to.match(/r1~log_id_conflict~[0-9a-f]{16}$/);

    const dry = await tenantCli(TEST_PROJECT, ["erase", tenant, "r1", "--dry-run"]);
    expect(dry.json.documents).to.deep.equal([...record, failure]);
    expect(await documentsOf(tenant)).to.deep.equal(before);

    const erase = await tenantCli(TEST_PROJECT, ["erase", tenant, "r1"]);
    expect(erase.json).to.deep.equal({
      tenant_id: tenant,
      dry_run: false,
      log_id: "r1",
      documents: [...record, failure],
    });
    const remaining = { ...before };
    [...record, failure ?? ""].forEach((path) => delete remaining[path]);
    expect(await documentsOf(tenant)).to.deep.equal(remaining);

    expect((await tenantCli(TEST_PROJECT, ["erase", tenant, "r1"])).json.documents).to.deep.equal(
      [],
    );
    expect(
      (await tenantCli(TEST_PROJECT, ["erase", tenant, "../r2"])).code,
      "an unsafe id",
    ).to.equal(2);
    expect(await documentsOf(tenant)).to.deep.equal(remaining);
  });
});

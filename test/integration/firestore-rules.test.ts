/**
 * firestore.rules against the Firestore emulator: no client SDK, signed in or not, reads,
 * writes or lists anything; only the server SDKs (service account through IAM, which bypass
 * the rules) reach the data. The same reads succeed with the rules disabled, which proves the
 * emulator really enforces the loaded file and that this test can fail.
 */
import { expect } from "chai";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {
  assertFails,
  assertSucceeds,
  initializeTestEnvironment,
  type RulesTestContext,
  type RulesTestEnvironment,
} from "@firebase/rules-unit-testing";
import { setLogLevel } from "firebase/firestore";

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const RULES_FILE = path.join(REPO_ROOT, "firestore.rules");

/** The Firestore emulator of the integration run, as the hooks export it for every client. */
function emulatorHost(): { host: string; port: number } {
  const hostPort = process.env.FIRESTORE_EMULATOR_HOST?.trim();
  if (!hostPort) {
    throw new Error(
      "FIRESTORE_EMULATOR_HOST is not set: run this file through the integration hooks " +
        "(--require test/integration/support/hooks.ts), which start the emulators",
    );
  }
  const separator = hostPort.lastIndexOf(":");
  const host = hostPort.slice(0, separator).replace(/^\[(.*)\]$/, "$1");
  const port = Number(hostPort.slice(separator + 1));
  if (separator < 1 || !Number.isInteger(port)) {
    throw new Error(`FIRESTORE_EMULATOR_HOST="${hostPort}" is not host:port`);
  }
  return { host, port };
}

const TENANT = "x";
const DOCUMENTS = [
  `tenants/${TENANT}/processed_logs/y`,
  `tenants/${TENANT}/failed_logs/y`,
  "api_keys/z",
  "dead_letters/1",
  `tenants/${TENANT}`,
];
const COLLECTIONS = [
  "tenants",
  `tenants/${TENANT}/processed_logs`,
  `tenants/${TENANT}/failed_logs`,
  "api_keys",
  "dead_letters",
];
const COLLECTION_GROUPS = ["processed_logs", "failed_logs", "api_keys"];

describe("firestore.rules (deny-all) on the Firestore emulator", function () {
  this.timeout(60_000);
  // A project of its own: rules are loaded per project, so other suites' data is untouched.
  const projectId = `demo-rules-${randomUUID().slice(0, 8)}`;
  let testEnv: RulesTestEnvironment;

  before(async () => {
    // Every denial is expected; the client SDK would log each one as a warning.
    setLogLevel("silent");
    const rules = fs.readFileSync(RULES_FILE, "utf8");
    testEnv = await initializeTestEnvironment({
      projectId,
      firestore: { ...emulatorHost(), rules },
    });
    // Data the clients must not reach, written the way the server SDKs write it.
    await testEnv.withSecurityRulesDisabled(async (admin) => {
      const db = admin.firestore();
      for (const documentPath of DOCUMENTS) {
        await db.doc(documentPath).set({ tenant_id: TENANT, text: "secret record" });
      }
    });
  });

  after(async () => {
    await testEnv?.clearFirestore();
    await testEnv?.cleanup();
  });

  it("is the file firebase.json loads into the Firestore emulator", function () {
    const firebaseJson = path.join(REPO_ROOT, "firebase.json");
    if (!fs.existsSync(firebaseJson)) this.skip();
    const config = JSON.parse(fs.readFileSync(firebaseJson, "utf8")) as {
      firestore?: { rules?: string };
    };
    expect(config.firestore?.rules, "firebase.json firestore.rules").to.equal("firestore.rules");
  });

  it("denies every document to everyone in the rules text itself", () => {
    const rules = fs.readFileSync(RULES_FILE, "utf8");
    expect(rules).to.match(/rules_version\s*=\s*['"]2['"]/);
    expect(rules).to.match(/match \/\{document=\*\*\}/);
    // No rule grants anything: every allow statement ends in `if false`.
    const allows = rules.match(/allow[^;]*;/g) ?? [];
    expect(allows).to.not.be.empty;
    for (const allow of allows) expect(allow).to.match(/:\s*if\s+false\s*;$/);
  });

  const clients: ReadonlyArray<[string, () => RulesTestContext]> = [
    ["an unauthenticated client", () => testEnv.unauthenticatedContext()],
    ["a signed-in client", () => testEnv.authenticatedContext("mallory")],
    [
      "a signed-in client whose token claims the tenant",
      () => testEnv.authenticatedContext("tenant-user", { tenant_id: TENANT, admin: true }),
    ],
  ];

  for (const [who, context] of clients) {
    describe(who, () => {
      for (const documentPath of DOCUMENTS) {
        it(`cannot read ${documentPath}`, async () => {
          await assertFails(context().firestore().doc(documentPath).get());
        });

        it(`cannot create, overwrite, update or delete ${documentPath}`, async () => {
          const doc = context().firestore().doc(documentPath);
          await assertFails(doc.set({ tenant_id: TENANT, text: "forged" }));
          await assertFails(doc.set({ text: "merged" }, { merge: true }));
          await assertFails(doc.update({ text: "updated" }));
          await assertFails(doc.delete());
        });
      }

      it("cannot create a new document anywhere", async () => {
        const db = context().firestore();
        await assertFails(db.doc(`tenants/${TENANT}/processed_logs/new-${randomUUID()}`).set({}));
        await assertFails(db.collection("api_keys").add({ tenant_id: TENANT, revoked_at: null }));
        await assertFails(db.doc(`anything/${randomUUID()}`).set({ a: 1 }));
      });

      for (const collectionPath of COLLECTIONS) {
        it(`cannot list ${collectionPath}`, async () => {
          const db = context().firestore();
          await assertFails(db.collection(collectionPath).get());
          await assertFails(db.collection(collectionPath).where("tenant_id", "==", TENANT).get());
        });
      }

      for (const group of COLLECTION_GROUPS) {
        it(`cannot query the ${group} collection group`, async () => {
          await assertFails(context().firestore().collectionGroup(group).get());
        });
      }
    });
  }

  describe("with the rules disabled (as the server SDKs are)", () => {
    it("reads every document, so the denials above come from the rules", async () => {
      await testEnv.withSecurityRulesDisabled(async (admin) => {
        const db = admin.firestore();
        for (const documentPath of DOCUMENTS) {
          const snapshot = await assertSucceeds(db.doc(documentPath).get());
          expect(snapshot.exists, documentPath).to.equal(true);
          expect(snapshot.get("text")).to.equal("secret record");
        }
        const listed = await assertSucceeds(
          db.collection(`tenants/${TENANT}/processed_logs`).get(),
        );
        expect(listed.size).to.equal(1);
      });
    });

    it("finds the documents untouched by every denied write", async () => {
      await testEnv.withSecurityRulesDisabled(async (admin) => {
        const db = admin.firestore();
        for (const documentPath of DOCUMENTS) {
          const snapshot = await db.doc(documentPath).get();
          expect(snapshot.data(), documentPath).to.deep.equal({
            tenant_id: TENANT,
            text: "secret record",
          });
        }
        expect((await db.collection("anything").get()).size).to.equal(0);
      });
    });
  });
});

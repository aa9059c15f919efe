import { expect } from "chai";
import type { Firestore } from "@google-cloud/firestore";
import { StoreTimeoutError, createFirestoreStore } from "../../../functions/src/lib/store";

/** A Firestore whose every write waits forever, as the client does while the backend is down. */
function unreachableFirestore(): Firestore {
  const never = () => new Promise<never>(() => undefined);
  return {
    doc: (path: string) => ({ path, set: never, create: never }),
    bulkWriter: () => ({ create: never, flush: never, onWriteError: () => undefined }),
  } as unknown as Firestore;
}

describe("createFirestoreStore", () => {
  it("fails a write Firestore does not answer within the timeout, so the delivery is retried", async () => {
    const store = createFirestoreStore(unreachableFirestore(), 50);
    const started = Date.now();
    const [created, deadLetter] = await Promise.allSettled([
      store.createProcessedLogs([
        {
          tenant_id: "acme",
          log_id: "l1",
          source: "json_upload",
          original_text: "t",
          modified_data: "t",
          redactions: { phone: 0, email: 0, card: 0, ssn: 0, credential: 0, ip: 0 },
          text_sha256: "0".repeat(64),
          received_at: new Date(),
          message_id: "m1",
          delivery_attempt: 1,
          expire_at: new Date(),
        },
      ]),
      store.recordDeadLetter({
        message_id: "m1",
        reason: "invalid_message",
        detail: "d",
        data_base64: "",
        record_index: null,
        delivery_attempt: 1,
        expire_at: new Date(),
      }),
    ]);
    expect(Date.now() - started).to.be.below(2_000);
    // Each write has its own result: the batch call itself never rejects.
    expect(created.status).to.equal("fulfilled");
    const [result] = (created as PromiseFulfilledResult<{ error?: unknown }[]>).value;
    expect(result?.error).to.be.instanceOf(StoreTimeoutError);
    expect(deadLetter.status).to.equal("rejected");
    expect((deadLetter as PromiseRejectedResult).reason).to.be.instanceOf(StoreTimeoutError);
  });
});

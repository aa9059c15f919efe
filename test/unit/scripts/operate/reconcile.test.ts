import { expect } from "chai";
import {
  type ExpectedRecord,
  type StoredDocument,
  expectedDocumentCount,
  formatReport,
  parseRecordsJsonl,
  reconcile,
  sha256Hex,
  tenantsOf,
  toReconcileJsonl,
  waitForDrain,
} from "../../../../scripts/operate/lib/reconcile";

const textOf = (n: number) => `record ${n}: jane@example.com called 555-0199 ✓`;

function accepted(n: number, tenant = "acme", text = textOf(n)): ExpectedRecord {
  return { tenant_id: tenant, log_id: `log-${n}`, text_sha256: sha256Hex(text) };
}

function processed(
  n: number,
  overrides: Record<string, unknown> = {},
  tenant = "acme",
  text = textOf(n),
): StoredDocument {
  const logId = `log-${n}`;
  return {
    path: `tenants/${tenant}/processed_logs/${logId}`,
    collection: "processed_logs",
    tenant,
    id: logId,
    data: {
      tenant_id: tenant,
      log_id: logId,
      original_text: text,
      text_sha256: sha256Hex(text),
      delivery_attempt: 1,
      message_id: `m${n}`,
      ...overrides,
    },
  };
}

function failed(
  n: number,
  reason: string,
  options: { variant?: string; text?: string; tenant?: string } = {},
): StoredDocument {
  const { tenant = "acme", text = textOf(n), variant } = options;
  const logId = `log-${n}`;
  const id = variant === undefined ? logId : `${logId}.${variant}`;
  return {
    path: `tenants/${tenant}/failed_logs/${id}`,
    collection: "failed_logs",
    tenant,
    id,
    data: {
      tenant_id: tenant,
      log_id: logId,
      reason,
      original_text: text,
      text_sha256: sha256Hex(text),
      delivery_attempt: 3,
      message_id: `m${n}`,
    },
  };
}

describe("reconcile", () => {
  it("passes a run whose every accepted record is stored once, and counts retries", () => {
    const report = reconcile({ accepted: [accepted(1), accepted(2), accepted(3, "globex")] }, [
      processed(1),
      processed(2, { delivery_attempt: 3 }),
      processed(3, {}, "globex"),
    ]);
    expect(report).to.deep.include({
      accepted: 3,
      stored: 3,
      missing: 0,
      duplicated: 0,
      wrongContent: 0,
      unexpected: 0,
      deadLettered: 0,
      tenants: 2,
      ok: true,
    });
    expect(report.retries).to.deep.equal({
      retried: 1,
      maxAttempt: 3,
      byAttempt: { "1": 2, "3": 1 },
    });
  });

  it("counts a record accepted twice with the same text once", () => {
    const report = reconcile({ accepted: [accepted(1), accepted(1)] }, [processed(1)]);
    expect(report).to.deep.include({ accepted: 1, acceptedRequests: 2, stored: 1, ok: true });
  });

  it("fails on a missing record and names it", () => {
    const report = reconcile({ accepted: [accepted(1), accepted(2)] }, [processed(1)]);
    expect(report).to.deep.include({ stored: 1, missing: 1, ok: false });
    expect(report.samples.missing).to.deep.equal(["acme/log-2"]);
  });

  it("finds a record stored in processed_logs and again in failed_logs as a duplicate", () => {
    const report = reconcile({ accepted: [accepted(1)] }, [processed(1), failed(1, "expired")]);
    expect(report).to.deep.include({ stored: 0, duplicated: 1, ok: false });
    expect(report.samples.duplicated[0]).to.include("processed_logs/log-1");
    expect(report.samples.duplicated[0]).to.include("failed_logs/log-1");
  });

  it("flags a document whose text is not the accepted one (and the record as missing)", () => {
    const report = reconcile({ accepted: [accepted(1)] }, [
      processed(1, {}, "acme", "someone else's text"),
    ]);
    expect(report).to.deep.include({ wrongContent: 1, missing: 1, ok: false });
  });

  it("re-hashes the stored text instead of trusting text_sha256", () => {
    const report = reconcile({ accepted: [accepted(1)] }, [
      processed(1, { original_text: "tampered", text_sha256: sha256Hex(textOf(1)) }),
    ]);
    expect(report).to.deep.include({ stored: 0, wrongContent: 1, missing: 1, ok: false });
  });

  it("flags a document whose tenant_id does not match its path", () => {
    const report = reconcile({ accepted: [accepted(1)] }, [processed(1, { tenant_id: "evil" })]);
    expect(report).to.deep.include({ wrongContent: 1, missing: 1, ok: false });
  });

  it("flags documents nobody sent in the run's tenants as unexpected", () => {
    const report = reconcile({ accepted: [accepted(1)], tenants: ["quiet"] }, [
      processed(1),
      processed(99),
      processed(5, {}, "quiet"),
    ]);
    expect(report).to.deep.include({ stored: 1, unexpected: 2, tenants: 2, ok: false });
    expect(report.samples.unexpected).to.have.members([
      "tenants/acme/processed_logs/log-99",
      "tenants/quiet/processed_logs/log-5",
    ]);
  });

  it("accepts a second text of one log id kept as log_id_conflict", () => {
    const first = accepted(1);
    const second = accepted(1, "acme", "a second version");
    const report = reconcile({ accepted: [first, second] }, [
      processed(1),
      failed(1, "log_id_conflict", {
        variant: `conflict-${second.text_sha256.slice(0, 16)}`,
        text: "a second version",
      }),
    ]);
    expect(report).to.deep.include({ accepted: 2, stored: 1, conflicts: 1, ok: true });
  });

  it("counts a record recorded as expired as dead-lettered, not lost", () => {
    const report = reconcile({ accepted: [accepted(1), accepted(2)] }, [
      processed(1),
      failed(2, "expired"),
    ]);
    expect(report).to.deep.include({ stored: 1, deadLettered: 1, missing: 0, ok: true });
    expect(report.deadLetteredByReason).to.deep.equal({ expired: 1 });
  });

  it("lets an in-doubt record be stored or not, but never twice", () => {
    const report = reconcile({ accepted: [accepted(1)], inDoubt: [accepted(2), accepted(3)] }, [
      processed(1),
      processed(2),
    ]);
    expect(report).to.deep.include({ inDoubt: 2, inDoubtStored: 1, unexpected: 0, ok: true });

    const twice = reconcile({ accepted: [], inDoubt: [accepted(2)] }, [
      processed(2),
      failed(2, "expired"),
    ]);
    expect(twice).to.deep.include({ duplicated: 1, ok: false });
  });

  it("treats a record both accepted and in doubt as accepted", () => {
    const report = reconcile({ accepted: [accepted(1)], inDoubt: [accepted(1)] }, [processed(1)]);
    expect(report).to.deep.include({ stored: 1, inDoubt: 0, ok: true });
  });

  it("covers every tenant named and expects one document per distinct record", () => {
    const input = {
      accepted: [accepted(1), accepted(1), accepted(2, "b")],
      inDoubt: [accepted(3, "c")],
      tenants: ["d"],
    };
    expect(tenantsOf(input)).to.deep.equal(["acme", "b", "c", "d"]);
    expect(expectedDocumentCount(input)).to.equal(2);
  });

  it("prints every figure of the summary and the verdict", () => {
    const ok = formatReport(reconcile({ accepted: [accepted(1)] }, [processed(1)]));
    for (const label of ["accepted", "stored", "missing", "duplicated", "unexpected"]) {
      expect(ok).to.match(new RegExp(`^  ${label} +\\d+`, "m"));
    }
    expect(ok).to.match(/dead-lettered +0/);
    expect(ok).to.include("RESULT: OK");
    const failedRun = formatReport(reconcile({ accepted: [accepted(1)] }, []));
    expect(failedRun).to.include("RESULT: FAILED");
    expect(failedRun).to.include("missing: acme/log-1");
  });
});

describe("parseRecordsJsonl", () => {
  const sha = sha256Hex("x");

  it("reads accepted and in-doubt records and skips blank lines", () => {
    const parsed = parseRecordsJsonl(
      `{"tenant_id":"a","log_id":"1","text_sha256":"${sha}"}\n\n` +
        `{"tenant_id":"a","log_id":"2","text_sha256":"${sha}","outcome":"in_doubt"}\n`,
    );
    expect(parsed.accepted).to.deep.equal([{ tenant_id: "a", log_id: "1", text_sha256: sha }]);
    expect(parsed.inDoubt).to.have.length(1);
  });

  it("refuses a malformed line with its number rather than skip a record", () => {
    expect(() =>
      parseRecordsJsonl(`{"tenant_id":"a","log_id":"1","text_sha256":"${sha}"}\n{`),
    ).to.throw(/line 2: not JSON/);
    expect(() => parseRecordsJsonl(`{"tenant_id":"a","log_id":"1","text_sha256":"abc"}`)).to.throw(
      /line 1: text_sha256/,
    );
    expect(() => parseRecordsJsonl(`{"log_id":"1","text_sha256":"${sha}"}`)).to.throw(/tenant_id/);
    expect(() =>
      parseRecordsJsonl(`{"tenant_id":"a","log_id":"1","text_sha256":"${sha}","outcome":"lost"}`),
    ).to.throw(/outcome/);
  });

  it("reads what the load runs write", () => {
    const jsonl = toReconcileJsonl({ accepted: [accepted(1)], inDoubt: [accepted(2)] });
    const parsed = parseRecordsJsonl(jsonl);
    expect(parsed.accepted).to.deep.equal([accepted(1)]);
    expect(parsed.inDoubt).to.deep.equal([accepted(2)]);
  });
});

describe("waitForDrain", () => {
  /** A fake clock: sleeping advances it, so no test waits for real. */
  function clock() {
    let time = 0;
    return { now: () => time, sleep: async (ms: number) => void (time += ms) };
  }

  it("returns once every record is there and nothing changed for the quiet period", async () => {
    const fake = clock();
    const counts = [0, 2, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5];
    const result = await waitForDrain(async () => counts.shift() ?? 5, 5, {
      timeoutMs: 60_000,
      quietMs: 2_000,
      pollMs: 500,
      ...fake,
    });
    expect(result).to.deep.include({ drained: true, reason: "complete", documents: 5 });
    expect(result.waitedMs).to.equal(3_500);
  });

  it("keeps waiting while the worker is still active, even with every record there", async () => {
    const fake = clock();
    let activity = 0;
    const result = await waitForDrain(async () => 5, 5, {
      timeoutMs: 10_000,
      quietMs: 2_000,
      pollMs: 500,
      activity: () => (fake.now() < 6_000 ? activity++ : activity),
      ...fake,
    });
    expect(result.reason).to.equal("complete");
    expect(result.waitedMs).to.be.at.least(8_000);
  });

  it("gives up when records are absent and nothing moves, or when time runs out", async () => {
    const stalled = await waitForDrain(async () => 3, 5, {
      timeoutMs: 60_000,
      quietMs: 1_000,
      stallMs: 5_000,
      pollMs: 500,
      ...clock(),
    });
    expect(stalled).to.deep.include({ drained: false, reason: "stalled", documents: 3 });

    let n = 0;
    const timedOut = await waitForDrain(async () => n++, 1_000_000, {
      timeoutMs: 3_000,
      quietMs: 1_000,
      pollMs: 500,
      ...clock(),
    });
    expect(timedOut).to.deep.include({ drained: false, reason: "timeout" });
  });
});

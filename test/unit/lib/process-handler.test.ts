import { expect } from "chai";
import { AttemptTracker } from "../../../functions/src/lib/attempts";
import { loadConfig } from "../../../functions/src/lib/config";
import { InjectedFault, createFaultInjector } from "../../../functions/src/lib/faults";
import { createLogger } from "../../../functions/src/lib/logger";
import {
  processDelivery,
  type Delivery,
  type ProcessDeps,
} from "../../../functions/src/lib/process-handler";
import { deadLetterPath, failedLogPath, processedLogPath } from "../../../functions/src/lib/paths";
import {
  DEFAULT_REDACTION_POLICY,
  policyFromStored,
  type RedactionPolicy,
} from "../../../functions/src/lib/redaction-policy";
import { compileValidators, type PipelineRecord } from "../../../functions/src/lib/schema";
import type {
  CreateResult,
  DeadLetter,
  FailedLog,
  ProcessedLog,
  RecordStore,
} from "../../../functions/src/lib/store";

/** An in-memory RecordStore with Firestore's create-if-absent semantics, keyed by path. */
class MemoryStore implements RecordStore {
  readonly processed = new Map<string, ProcessedLog>();
  readonly failed = new Map<string, FailedLog>();
  readonly deadLetters = new Map<string, DeadLetter>();
  readonly failedAttempts = new Map<string, number>();
  /** Writes of these log ids fail with this error; the others go through. */
  failWritesOf: { logIds: ReadonlySet<string> | "all"; error: { code: number } } | undefined;
  /** Writes of these log ids land although their result is an error (a lost answer). */
  landDespiteError: ReadonlySet<string> = new Set();
  createCalls = 0;

  async createProcessedLogs(logs: readonly ProcessedLog[]): Promise<CreateResult[]> {
    return logs.map((log) => {
      this.createCalls += 1;
      const key = processedLogPath(log.tenant_id, log.log_id);
      const failing = this.failWritesOf;
      if (failing && (failing.logIds === "all" || failing.logIds.has(log.log_id))) {
        if (this.landDespiteError.has(log.log_id) && !this.processed.has(key)) {
          this.processed.set(key, log);
        }
        return { error: Object.assign(new Error("store error"), failing.error) };
      }
      const existing = this.processed.get(key);
      if (existing) return { created: false as const, existingSha256: existing.text_sha256 };
      this.processed.set(key, log);
      return { created: true as const };
    });
  }
  async recordFailedLog(failed: FailedLog, options: { unlessStored?: boolean } = {}) {
    const stored = this.processed.get(processedLogPath(failed.tenant_id, failed.log_id));
    if (options.unlessStored && stored?.text_sha256 === failed.text_sha256) {
      return "already_stored" as const;
    }
    const key = failedLogPath(failed.tenant_id, failed.log_id, failed.reason, failed.text_sha256);
    if (!this.failed.has(key)) this.failed.set(key, failed);
    return "recorded" as const;
  }
  async recordDeadLetter(letter: DeadLetter) {
    const key = deadLetterPath(letter.message_id, letter.record_index ?? undefined);
    if (!this.deadLetters.has(key)) this.deadLetters.set(key, letter);
  }
  async countFailedAttempt(messageId: string) {
    const failures = (this.failedAttempts.get(messageId) ?? 0) + 1;
    this.failedAttempts.set(messageId, failures);
    return failures;
  }
  failedOf(logId: string): FailedLog[] {
    return [...this.failed.values()].filter((failed) => failed.log_id === logId);
  }
}

const NOW = new Date("2026-11-28T12:00:00.000Z");

function setup(env: Record<string, string> = {}, store = new MemoryStore()) {
  const config = loadConfig({ RDP_LOCAL_STACK: "true", ...env });
  const logs: string[] = [];
  const slept: number[] = [];
  const policies = {
    byTenant: new Map<string, RedactionPolicy>(),
    retentionDays: new Map<string, number>(),
    readFails: false,
  };
  const deps: ProcessDeps = {
    config,
    validators: compileValidators(config),
    store,
    logger: createLogger((line) => logs.push(line), config),
    attempts: new AttemptTracker(),
    faults: createFaultInjector(config.faults, () => {
      throw new Error("crash");
    }),
    tenantSettings: {
      settingsFor: async (tenantId) => {
        if (policies.readFails) throw new Error("policy read timed out");
        return {
          redaction: policies.byTenant.get(tenantId) ?? DEFAULT_REDACTION_POLICY,
          retentionDays: policies.retentionDays.get(tenantId),
          rateLimitPerSecond: undefined,
        };
      },
    },
    sleep: async (ms) => {
      slept.push(ms);
    },
    now: () => NOW,
  };
  return { deps, store, logs, slept, policies };
}

function record(overrides: Partial<PipelineRecord> = {}): PipelineRecord {
  return {
    tenant_id: "acme",
    log_id: "123",
    source: "json_upload",
    text: "User 555-0199 accessed system",
    received_at: "2026-11-28T11:59:59.000Z",
    ...overrides,
  };
}

function delivery(payload: unknown, overrides: Partial<Delivery> = {}): Delivery {
  return {
    messageId: "m-1",
    publishTime: "2026-11-28T11:59:59.500Z",
    dataBase64: Buffer.from(
      typeof payload === "string" ? payload : JSON.stringify(payload),
    ).toString("base64"),
    deliveryAttempt: undefined,
    ...overrides,
  };
}

describe("processDelivery", () => {
  it("stores the brief's record redacted, with every documented field", async () => {
    const { deps, store } = setup();
    await processDelivery(delivery({ v: 1, records: [record()] }), deps);
    const stored = store.processed.get("tenants/acme/processed_logs/123");
    expect(stored).to.deep.include({
      tenant_id: "acme",
      log_id: "123",
      source: "json_upload",
      original_text: "User 555-0199 accessed system",
      modified_data: "User [REDACTED] accessed system",
      message_id: "m-1",
      delivery_attempt: 1,
    });
    expect(stored?.redactions).to.deep.equal({
      email: 0,
      card: 0,
      ssn: 0,
      phone: 1,
      credential: 0,
      ip: 0,
    });
    expect(stored?.received_at.toISOString()).to.equal("2026-11-28T11:59:59.000Z");
    expect(stored?.text_sha256).to.match(/^[0-9a-f]{64}$/);
  });

  it("stores every record of a multi-record message in its own tenant", async () => {
    const { deps, store } = setup();
    const records = [
      record({ log_id: "a" }),
      record({ tenant_id: "globex", log_id: "b", source: "text_upload" }),
    ];
    await processDelivery(delivery({ v: 1, records }), deps);
    expect([...store.processed.keys()].sort()).to.deep.equal([
      "tenants/acme/processed_logs/a",
      "tenants/globex/processed_logs/b",
    ]);
  });

  it("leaves one document when the same message is delivered twice", async () => {
    const { deps, store, logs } = setup();
    const message = delivery({ v: 1, records: [record()] });
    await processDelivery(message, deps);
    await processDelivery(message, deps);
    expect(store.processed.size).to.equal(1);
    expect(store.failed.size).to.equal(0);
    expect(logs.some((line) => line.includes("duplicate delivery ignored"))).to.equal(true);
  });

  it("keeps the first version and records a conflicting one in failed_logs", async () => {
    const { deps, store } = setup();
    await processDelivery(delivery({ v: 1, records: [record({ text: "first" })] }), deps);
    await processDelivery(
      delivery({ v: 1, records: [record({ text: "second" })] }, { messageId: "m-2" }),
      deps,
    );
    expect(store.processed.get("tenants/acme/processed_logs/123")?.original_text).to.equal("first");
    const [[key, failed]] = [...store.failed.entries()] as [[string, FailedLog]];
    expect(key).to.match(/^tenants\/acme\/failed_logs\/123~log_id_conflict~[0-9a-f]{16}$/);
    expect(failed).to.include({
      reason: "log_id_conflict",
      original_text: "second",
      message_id: "m-2",
    });
  });

  it("throws on a transient store failure so Pub/Sub redelivers, and counts the attempt", async () => {
    const { deps, store } = setup();
    const message = delivery({ v: 1, records: [record()] });
    store.failWritesOf = { logIds: "all", error: { code: 14 } }; // UNAVAILABLE
    let thrown: unknown;
    await processDelivery(message, deps).catch((error: unknown) => (thrown = error));
    expect(thrown).to.be.instanceOf(Error);
    store.failWritesOf = undefined;
    await processDelivery(message, deps);
    expect(store.processed.get("tenants/acme/processed_logs/123")?.delivery_attempt).to.equal(2);
  });

  it("redacts each record under its own tenant's redaction policy", async () => {
    const { deps, store, policies } = setup();
    policies.byTenant.set("acme", policyFromStored({ kinds: { ip: true, phone: false } }));
    const text = "login from 203.0.113.7 by 555-0199";
    const records = [record({ text }), record({ tenant_id: "globex", text })];
    await processDelivery(delivery({ v: 1, records }), deps);
    expect(store.processed.get("tenants/acme/processed_logs/123")?.modified_data).to.equal(
      "login from [REDACTED] by 555-0199",
    );
    expect(store.processed.get("tenants/acme/processed_logs/123")?.redactions).to.include({
      ip: 1,
      phone: 0,
    });
    expect(store.processed.get("tenants/globex/processed_logs/123")?.modified_data).to.equal(
      "login from 203.0.113.7 by [REDACTED]",
    );
  });

  it("throws when a tenant's policy cannot be read, so Pub/Sub redelivers; stores nothing", async () => {
    const { deps, store, policies } = setup();
    const message = delivery({ v: 1, records: [record()] });
    policies.readFails = true;
    let thrown: unknown;
    await processDelivery(message, deps).catch((error: unknown) => (thrown = error));
    expect(thrown).to.be.instanceOf(Error);
    expect(store.processed.size).to.equal(0);
    expect(store.failed.size).to.equal(0);
    policies.readFails = false;
    await processDelivery(message, deps);
    expect(store.processed.get("tenants/acme/processed_logs/123")?.modified_data).to.equal(
      "User [REDACTED] accessed system",
    );
  });

  it("prefers the attempt number Pub/Sub reports", async () => {
    const { deps, store } = setup();
    await processDelivery(delivery({ v: 1, records: [record()] }, { deliveryAttempt: 5 }), deps);
    expect(store.processed.get("tenants/acme/processed_logs/123")?.delivery_attempt).to.equal(5);
  });

  it("keeps a record failing its last attempt in failed_logs and acks, stores its neighbours", async () => {
    const { deps, store } = setup({ MAX_DELIVERY_ATTEMPTS: "3", FAULT_POISON_MARKER: "poison" });
    const message = delivery({
      v: 1,
      records: [record({ log_id: "bad", text: "a poison record" }), record({ log_id: "good" })],
    });
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      let thrown: unknown;
      await processDelivery(message, deps).catch((error: unknown) => (thrown = error));
      expect(thrown, `attempt ${attempt}`).to.be.instanceOf(InjectedFault);
    }
    await processDelivery(message, deps);
    const [failed] = store.failedOf("bad");
    expect(failed).to.include({
      reason: "retries_exhausted",
      delivery_attempt: 3,
      original_text: "a poison record",
    });
    expect(failed?.detail).to.match(/Failed 3 attempts.*InjectedFault/);
    expect([...store.processed.keys()]).to.deep.equal(["tenants/acme/processed_logs/good"]);
    expect(store.failed.size).to.equal(1);
  });

  it("still throws on the last attempt when the failure cannot even be recorded", async () => {
    const { deps, store } = setup({ MAX_DELIVERY_ATTEMPTS: "2" });
    store.failWritesOf = { logIds: "all", error: { code: 14 } };
    store.recordFailedLog = async () => {
      throw Object.assign(new Error("unavailable"), { code: 14 });
    };
    const message = delivery({ v: 1, records: [record()] }, { deliveryAttempt: 2 });
    let thrown: unknown;
    await processDelivery(message, deps).catch((error: unknown) => (thrown = error));
    expect(thrown).to.be.instanceOf(Error);
    expect(store.failed.size).to.equal(0);
  });

  it("records a document Firestore refuses (INVALID_ARGUMENT) as failed and acks", async () => {
    const { deps, store } = setup();
    store.failWritesOf = { logIds: "all", error: { code: 3 } };
    await processDelivery(delivery({ v: 1, records: [record()] }), deps);
    expect(store.failedOf("123")[0]).to.include({ reason: "rejected_by_store" });
  });

  it("records a record that fails the schema in the tenant's failed_logs, without retrying", async () => {
    const { deps, store } = setup();
    const broken = { v: 1, records: [{ ...record(), text: "", extra: true }] };
    await processDelivery(delivery(broken), deps);
    expect(store.createCalls).to.equal(0);
    const [failed] = store.failedOf("123");
    expect(failed).to.include({ reason: "invalid_record", source: "json_upload" });
    expect(failed?.detail).to.match(/pipeline schema/);
    expect(store.deadLetters.size).to.equal(0);
  });

  it("stores the valid neighbours of a record that fails the schema", async () => {
    const { deps, store } = setup({ MAX_TEXT_CHARS: "10" });
    const records = [
      record({ log_id: "ok-1", text: "short" }),
      record({ log_id: "too-long", text: "longer than ten" }),
      record({ log_id: "ok-2", text: "short too" }),
    ];
    await processDelivery(delivery({ v: 1, records }), deps);
    expect([...store.processed.values()].map((log) => log.log_id).sort()).to.deep.equal([
      "ok-1",
      "ok-2",
    ]);
    expect(store.failedOf("too-long").map((failed) => failed.reason)).to.deep.equal([
      "invalid_record",
    ]);
  });

  it("dead-letters only the record of a message that names no usable tenant", async () => {
    const { deps, store } = setup();
    const records = [record({ log_id: "ok" }), { ...record(), tenant_id: "../x" }];
    await processDelivery(delivery({ v: 1, records }), deps);
    expect(store.processed.size).to.equal(1);
    const letter = store.deadLetters.get("dead_letters/m-1~1");
    expect(letter).to.include({ reason: "invalid_record", record_index: 1 });
    const raw = JSON.parse(Buffer.from(letter?.data_base64 ?? "", "base64").toString("utf8"));
    expect(raw).to.deep.include({ tenant_id: "../x" });
  });

  it("records every record of a message of an unknown version, in its tenant", async () => {
    const { deps, store } = setup();
    await processDelivery(delivery({ v: 2, records: [record({ log_id: "a" })] }), deps);
    expect(store.processed.size).to.equal(0);
    expect(store.failedOf("a")[0]).to.include({ reason: "invalid_message" });
    expect(store.failedOf("a")[0]?.detail).to.match(/envelope/);
  });

  const deadLetterCases: ReadonlyArray<[string, unknown]> = [
    ["data that is not JSON", "not json {"],
    ["a JSON value without records", { hello: "world" }],
    ["a JSON value that is not a message", 42],
    ["a message without records", { v: 1, records: [] }],
  ];
  for (const [name, payload] of deadLetterCases) {
    it(`puts ${name} in dead_letters and acks`, async () => {
      const { deps, store } = setup();
      await processDelivery(delivery(payload), deps);
      expect(store.deadLetters.get("dead_letters/m-1")).to.include({
        reason: "invalid_message",
        record_index: null,
      });
      expect(store.processed.size).to.equal(0);
    });
  }

  const old = { publishTime: "2026-11-28T10:00:00.000Z" };

  it("still stores the records of an event older than the maximum age", async () => {
    const { deps, store } = setup({ MAX_EVENT_AGE_SECONDS: "3600" });
    await processDelivery(delivery({ v: 1, records: [record()] }, old), deps);
    expect(store.processed.size).to.equal(1);
    expect(store.failed.size).to.equal(0);
  });

  it("gives up on an old event's failing records as expired instead of retrying them", async () => {
    const { deps, store } = setup({ MAX_EVENT_AGE_SECONDS: "3600" });
    store.failWritesOf = { logIds: new Set(["b"]), error: { code: 14 } };
    const records = [record({ log_id: "a" }), record({ log_id: "b", text: "other" })];
    await processDelivery(delivery({ v: 1, records }, old), deps);
    expect([...store.processed.values()].map((log) => log.log_id)).to.deep.equal(["a"]);
    expect(store.failedOf("b")[0]).to.include({ reason: "expired", original_text: "other" });
    expect(store.failedOf("a")).to.deep.equal([]);
  });

  it("records no failure for an expired event's records an earlier attempt stored", async () => {
    const { deps, store } = setup({ MAX_EVENT_AGE_SECONDS: "3600" });
    const message = delivery({ v: 1, records: [record()] }, old);
    // The earlier attempt's write landed, but its answer was lost; now the store is failing.
    store.landDespiteError = new Set(["123"]);
    store.failWritesOf = { logIds: "all", error: { code: 4 } }; // DEADLINE_EXCEEDED
    await processDelivery(message, deps);
    expect(store.processed.size).to.equal(1);
    expect(store.failed.size).to.equal(0);
  });

  it("on the last attempt, keeps in failed_logs only the records that are not stored", async () => {
    const { deps, store } = setup({ MAX_DELIVERY_ATTEMPTS: "2" });
    const records = [
      record({ log_id: "landed", text: "one" }),
      record({ log_id: "lost", text: "two" }),
      record({ log_id: "fine", text: "three" }),
    ];
    const message = delivery({ v: 1, records });
    // On both attempts the answers of two writes never come back: "landed" reached
    // Firestore on the first, "lost" never did.
    store.failWritesOf = { logIds: new Set(["landed", "lost"]), error: { code: 4 } };
    store.landDespiteError = new Set(["landed"]);
    await processDelivery(message, deps).catch(() => undefined);
    await processDelivery(message, deps);
    expect(store.failed.size).to.equal(1);
    expect(store.failedOf("lost")[0]).to.include({ reason: "retries_exhausted" });
    expect([...store.processed.values()].map((log) => log.log_id).sort()).to.deep.equal([
      "fine",
      "landed",
    ]);
  });

  it("counts failed attempts across instances: the limit holds when attempts move", async () => {
    const shared = new MemoryStore();
    const env = { MAX_DELIVERY_ATTEMPTS: "3", FAULT_POISON_MARKER: "poison" };
    const instances = [setup(env, shared), setup(env, shared)];
    const message = delivery({ v: 1, records: [record({ text: "poison" })] });
    const outcomes: string[] = [];
    for (const instance of [0, 1, 0]) {
      await processDelivery(message, (instances[instance] as { deps: ProcessDeps }).deps).then(
        () => outcomes.push("acked"),
        () => outcomes.push("retried"),
      );
    }
    expect(outcomes).to.deep.equal(["retried", "retried", "acked"]);
    expect(shared.failedOf("123")[0]).to.include({
      reason: "retries_exhausted",
      delivery_attempt: 3,
    });
  });

  it("writes the first of two records with one log id; a different repeat is a conflict", async () => {
    const { deps, store } = setup();
    const records = [
      record({ text: "first" }),
      record({ text: "first" }),
      record({ text: "second" }),
    ];
    await processDelivery(delivery({ v: 1, records }), deps);
    expect(store.createCalls).to.equal(1);
    expect(store.processed.get(processedLogPath("acme", "123"))?.original_text).to.equal("first");
    expect(
      store.failedOf("123").map((failed) => [failed.reason, failed.original_text]),
    ).to.deep.equal([["log_id_conflict", "second"]]);
  });

  it("never overwrites a failure: each conflicting text keeps its own document", async () => {
    const { deps, store } = setup();
    await processDelivery(delivery({ v: 1, records: [record({ text: "first" })] }), deps);
    for (const [messageId, text] of [
      ["m-2", "second"],
      ["m-3", "third"],
      ["m-4", "second"],
    ] as const) {
      await processDelivery(delivery({ v: 1, records: [record({ text })] }, { messageId }), deps);
    }
    const failures = store
      .failedOf("123")
      .map((failed) => [failed.original_text, failed.message_id]);
    expect(failures).to.deep.equal([
      ["second", "m-2"],
      ["third", "m-3"],
    ]);
  });

  it("spends the configured simulated work per character", async () => {
    const { deps, slept } = setup({ SIMULATED_WORK_MS_PER_CHAR: "0.5" });
    await processDelivery(delivery({ v: 1, records: [record({ text: "abcd" })] }), deps);
    expect(slept).to.deep.equal([2]);
  });

  it("fails the first attempts when fault injection asks for it, then stores once", async () => {
    const { deps, store } = setup({ FAULT_FAIL_FIRST_ATTEMPTS: "2" });
    const message = delivery({ v: 1, records: [record()] });
    for (let attempt = 1; attempt <= 2; attempt += 1) {
      let thrown: unknown;
      await processDelivery(message, deps).catch((error: unknown) => (thrown = error));
      expect(thrown).to.be.instanceOf(InjectedFault);
    }
    await processDelivery(message, deps);
    expect(store.processed.get("tenants/acme/processed_logs/123")?.delivery_attempt).to.equal(3);
  });

  it("writes no line for a stored record unless LOG_RECORD_SUCCESS is on, but counts it", async () => {
    const { deps, logs } = setup();
    await processDelivery(delivery({ v: 1, records: [record()] }), deps);
    expect(logs).to.deep.equal([]);
    expect(deps.logger.takeRecordCounts()).to.deep.equal({ records_stored: 1 });
  });

  it("logs ids and never the record text", async () => {
    const { deps, logs } = setup({ LOG_RECORD_SUCCESS: "true" });
    await processDelivery(
      delivery({ v: 1, records: [record({ text: "marker-7f3a 555-0199" })] }),
      deps,
    );
    expect(logs.join("\n")).to.not.include("marker-7f3a");
    expect(JSON.parse(logs[0] ?? "{}")).to.include({
      severity: "DEBUG",
      message: "record stored",
      tenant_id: "acme",
      log_id: "123",
      message_id: "m-1",
      attempt: 1,
    });
  });
});

describe("processDelivery: retention", () => {
  const DAY_MS = 24 * 60 * 60 * 1000;
  const daysAfterNow = (document: { expire_at: Date } | undefined) =>
    document === undefined ? undefined : (document.expire_at.getTime() - NOW.getTime()) / DAY_MS;

  it("sets expire_at to now plus RETENTION_DAYS, or the tenant's retention_days", async () => {
    const { deps, store, policies } = setup({ RETENTION_DAYS: "45" });
    policies.retentionDays.set("globex", 7);
    const records = [record({ log_id: "a" }), record({ tenant_id: "globex", log_id: "b" })];
    await processDelivery(delivery({ v: 1, records }), deps);
    expect(daysAfterNow(store.processed.get("tenants/acme/processed_logs/a"))).to.equal(45);
    expect(daysAfterNow(store.processed.get("tenants/globex/processed_logs/b"))).to.equal(7);
  });

  it("gives failed records their tenant's retention and dead letters the default", async () => {
    const { deps, store, policies } = setup();
    policies.retentionDays.set("acme", 3);
    const records = [record({ log_id: "a" }), { tenant_id: "acme", log_id: "bad" }, { text: 1 }];
    await processDelivery(delivery({ v: 1, records }), deps);
    const [failed] = store.failedOf("bad");
    expect(failed).to.include({ reason: "invalid_record" });
    expect(daysAfterNow(failed)).to.equal(3);
    expect(daysAfterNow(store.deadLetters.get("dead_letters/m-1~2"))).to.equal(30);
  });
});

import { expect } from "chai";
import {
  ConfigError,
  EVENTARC_SAFE_MESSAGE_BYTES,
  loadConfig,
} from "../../../functions/src/lib/config";

describe("loadConfig", () => {
  it("gives documented defaults for an empty environment", () => {
    const config = loadConfig({});
    expect(config).to.deep.include({
      topic: "rdp-ingest",
      maxBodyBytes: 262_144,
      maxTextChars: 100_000,
      publishTimeoutMs: 5_000,
      retryAfterSeconds: 5,
      simulatedWorkMsPerChar: 0,
      processTimeoutSeconds: 60,
      authMode: "api_key",
      apiKeyCacheSeconds: 30,
      logRecordSuccess: false,
      diagnosticsIntervalMs: 0,
    });
    expect(config.faults).to.deep.equal({
      failureRate: 0,
      failFirstAttempts: 0,
      crashRate: 0,
      poisonMarker: "",
    });
    expect(config.maxMessageBytes).to.be.at.most(EVENTARC_SAFE_MESSAGE_BYTES);
  });

  it("reads every value from the environment it is given", () => {
    const config = loadConfig({
      INGEST_TOPIC: "tenant-records",
      MAX_BODY_BYTES: "1024",
      MAX_TEXT_CHARS: "500",
      PUBLISH_TIMEOUT_MS: "250",
      AUTH_MODE: "disabled",
      SIMULATED_WORK_MS_PER_CHAR: "0.5",
      LOG_RECORD_SUCCESS: "true",
      DIAGNOSTICS_INTERVAL_MS: "1000",
    });
    expect(config).to.deep.include({
      logRecordSuccess: true,
      diagnosticsIntervalMs: 1000,
      topic: "tenant-records",
      maxBodyBytes: 1024,
      maxTextChars: 500,
      publishTimeoutMs: 250,
      authMode: "disabled",
      simulatedWorkMsPerChar: 0.5,
    });
  });

  it("returns a frozen object", () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).to.equal(true);
    expect(Object.isFrozen(config.faults)).to.equal(true);
  });

  const invalid: ReadonlyArray<[string, Record<string, string>, RegExp]> = [
    ["a non-numeric limit", { MAX_BODY_BYTES: "lots" }, /MAX_BODY_BYTES must be a whole number/],
    ["a fractional byte count", { MAX_BODY_BYTES: "10.5" }, /MAX_BODY_BYTES/],
    ["a zero publish timeout", { PUBLISH_TIMEOUT_MS: "0" }, /PUBLISH_TIMEOUT_MS/],
    ["an unknown auth mode", { AUTH_MODE: "none" }, /AUTH_MODE must be one of api_key, disabled/],
    [
      "a success-line switch other than true/false",
      { LOG_RECORD_SUCCESS: "yes" },
      /LOG_RECORD_SUCCESS/,
    ],
    ["a topic name with a slash", { INGEST_TOPIC: "a/b" }, /INGEST_TOPIC/],
    ["a reserved topic name", { INGEST_TOPIC: "goog-topic" }, /INGEST_TOPIC/],
    [
      "messages too large for Eventarc",
      { MAX_MESSAGE_BYTES: String(600 * 1024) },
      /MAX_MESSAGE_BYTES/,
    ],
    [
      "an event age beyond Eventarc's retry window",
      { MAX_EVENT_AGE_SECONDS: String(25 * 3600) },
      /MAX_EVENT_AGE_SECONDS/,
    ],
    [
      "a failure rate above 1",
      { FAULT_FAILURE_RATE: "1.5", RDP_LOCAL_STACK: "true" },
      /FAULT_FAILURE_RATE/,
    ],
  ];
  for (const [name, env, message] of invalid) {
    it(`rejects ${name}`, () => {
      expect(() => loadConfig(env)).to.throw(ConfigError, message);
    });
  }

  it("lists every invalid value at once", () => {
    expect(() => loadConfig({ MAX_BODY_BYTES: "x", AUTH_MODE: "y" }))
      .to.throw(ConfigError)
      .with.property("message")
      .that.matches(/MAX_BODY_BYTES[\s\S]*AUTH_MODE/);
  });

  it("rejects simulated work that could never finish inside the function timeout", () => {
    // The brief's 0.05 s per character: 100,000 characters would take 5,000 s.
    expect(() => loadConfig({ SIMULATED_WORK_MS_PER_CHAR: "50" })).to.throw(
      ConfigError,
      /can never finish inside PROCESS_TIMEOUT_SECONDS=60/,
    );
    expect(
      loadConfig({ SIMULATED_WORK_MS_PER_CHAR: "50", MAX_TEXT_CHARS: "1000" })
        .simulatedWorkMsPerChar,
    ).to.equal(50);
  });

  it("refuses a poison marker outside the local stacks, and reads it in them", () => {
    expect(() => loadConfig({ FAULT_POISON_MARKER: "poison-7f3a" })).to.throw(
      ConfigError,
      /local runs only[\s\S]*FAULT_POISON_MARKER/,
    );
    expect(
      loadConfig({ FAULT_POISON_MARKER: "poison-7f3a", RDP_LOCAL_STACK: "true" }).faults
        .poisonMarker,
    ).to.equal("poison-7f3a");
    expect(() =>
      loadConfig({ FAULT_POISON_MARKER: "x".repeat(201), RDP_LOCAL_STACK: "true" }),
    ).to.throw(ConfigError, /FAULT_POISON_MARKER/);
  });

  it("allows a maximum event age under a minute only on local stacks", () => {
    expect(() => loadConfig({ MAX_EVENT_AGE_SECONDS: "15" })).to.throw(
      ConfigError,
      /MAX_EVENT_AGE_SECONDS must be a whole number from 60/,
    );
    expect(
      loadConfig({ MAX_EVENT_AGE_SECONDS: "15", RDP_LOCAL_STACK: "true" }).maxEventAgeSeconds,
    ).to.equal(15);
    expect(() => loadConfig({ MAX_EVENT_AGE_SECONDS: "9", RDP_LOCAL_STACK: "true" })).to.throw(
      ConfigError,
      /MAX_EVENT_AGE_SECONDS must be a whole number from 10/,
    );
  });

  it("refuses a store timeout the process function could not wait for", () => {
    expect(loadConfig({ STORE_TIMEOUT_MS: "5000" }).storeTimeoutMs).to.equal(5000);
    expect(() => loadConfig({ STORE_TIMEOUT_MS: "60000", PROCESS_TIMEOUT_SECONDS: "60" })).to.throw(
      ConfigError,
      /STORE_TIMEOUT_MS=60000 must be below PROCESS_TIMEOUT_SECONDS=60/,
    );
  });

  it("refuses fault injection outside the local stacks", () => {
    expect(() => loadConfig({ FAULT_FAILURE_RATE: "0.2" })).to.throw(
      ConfigError,
      /local runs only/,
    );
    expect(() => loadConfig({ FAULT_CRASH_RATE: "0.01", K_SERVICE: "process" })).to.throw(
      ConfigError,
      /local runs only/,
    );
    expect(
      loadConfig({ FAULT_FAILURE_RATE: "0.2", RDP_LOCAL_STACK: "true" }).faults.failureRate,
    ).to.equal(0.2);
    expect(
      loadConfig({ FAULT_FAIL_FIRST_ATTEMPTS: "1", FUNCTIONS_EMULATOR: "true" }).faults
        .failFirstAttempts,
    ).to.equal(1);
  });
});

/**
 * Runtime configuration, parsed once from the environment into a typed object.
 *
 * Every function instance calls `loadConfig(process.env)` at start-up; an invalid
 * value throws a ConfigError there, so a misconfigured deployment fails to start
 * instead of misbehaving on the first request. Tests pass their own environment.
 */

export type AuthMode = "api_key" | "disabled";

export interface Config {
  /** Pub/Sub topic the ingest function publishes to and the process function listens on. */
  readonly topic: string;
  /** Largest request body accepted, in bytes (413 above it). */
  readonly maxBodyBytes: number;
  /** Largest record text accepted, in characters (Unicode code points). */
  readonly maxTextChars: number;
  /** Largest NDJSON batch body accepted, in bytes (413 above it). */
  readonly maxBatchBodyBytes: number;
  /** Most records one NDJSON batch may carry (413 above it). */
  readonly maxBatchRecords: number;
  /** Largest Pub/Sub message published, in bytes; kept well under Eventarc's 512 KB event cap. */
  readonly maxMessageBytes: number;
  /** How long ingest waits for Pub/Sub to acknowledge a publish before answering 503. */
  readonly publishTimeoutMs: number;
  /**
   * How long ingest holds a record to pack others that arrive meanwhile into the same
   * Pub/Sub message (0 = one message per record). Adds at most this much latency.
   */
  readonly coalesceWindowMs: number;
  /** Retry-After value (seconds) sent with 503 answers. */
  readonly retryAfterSeconds: number;
  /** Simulated heavy work in the worker, milliseconds per character of text (0 = off). */
  readonly simulatedWorkMsPerChar: number;
  /** The process function's timeout; simulated work must fit inside it. */
  readonly processTimeoutSeconds: number;
  /** A Firestore call of the worker that takes longer fails the delivery, to be redelivered. */
  readonly storeTimeoutMs: number;
  /** A record that fails this attempt is recorded in failed_logs (retries_exhausted) and acked. */
  readonly maxDeliveryAttempts: number;
  /** Events older than this are recorded as failed and acked instead of retried. */
  readonly maxEventAgeSeconds: number;
  readonly authMode: AuthMode;
  /** How long a looked-up API key is trusted before it is read again (revocation bound). */
  readonly apiKeyCacheSeconds: number;
  /** Longest wait for an API-key lookup before answering 503. */
  readonly authTimeoutMs: number;
  /**
   * Bytes of request bodies (on the wire and inflated) one ingest instance holds at once;
   * a request that would exceed it is answered 503, so no burst can exhaust the instance.
   */
  readonly maxBufferedBodyBytes: number;
  /**
   * How long an instance trusts a tenant's settings (`tenant_settings/{tenant}`: redaction
   * policy, retention, rate limit) before reading them again.
   */
  readonly redactionPolicyCacheSeconds: number;
  /** Days a stored or failed record is kept: its `expire_at`, which a TTL policy acts on. */
  readonly retentionDays: number;
  /** Records a second one tenant may send to one ingest instance (0 = no limit). */
  readonly tenantRateLimitPerSecond: number;
  /** Seconds of the per-tenant rate a tenant may send at once (the token bucket's depth). */
  readonly tenantRateLimitBurstSeconds: number;
  /**
   * The worker's BulkWriter ramps up from 500 writes/s by 50 % every 5 minutes (Firestore's
   * 500/50/5 rule); false only in a local stack, whose emulator has no such limit.
   */
  readonly firestoreThrottling: boolean;
  /** Write a DEBUG line for every record accepted and stored (off: failures and summaries only). */
  readonly logRecordSuccess: boolean;
  /** Log event-loop delay, GC pauses and record counts every this many ms (0 = off). */
  readonly diagnosticsIntervalMs: number;
  /** Fault injection for local reliability runs; all zero in production (enforced below). */
  readonly faults: FaultConfig;
}

export interface FaultConfig {
  /** Probability that a processing attempt throws a transient error (0-1). */
  readonly failureRate: number;
  /** Every message fails this many attempts before it may succeed. */
  readonly failFirstAttempts: number;
  /** Probability that the worker process exits abruptly mid-processing (0-1). */
  readonly crashRate: number;
  /** A record whose text contains this string fails on every attempt ("" = off). */
  readonly poisonMarker: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Eventarc refuses events over 512 KB; base64 of this many bytes stays under it. */
export const EVENTARC_SAFE_MESSAGE_BYTES = 384 * 1024;
/** Eventarc retries a failing event for at most 24 hours. */
const EVENTARC_RETRY_WINDOW_SECONDS = 24 * 60 * 60;
/** Lowest MAX_EVENT_AGE_SECONDS of a local stack (chaos tests); deployed, the lowest is 60. */
const MIN_LOCAL_EVENT_AGE_SECONDS = 10;

/** Bounds of RETENTION_DAYS and of a tenant's `retention_days` (tenant-settings.ts). */
export const MIN_RETENTION_DAYS = 1;
export const MAX_RETENTION_DAYS = 3_650;
/** Upper bound of TENANT_RATE_LIMIT_PER_SECOND and of a tenant's `rate_limit_per_second`. */
export const MAX_RATE_LIMIT_PER_SECOND = 1_000_000;

type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(env: Env): Config {
  const errors: string[] = [];
  const reader = new EnvReader(env, errors);
  // Only the project's local stacks set these; a deployed function never does.
  const isLocalStack = env.RDP_LOCAL_STACK === "true" || env.FUNCTIONS_EMULATOR === "true";

  const config: Config = {
    topic: reader.pattern("INGEST_TOPIC", "rdp-ingest", /^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$/),
    maxBodyBytes: reader.integer("MAX_BODY_BYTES", 256 * 1024, 1, 10 * 1024 * 1024),
    maxTextChars: reader.integer("MAX_TEXT_CHARS", 100_000, 1, 1_000_000),
    maxBatchBodyBytes: reader.integer("MAX_BATCH_BODY_BYTES", 1024 * 1024, 1, 32 * 1024 * 1024),
    maxBatchRecords: reader.integer("MAX_BATCH_RECORDS", 1_000, 1, 100_000),
    maxMessageBytes: reader.integer(
      "MAX_MESSAGE_BYTES",
      320 * 1024,
      1024,
      EVENTARC_SAFE_MESSAGE_BYTES,
    ),
    publishTimeoutMs: reader.integer("PUBLISH_TIMEOUT_MS", 5_000, 50, 60_000),
    coalesceWindowMs: reader.integer("INGEST_COALESCE_MS", 2, 0, 50),
    retryAfterSeconds: reader.integer("RETRY_AFTER_SECONDS", 5, 1, 3_600),
    simulatedWorkMsPerChar: reader.number("SIMULATED_WORK_MS_PER_CHAR", 0, 0, 1_000),
    processTimeoutSeconds: reader.integer("PROCESS_TIMEOUT_SECONDS", 60, 1, 540),
    storeTimeoutMs: reader.integer("STORE_TIMEOUT_MS", 10_000, 100, 120_000),
    // Pub/Sub allows a dead-letter policy of 5 to 100 attempts; locally, fewer keep tests short.
    maxDeliveryAttempts: reader.integer("MAX_DELIVERY_ATTEMPTS", 10, isLocalStack ? 2 : 5, 100),
    maxEventAgeSeconds: reader.integer(
      "MAX_EVENT_AGE_SECONDS",
      6 * 60 * 60,
      // Locally, a poison message may expire within a test's time; deployed, a minute at least.
      isLocalStack ? MIN_LOCAL_EVENT_AGE_SECONDS : 60,
      EVENTARC_RETRY_WINDOW_SECONDS,
    ),
    authMode: reader.oneOf("AUTH_MODE", "api_key", ["api_key", "disabled"] as const),
    apiKeyCacheSeconds: reader.integer("API_KEY_CACHE_SECONDS", 30, 0, 600),
    authTimeoutMs: reader.integer("AUTH_TIMEOUT_MS", 3_000, 50, 60_000),
    maxBufferedBodyBytes: reader.integer(
      "MAX_BUFFERED_BODY_BYTES",
      8 * 1024 * 1024,
      1024,
      256 * 1024 * 1024,
    ),
    redactionPolicyCacheSeconds: reader.integer("REDACTION_POLICY_CACHE_SECONDS", 60, 0, 600),
    retentionDays: reader.integer("RETENTION_DAYS", 30, MIN_RETENTION_DAYS, MAX_RETENTION_DAYS),
    tenantRateLimitPerSecond: reader.integer(
      "TENANT_RATE_LIMIT_PER_SECOND",
      2_000,
      0,
      MAX_RATE_LIMIT_PER_SECOND,
    ),
    tenantRateLimitBurstSeconds: reader.integer("TENANT_RATE_LIMIT_BURST_SECONDS", 2, 1, 60),
    firestoreThrottling: reader.oneOf("FIRESTORE_THROTTLING", "true", ["true", "false"]) === "true",
    logRecordSuccess: reader.oneOf("LOG_RECORD_SUCCESS", "false", ["true", "false"]) === "true",
    diagnosticsIntervalMs: reader.integer("DIAGNOSTICS_INTERVAL_MS", 0, 0, 3_600_000),
    faults: {
      failureRate: reader.number("FAULT_FAILURE_RATE", 0, 0, 1),
      failFirstAttempts: reader.integer("FAULT_FAIL_FIRST_ATTEMPTS", 0, 0, 100),
      crashRate: reader.number("FAULT_CRASH_RATE", 0, 0, 1),
      poisonMarker: reader.text("FAULT_POISON_MARKER", "", 200),
    },
  };

  const faultsRequested = Object.values(config.faults).some((value) =>
    typeof value === "string" ? value !== "" : value > 0,
  );
  if (faultsRequested && !isLocalStack) {
    errors.push(
      "FAULT_* fault injection is for local runs only (RDP_LOCAL_STACK=true or the Firebase " +
        "emulator); unset FAULT_FAILURE_RATE, FAULT_FAIL_FIRST_ATTEMPTS, FAULT_CRASH_RATE and " +
        "FAULT_POISON_MARKER",
    );
  }

  if (!config.firestoreThrottling && !isLocalStack) {
    errors.push(
      "FIRESTORE_THROTTLING=false is for local stacks only: deployed, the worker must ramp up " +
        "its writes as Firestore asks (500/s, then 50 % more every 5 minutes)",
    );
  }

  const worstCaseWorkSeconds = (config.maxTextChars * config.simulatedWorkMsPerChar) / 1000;
  if (worstCaseWorkSeconds >= config.processTimeoutSeconds) {
    errors.push(
      `SIMULATED_WORK_MS_PER_CHAR=${config.simulatedWorkMsPerChar} makes a text of MAX_TEXT_CHARS=` +
        `${config.maxTextChars} take ${worstCaseWorkSeconds} s, which can never finish inside ` +
        `PROCESS_TIMEOUT_SECONDS=${config.processTimeoutSeconds}; lower one of the first two ` +
        `or raise the timeout`,
    );
  }

  if (config.storeTimeoutMs >= config.processTimeoutSeconds * 1000) {
    errors.push(
      `STORE_TIMEOUT_MS=${config.storeTimeoutMs} must be below PROCESS_TIMEOUT_SECONDS=` +
        `${config.processTimeoutSeconds}, or a stalled write outlives the invocation`,
    );
  }

  const largestBody = Math.max(config.maxBodyBytes, config.maxBatchBodyBytes);
  if (config.maxBufferedBodyBytes < 2 * largestBody) {
    errors.push(
      `MAX_BUFFERED_BODY_BYTES=${config.maxBufferedBodyBytes} must hold at least two of the ` +
        `largest bodies (2 x ${largestBody} bytes, compressed and inflated), or that body is ` +
        "always refused",
    );
  }

  if (errors.length > 0) {
    throw new ConfigError(`Invalid configuration:\n- ${errors.join("\n- ")}`);
  }
  return Object.freeze({ ...config, faults: Object.freeze(config.faults) });
}

class EnvReader {
  constructor(
    private readonly env: Env,
    private readonly errors: string[],
  ) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  }

  number(name: string, fallback: number, min: number, max: number): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      this.errors.push(`${name} must be a number from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      this.errors.push(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return value;
  }

  text(name: string, fallback: string, maxLength: number): string {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (raw.length > maxLength) {
      this.errors.push(`${name} must be at most ${maxLength} characters`);
      return fallback;
    }
    return raw;
  }

  pattern(name: string, fallback: string, shape: RegExp): string {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (!shape.test(raw) || raw.startsWith("goog")) {
      this.errors.push(`${name} is not a valid Pub/Sub topic name: "${raw}"`);
      return fallback;
    }
    return raw;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.raw(name);
    if (raw === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.errors.push(`${name} must be one of ${allowed.join(", ")}, got "${raw}"`);
      return fallback;
    }
    return raw as T;
  }
}

/**
 * Per-tenant rate limit of the ingest edge, counted in records (a JSON or text upload is one, an
 * NDJSON batch one per line, an OTLP request one per LogRecord): a token bucket per tenant that
 * refills at the tenant's rate and holds `burstSeconds` of it.
 *
 * The buckets live in this instance's memory, so the limit is PER INSTANCE: with N ingest
 * instances a tenant can send about N times its limit in all (Cloud Run spreads requests over
 * the instances; max instances bounds N). That is deliberate. A shared counter would put a
 * network round trip and a write on every request's path, make ingest only as available as that
 * counter's store, and itself be the hot spot: one Firestore document per tenant sustains about
 * one write a second. The limit exists to keep one tenant from taking an instance's capacity
 * (and, through it, the worker's and Firestore's) from the others; per instance does that.
 */
import { RateLimitedError } from "./errors";

export interface BucketPolicy {
  readonly perSecond: number;
  readonly burstSeconds: number;
}

export interface RateDecision {
  readonly allowed: boolean;
  /** Whole records the bucket holds after this request (never negative). */
  readonly remaining: number;
  /** Seconds until the bucket is full again. */
  readonly resetSeconds: number;
  /** For a refused request: seconds until it would pass. */
  readonly retryAfterSeconds: number;
  /** The bucket's depth: records the tenant may send at once, and over `windowSeconds`. */
  readonly quota: number;
  readonly windowSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  /** At most `maxKeys` buckets are kept; the least recently used goes (it would be refilled). */
  constructor(
    private readonly maxKeys: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(key: string, cost: number, policy: BucketPolicy): RateDecision {
    const capacity = policy.perSecond * policy.burstSeconds;
    const now = this.now();
    const bucket = this.buckets.get(key);
    const elapsedSeconds = bucket === undefined ? 0 : Math.max(0, now - bucket.updatedAt) / 1000;
    let tokens =
      bucket === undefined
        ? capacity
        : Math.min(capacity, bucket.tokens + elapsedSeconds * policy.perSecond);
    // A request of more records than the bucket holds passes once the bucket is full and leaves
    // it in debt, so no batch is refused for ever and the rate over time still holds.
    const needed = Math.min(cost, capacity);
    const allowed = tokens >= needed;
    if (allowed) tokens -= cost;
    // Re-inserting moves the key to the end: Maps iterate in insertion order.
    this.buckets.delete(key);
    this.buckets.set(key, { tokens, updatedAt: now });
    if (this.buckets.size > this.maxKeys) {
      this.buckets.delete(this.buckets.keys().next().value as string);
    }
    const secondsUntil = (level: number) =>
      Math.max(0, Math.ceil((level - tokens) / policy.perSecond));
    return {
      allowed,
      remaining: Math.max(0, Math.floor(tokens)),
      resetSeconds: secondsUntil(capacity),
      retryAfterSeconds: allowed ? 0 : Math.max(1, secondsUntil(needed)),
      quota: capacity,
      windowSeconds: policy.burstSeconds,
    };
  }
}

/** The policy's name in the RateLimit fields (draft-ietf-httpapi-ratelimit-headers). */
const POLICY_NAME = '"tenant"';

/**
 * `RateLimit-Policy` and `RateLimit` in the draft's Structured Field form. The quota unit is a
 * record; the draft registers none that fits ("requests" is its default), so the docs say so.
 * On a refusal the effective window `t` is the Retry-After, as the draft asks.
 */
export function rateLimitHeaders(decision: RateDecision): Record<string, string> {
  const window = decision.allowed ? decision.resetSeconds : decision.retryAfterSeconds;
  return {
    "RateLimit-Policy": `${POLICY_NAME};q=${decision.quota};w=${decision.windowSeconds}`,
    RateLimit: `${POLICY_NAME};r=${decision.remaining};t=${window}`,
  };
}

export interface TenantRateLimiter {
  /**
   * Charges `records` to the tenant. Resolves with the RateLimit headers for the answer (none
   * when the tenant has no limit); throws RateLimitedError, before anything is published, when
   * the request would exceed the limit. A request is admitted or refused whole.
   */
  admit(tenantId: string, records: number): Promise<Record<string, string>>;
}

export interface TenantRateLimiterOptions {
  /** TENANT_RATE_LIMIT_PER_SECOND; 0 = no limit unless the tenant has its own. */
  readonly defaultPerSecond: number;
  readonly burstSeconds: number;
  /** The tenant's own `rate_limit_per_second`, if any (cached tenant settings). */
  readonly limitOf: (tenantId: string) => Promise<number | undefined>;
  readonly maxTenants?: number;
  readonly now?: () => number;
}

/** Tenants one ingest instance keeps a bucket for; about 100 bytes each. */
const DEFAULT_MAX_TENANTS = 10_000;

export function createTenantRateLimiter(options: TenantRateLimiterOptions): TenantRateLimiter {
  const buckets = new TokenBuckets(options.maxTenants ?? DEFAULT_MAX_TENANTS, options.now);
  return {
    async admit(tenantId, records) {
      const perSecond = (await options.limitOf(tenantId)) ?? options.defaultPerSecond;
      if (perSecond <= 0) return {};
      const decision = buckets.take(tenantId, records, {
        perSecond,
        burstSeconds: options.burstSeconds,
      });
      const headers = rateLimitHeaders(decision);
      if (!decision.allowed) {
        throw new RateLimitedError(
          `This request's ${records} record(s) exceed the tenant's rate limit of ${perSecond} ` +
            `records a second (bursts of up to ${decision.quota}); nothing of it was accepted. ` +
            `Resend it unchanged after ${decision.retryAfterSeconds} s`,
          decision.retryAfterSeconds,
          headers,
        );
      }
      return headers;
    },
  };
}

/**
 * Charges a request's records to its tenant, before anything is published; the RateLimit
 * headers for the answer. The open demo mode (AUTH_MODE=disabled) has no caller's tenant to
 * charge (the records name their own), so it has no limit.
 */
export function admitRecords(
  limiter: TenantRateLimiter | undefined,
  tenantId: string | null,
  records: number,
): Promise<Record<string, string>> {
  if (tenantId === null || limiter === undefined) return Promise.resolve({});
  return limiter.admit(tenantId, records);
}

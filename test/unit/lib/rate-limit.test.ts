import { expect } from "chai";
import type { Authenticator } from "../../../functions/src/lib/auth";
import { createCoalescingQueue } from "../../../functions/src/lib/coalescer";
import { loadConfig } from "../../../functions/src/lib/config";
import { RateLimitedError } from "../../../functions/src/lib/errors";
import { handleIngest, type IngestDeps } from "../../../functions/src/lib/ingest-handler";
import { createLogger } from "../../../functions/src/lib/logger";
import { boundedPublisher } from "../../../functions/src/lib/publisher";
import {
  TokenBuckets,
  createTenantRateLimiter,
  rateLimitHeaders,
} from "../../../functions/src/lib/rate-limit";
import { compileValidators } from "../../../functions/src/lib/schema";

function clock() {
  let now = 0;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe("TokenBuckets", () => {
  const policy = { perSecond: 10, burstSeconds: 2 };

  it("lets a full bucket's depth through at once, then refuses with the wait", () => {
    const time = clock();
    const buckets = new TokenBuckets(100, time.now);
    const first = buckets.take("a", 20, policy);
    expect(first).to.include({ allowed: true, remaining: 0, resetSeconds: 2, quota: 20 });
    const refused = buckets.take("a", 5, policy);
    expect(refused).to.include({ allowed: false, remaining: 0, retryAfterSeconds: 1 });
    time.advance(500);
    expect(buckets.take("a", 5, policy).allowed).to.equal(true);
    expect(buckets.take("a", 1, policy).allowed).to.equal(false);
  });

  it("refills at the rate and never above the depth", () => {
    const time = clock();
    const buckets = new TokenBuckets(100, time.now);
    buckets.take("a", 20, policy);
    time.advance(60_000);
    expect(buckets.take("a", 0, policy).remaining).to.equal(20);
  });

  it("holds the rate over time: 10 a second for 10 seconds lets about 100 + the depth through", () => {
    const time = clock();
    const buckets = new TokenBuckets(100, time.now);
    let passed = 0;
    // 100 records a second offered, one every 10 ms, for 10 s.
    for (let tick = 0; tick < 1_000; tick += 1) {
      if (buckets.take("a", 1, policy).allowed) passed += 1;
      time.advance(10);
    }
    expect(passed).to.be.within(118, 121);
  });

  it("keeps tenants apart", () => {
    const buckets = new TokenBuckets(100, clock().now);
    expect(buckets.take("a", 20, policy).allowed).to.equal(true);
    expect(buckets.take("a", 1, policy).allowed).to.equal(false);
    expect(buckets.take("b", 20, policy).allowed).to.equal(true);
  });

  it("passes a request larger than the depth once the bucket is full, and makes it wait after", () => {
    const time = clock();
    const buckets = new TokenBuckets(100, time.now);
    const big = buckets.take("a", 50, policy);
    expect(big).to.include({ allowed: true, remaining: 0, resetSeconds: 5 });
    // 30 records of debt: 5 s until the bucket is full (the next big request), 4 s until 1 record.
    expect(buckets.take("a", 50, policy)).to.include({ allowed: false, retryAfterSeconds: 5 });
    expect(buckets.take("a", 1, policy)).to.include({ allowed: false, retryAfterSeconds: 4 });
    time.advance(5_000);
    expect(buckets.take("a", 50, policy).allowed).to.equal(true);
  });

  it("keeps at most maxKeys buckets, dropping the least recently used", () => {
    const buckets = new TokenBuckets(2, clock().now);
    buckets.take("a", 20, policy);
    buckets.take("b", 20, policy);
    buckets.take("a", 0, policy);
    buckets.take("c", 20, policy);
    // b went (least recently used); a kept its empty bucket.
    expect(buckets.take("a", 1, policy).allowed).to.equal(false);
    expect(buckets.take("b", 20, policy).allowed).to.equal(true);
  });
});

describe("rateLimitHeaders", () => {
  it("writes the draft's Structured Field form; t is the Retry-After on a refusal", () => {
    expect(
      rateLimitHeaders({
        allowed: true,
        remaining: 7,
        resetSeconds: 2,
        retryAfterSeconds: 0,
        quota: 200,
        windowSeconds: 2,
      }),
    ).to.deep.equal({ "RateLimit-Policy": '"tenant";q=200;w=2', RateLimit: '"tenant";r=7;t=2' });
    expect(
      rateLimitHeaders({
        allowed: false,
        remaining: 0,
        resetSeconds: 2,
        retryAfterSeconds: 1,
        quota: 200,
        windowSeconds: 2,
      }).RateLimit,
    ).to.equal('"tenant";r=0;t=1');
  });
});

describe("createTenantRateLimiter", () => {
  it("uses the tenant's own limit over the default, and no limit when the default is 0", async () => {
    const overrides = new Map([["vip", 100]]);
    const limiter = createTenantRateLimiter({
      defaultPerSecond: 0,
      burstSeconds: 1,
      limitOf: async (tenantId) => overrides.get(tenantId),
      now: clock().now,
    });
    expect(await limiter.admit("anyone", 1_000_000)).to.deep.equal({});
    expect((await limiter.admit("vip", 100)).RateLimit).to.equal('"tenant";r=0;t=1');
    let refused: unknown;
    await limiter.admit("vip", 1).catch((error: unknown) => (refused = error));
    expect(refused).to.be.instanceOf(RateLimitedError);
    expect((refused as RateLimitedError).headers()).to.deep.equal({
      "Retry-After": "1",
      "RateLimit-Policy": '"tenant";q=100;w=1',
      RateLimit: '"tenant";r=0;t=1',
    });
  });
});

describe("handleIngest with a rate limit", () => {
  function setup(perSecond: number) {
    const config = loadConfig({ MAX_BATCH_RECORDS: "100" });
    const published: string[] = [];
    const time = clock();
    const keyOf: Authenticator = {
      checkPresented: () => undefined,
      authenticate: async (headers) => ({ tenantId: String(headers["x-test-tenant"]) }),
    };
    const deps: IngestDeps = {
      config,
      validators: compileValidators(config),
      authenticator: keyOf,
      logger: createLogger(() => undefined),
      rateLimiter: createTenantRateLimiter({
        defaultPerSecond: perSecond,
        burstSeconds: 1,
        limitOf: async () => undefined,
        now: time.now,
      }),
      queue: createCoalescingQueue(
        boundedPublisher(async (data) => {
          for (const record of JSON.parse(data.toString("utf8")).records) {
            published.push(`${record.tenant_id}/${record.log_id}`);
          }
          return String(published.length);
        }, config),
        { windowMs: 0, maxMessageBytes: config.maxMessageBytes },
      ),
    };
    const send = (tenant: string, contentType: string, body: string) =>
      handleIngest(
        {
          method: "POST",
          path: "/",
          headers: { "content-type": contentType, "x-test-tenant": tenant },
          rawBody: Buffer.from(body, "utf8"),
        },
        deps,
      );
    const one = (tenant: string, logId: string) =>
      send(tenant, "application/json", JSON.stringify({ log_id: logId, text: "t" }));
    const batch = (tenant: string, logIds: readonly string[]) =>
      send(
        tenant,
        "application/x-ndjson",
        logIds.map((logId) => JSON.stringify({ log_id: logId, text: "t" })).join("\n"),
      );
    return { published, time, one, batch };
  }

  it("answers 429 problem+json with Retry-After and RateLimit fields, and publishes nothing of it", async () => {
    const { published, one } = setup(2);
    const accepted = await one("a", "1");
    expect(accepted.status).to.equal(202);
    expect(accepted.headers.RateLimit).to.equal('"tenant";r=1;t=1');
    expect((await one("a", "2")).status).to.equal(202);
    const limited = await one("a", "3");
    expect(limited.status).to.equal(429);
    expect(limited.headers).to.include({
      "Content-Type": "application/problem+json",
      "Retry-After": "1",
      "RateLimit-Policy": '"tenant";q=2;w=1',
      RateLimit: '"tenant";r=0;t=1',
    });
    expect(limited.body).to.include({ type: "urn:rdp:problem:rate-limited", status: 429 });
    expect(published).to.deep.equal(["a/1", "a/2"]);
    // Another tenant has its own bucket.
    expect((await one("b", "1")).status).to.equal(202);
  });

  it("counts each NDJSON line and refuses a batch over the limit whole", async () => {
    const { published, time, batch } = setup(5);
    expect((await batch("a", ["1", "2", "3"])).status).to.equal(202);
    const refused = await batch("a", ["4", "5", "6"]);
    expect(refused.status).to.equal(429);
    expect(published).to.deep.equal(["a/1", "a/2", "a/3"]);
    time.advance(1_000);
    expect((await batch("a", ["4", "5", "6"])).status).to.equal(202);
    expect(published).to.have.length(6);
  });
});

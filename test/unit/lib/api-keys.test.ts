import { expect } from "chai";
import {
  API_KEY_PREFIX,
  createApiKeyAuthenticator,
  generateApiKey,
  hashApiKey,
  keyIdOf,
  type ApiKeyLookup,
  type ApiKeyRecord,
} from "../../../functions/src/lib/api-keys";
import type { Authenticator } from "../../../functions/src/lib/auth";
import {
  ServiceUnavailableError,
  UnauthorizedError,
  toProblemResponse,
} from "../../../functions/src/lib/errors";
import type { IncomingHeaders } from "../../../functions/src/lib/http";

const KEY_SHAPE = /^rdpk_[A-Za-z0-9_-]{43}$/;

/** An in-memory key store whose lookups are counted and can be made to fail or wait. */
function memoryKeys() {
  const records = new Map<string, ApiKeyRecord>();
  const calls: string[] = [];
  let failure: Error | undefined;
  let gate: Promise<void> | undefined;
  const lookup: ApiKeyLookup = async (sha256) => {
    calls.push(sha256);
    if (gate) await gate;
    if (failure) throw failure;
    return records.get(sha256);
  };
  return {
    lookup,
    calls,
    add(tenantId: string, revoked = false, key = generateApiKey()): string {
      records.set(hashApiKey(key), {
        tenant_id: tenantId,
        label: "test",
        created_at: new Date(0),
        revoked_at: revoked ? new Date(0) : null,
      });
      return key;
    },
    revoke(key: string): void {
      const record = records.get(hashApiKey(key));
      if (!record) throw new Error("no such key");
      records.set(hashApiKey(key), { ...record, revoked_at: new Date() });
    },
    failWith(error: Error | undefined): void {
      failure = error;
    },
    /** Holds every lookup until the returned function is called. */
    hold(): () => void {
      let release!: () => void;
      gate = new Promise<void>((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

function clock(start = 1_000_000) {
  let time = start;
  return {
    now: () => time,
    advance: (ms: number) => (time += ms),
  };
}

function authenticator(
  lookup: ApiKeyLookup,
  options: { cacheSeconds?: number; lookupTimeoutMs?: number; now?: () => number } = {},
): Authenticator {
  return createApiKeyAuthenticator(lookup, {
    cacheSeconds: options.cacheSeconds ?? 30,
    lookupTimeoutMs: options.lookupTimeoutMs ?? 1_000,
    retryAfterSeconds: 7,
    ...(options.now ? { now: options.now } : {}),
  });
}

const bearer = (key: string): IncomingHeaders => ({ authorization: `Bearer ${key}` });

/** Resolves with the error the promise rejects with; fails the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  expect.fail("expected the authentication to be refused");
}

describe("API keys", () => {
  describe("generateApiKey", () => {
    it("has the scanner-visible prefix and 43 base64url characters", () => {
      const key = generateApiKey();
      expect(key.startsWith(API_KEY_PREFIX)).to.equal(true);
      expect(API_KEY_PREFIX).to.equal("rdpk_");
      expect(key).to.have.length(API_KEY_PREFIX.length + 43);
      expect(key).to.match(KEY_SHAPE);
    });

    it("carries at least 128 bits of randomness (32 random bytes)", () => {
      const key = generateApiKey();
      const secret = Buffer.from(key.slice(API_KEY_PREFIX.length), "base64url");
      expect(secret).to.have.length(32);
      expect(secret.length * 8).to.be.at.least(128);
      // Round trip: the text is exactly the canonical encoding of those bytes.
      expect(secret.toString("base64url")).to.equal(key.slice(API_KEY_PREFIX.length));
    });

    it("never repeats a key", () => {
      const keys = new Set(Array.from({ length: 1000 }, () => generateApiKey()));
      expect(keys.size).to.equal(1000);
      expect(generateApiKey()).to.not.equal(generateApiKey());
    });

    it("is stored as a SHA-256 hex digest whose key id is a short prefix of it", () => {
      const key = generateApiKey();
      const sha = hashApiKey(key);
      expect(sha).to.match(/^[0-9a-f]{64}$/);
      expect(sha).to.not.include(key.slice(API_KEY_PREFIX.length));
      expect(keyIdOf(sha)).to.equal(sha.slice(0, 16));
    });
  });

  describe("createApiKeyAuthenticator", () => {
    it("resolves the tenant of a key sent as Authorization: Bearer", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      expect(await authenticator(keys.lookup).authenticate(bearer(key))).to.deep.equal({
        tenantId: "acme",
      });
      expect(keys.calls).to.deep.equal([hashApiKey(key)]);
    });

    it("accepts the Bearer scheme in any case and surrounding spaces", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const auth = authenticator(keys.lookup);
      expect(await auth.authenticate({ authorization: `bearer ${key}` })).to.deep.equal({
        tenantId: "acme",
      });
      expect(await auth.authenticate({ authorization: `BEARER   ${key} ` })).to.deep.equal({
        tenantId: "acme",
      });
    });

    it("resolves the tenant of a key sent as X-API-Key", async () => {
      const keys = memoryKeys();
      const key = keys.add("globex");
      expect(await authenticator(keys.lookup).authenticate({ "x-api-key": key })).to.deep.equal({
        tenantId: "globex",
      });
    });

    it("prefers Authorization over X-API-Key when both are sent", async () => {
      const keys = memoryKeys();
      const acme = keys.add("acme");
      const globex = keys.add("globex");
      const caller = await authenticator(keys.lookup).authenticate({
        authorization: `Bearer ${acme}`,
        "x-api-key": globex,
      });
      expect(caller).to.deep.equal({ tenantId: "acme" });
    });

    it("answers a request without a key with 401, WWW-Authenticate and problem+json", async () => {
      const keys = memoryKeys();
      const error = await rejection(authenticator(keys.lookup).authenticate({}));
      expect(error).to.be.instanceOf(UnauthorizedError);
      const problem = toProblemResponse(error, "/ingest");
      expect(problem.status).to.equal(401);
      expect(problem.headers["Content-Type"]).to.equal("application/problem+json");
      expect(problem.headers["WWW-Authenticate"]).to.match(/^Bearer realm=/);
      expect(problem.body.status).to.equal(401);
      expect(problem.body.detail)
        .to.be.a("string")
        .and.match(/API key is required/);
      expect(keys.calls).to.deep.equal([]);
    });

    const malformed: ReadonlyArray<[string, IncomingHeaders]> = [
      ["an empty Authorization header", { authorization: "" }],
      ["Bearer without a token", { authorization: "Bearer" }],
      ["another scheme", { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }],
      ["two tokens", { authorization: `Bearer ${generateApiKey()} ${generateApiKey()}` }],
      ["a key without the prefix", { authorization: `Bearer ${"A".repeat(48)}` }],
      ["a truncated key", { authorization: `Bearer ${generateApiKey().slice(0, -1)}` }],
      ["a key one character too long", { authorization: `Bearer ${generateApiKey()}A` }],
      ["a key with a character outside base64url", { "x-api-key": `rdpk_${"+".repeat(43)}` }],
      ["a key with a NUL", { "x-api-key": `rdpk_${"A".repeat(42)}\u0000` }],
      ["an X-API-Key of spaces", { "x-api-key": "   " }],
    ];
    for (const [name, headers] of malformed) {
      it(`answers 401 to ${name} without a lookup`, async () => {
        const keys = memoryKeys();
        const error = await rejection(authenticator(keys.lookup).authenticate(headers));
        expect(error).to.be.instanceOf(UnauthorizedError);
        const problem = toProblemResponse(error);
        expect(problem.status).to.equal(401);
        expect(problem.headers["WWW-Authenticate"]).to.be.a("string");
        expect(keys.calls).to.deep.equal([]);
      });
    }

    it("answers 401 to a well-formed key that is unknown", async () => {
      const keys = memoryKeys();
      keys.add("acme");
      const error = await rejection(
        authenticator(keys.lookup).authenticate(bearer(generateApiKey())),
      );
      expect(error).to.be.instanceOf(UnauthorizedError);
      expect((error as Error).message).to.match(/unknown or revoked/);
      expect(keys.calls).to.have.length(1);
    });

    it("answers 401 to a revoked key", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme", true);
      const error = await rejection(authenticator(keys.lookup).authenticate({ "x-api-key": key }));
      expect(error).to.be.instanceOf(UnauthorizedError);
      expect(toProblemResponse(error).status).to.equal(401);
    });

    it("answers 401 to a record whose tenant fails the id rules", async () => {
      const key = generateApiKey();
      const lookup: ApiKeyLookup = async () => ({
        tenant_id: "../other",
        label: "",
        created_at: new Date(0),
        revoked_at: null,
      });
      const error = await rejection(authenticator(lookup).authenticate(bearer(key)));
      expect(error).to.be.instanceOf(UnauthorizedError);
    });

    it("never puts the key in the error it throws", async () => {
      const keys = memoryKeys();
      const key = generateApiKey();
      const error = await rejection(authenticator(keys.lookup).authenticate(bearer(key)));
      const problem = toProblemResponse(error);
      expect(JSON.stringify(problem)).to.not.include(key);
      expect(JSON.stringify(problem)).to.not.include("rdpk_");
    });

    it("reads a key once within cacheSeconds", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const time = clock();
      const auth = authenticator(keys.lookup, { cacheSeconds: 30, now: time.now });
      await auth.authenticate(bearer(key));
      time.advance(29_999);
      await auth.authenticate(bearer(key));
      await auth.authenticate({ "x-api-key": key });
      expect(keys.calls).to.have.length(1);
    });

    it("keeps a revoked key working at most cacheSeconds, then refuses it", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const time = clock();
      const auth = authenticator(keys.lookup, { cacheSeconds: 30, now: time.now });
      expect(await auth.authenticate(bearer(key))).to.deep.equal({ tenantId: "acme" });

      keys.revoke(key);
      time.advance(10_000);
      // Still inside the documented bound: the cached answer stands.
      expect(await auth.authenticate(bearer(key))).to.deep.equal({ tenantId: "acme" });

      time.advance(20_000);
      const error = await rejection(auth.authenticate(bearer(key)));
      expect(error).to.be.instanceOf(UnauthorizedError);
      expect(keys.calls).to.have.length(2);
    });

    it("accepts a key that was unknown once the cache bound has passed", async () => {
      const keys = memoryKeys();
      const time = clock();
      const auth = authenticator(keys.lookup, { cacheSeconds: 5, now: time.now });
      const key = generateApiKey();
      expect(await rejection(auth.authenticate(bearer(key)))).to.be.instanceOf(UnauthorizedError);
      // The key is stored after the refusal (a freshly issued key tried too early).
      keys.add("acme", false, key);
      time.advance(5_000);
      expect(await auth.authenticate(bearer(key))).to.deep.equal({ tenantId: "acme" });
    });

    it("reads the key store on every request when cacheSeconds is 0", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const auth = authenticator(keys.lookup, { cacheSeconds: 0 });
      await auth.authenticate(bearer(key));
      await auth.authenticate(bearer(key));
      keys.revoke(key);
      expect(await rejection(auth.authenticate(bearer(key)))).to.be.instanceOf(UnauthorizedError);
      expect(keys.calls).to.have.length(3);
    });

    it("collapses concurrent authentications of one key into one lookup", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const auth = authenticator(keys.lookup);
      const release = keys.hold();
      const pending = Array.from({ length: 50 }, (_, i) =>
        auth.authenticate(i % 2 === 0 ? bearer(key) : { "x-api-key": key }),
      );
      await new Promise((resolve) => setImmediate(resolve));
      expect(keys.calls).to.have.length(1);
      release();
      const callers = await Promise.all(pending);
      expect(callers.every((caller) => caller.tenantId === "acme")).to.equal(true);
      expect(keys.calls).to.have.length(1);
    });

    it("keeps keys of different tenants apart in the cache", async () => {
      const keys = memoryKeys();
      const acme = keys.add("acme");
      const globex = keys.add("globex");
      const auth = authenticator(keys.lookup);
      const [a, b, a2] = await Promise.all([
        auth.authenticate(bearer(acme)),
        auth.authenticate(bearer(globex)),
        auth.authenticate({ "x-api-key": acme }),
      ]);
      expect([a?.tenantId, b?.tenantId, a2?.tenantId]).to.deep.equal(["acme", "globex", "acme"]);
      expect(keys.calls).to.have.length(2);
    });

    it("answers 503 with Retry-After when the key store fails, and does not cache the failure", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const auth = authenticator(keys.lookup);
      keys.failWith(new Error("DEADLINE_EXCEEDED"));
      const error = await rejection(auth.authenticate(bearer(key)));
      expect(error).to.be.instanceOf(ServiceUnavailableError);
      const problem = toProblemResponse(error);
      expect(problem.status).to.equal(503);
      expect(problem.headers["Retry-After"]).to.equal("7");
      expect(problem.headers["Content-Type"]).to.equal("application/problem+json");
      expect(problem.body.detail).to.not.include("DEADLINE_EXCEEDED");

      keys.failWith(undefined);
      expect(await auth.authenticate(bearer(key))).to.deep.equal({ tenantId: "acme" });
      expect(keys.calls).to.have.length(2);
    });

    it("a slow failed lookup does not evict the newer answer that replaced it", async () => {
      const key = generateApiKey();
      const time = clock();
      const answers: Array<{ settle: (ok: boolean) => void }> = [];
      let calls = 0;
      const lookup: ApiKeyLookup = (sha) => {
        calls += 1;
        expect(sha).to.equal(hashApiKey(key));
        return new Promise((resolve, reject) =>
          answers.push({
            settle: (ok) =>
              ok
                ? resolve({
                    tenant_id: "acme",
                    label: "",
                    created_at: new Date(0),
                    revoked_at: null,
                  })
                : reject(new Error("UNAVAILABLE")),
          }),
        );
      };
      const auth = authenticator(lookup, { cacheSeconds: 5, now: time.now });
      const first = rejection(auth.authenticate(bearer(key)));
      time.advance(5_000);
      const second = auth.authenticate(bearer(key));
      answers[1]?.settle(true);
      expect(await second).to.deep.equal({ tenantId: "acme" });
      answers[0]?.settle(false);
      expect(await first).to.be.instanceOf(ServiceUnavailableError);
      expect(await auth.authenticate(bearer(key))).to.deep.equal({ tenantId: "acme" });
      expect(calls).to.equal(2);
    });

    it("answers 503 to every request waiting on a lookup that fails, then recovers", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const auth = authenticator(keys.lookup);
      keys.failWith(new Error("UNAVAILABLE"));
      const release = keys.hold();
      const pending = Array.from({ length: 5 }, () => rejection(auth.authenticate(bearer(key))));
      release();
      const errors = await Promise.all(pending);
      expect(errors.every((error) => error instanceof ServiceUnavailableError)).to.equal(true);
      expect(keys.calls).to.have.length(1);
      keys.failWith(undefined);
      expect(await auth.authenticate(bearer(key))).to.deep.equal({ tenantId: "acme" });
    });

    it("answers 503 within the lookup timeout when the key store hangs, then asks afresh", async () => {
      const keys = memoryKeys();
      const key = keys.add("acme");
      const auth = authenticator(keys.lookup, { lookupTimeoutMs: 50 });
      const release = keys.hold();
      const started = Date.now();
      const waiting = Array.from({ length: 3 }, () => rejection(auth.authenticate(bearer(key))));
      const errors = await Promise.all(waiting);
      expect(errors.every((error) => error instanceof ServiceUnavailableError)).to.equal(true);
      expect((errors[0] as ServiceUnavailableError).headers()).to.deep.equal({
        "Retry-After": "7",
      });
      expect(Date.now() - started).to.be.below(1_000);
      // The hung read is not what the next request waits on: it starts its own.
      const next = auth.authenticate(bearer(key));
      expect(keys.calls).to.have.length(2);
      release();
      expect(await next).to.deep.equal({ tenantId: "acme" });
    });
  });

  describe("checkPresented", () => {
    it("refuses a missing or malformed key without a lookup, and passes a well-formed one", () => {
      const keys = memoryKeys();
      const auth = authenticator(keys.lookup);
      expect(() => auth.checkPresented({})).to.throw(UnauthorizedError);
      expect(() => auth.checkPresented(bearer("rdpk_short"))).to.throw(UnauthorizedError);
      expect(() => auth.checkPresented(bearer(keys.add("acme")))).to.not.throw();
      expect(keys.calls).to.have.length(0);
    });
  });
});

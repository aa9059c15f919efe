import { expect } from "chai";
import { createPromiseCache } from "../../../functions/src/lib/promise-cache";

function counter() {
  const loads: string[] = [];
  return {
    loads,
    load:
      (key: string, value = key.toUpperCase()) =>
      () => {
        loads.push(key);
        return Promise.resolve(value);
      },
  };
}

describe("createPromiseCache", () => {
  it("shares one load between concurrent callers and answers from it within the TTL", async () => {
    let time = 0;
    const cache = createPromiseCache<string>({ ttlMs: 1_000, maxEntries: 10, now: () => time });
    const { loads, load } = counter();
    const [a, b] = await Promise.all([cache.get("k", load("k")), cache.get("k", load("k"))]);
    expect([a, b]).to.deep.equal(["K", "K"]);
    time = 999;
    await cache.get("k", load("k"));
    expect(loads).to.deep.equal(["k"]);
    time = 1_000;
    await cache.get("k", load("k"));
    expect(loads).to.deep.equal(["k", "k"]);
  });

  it("keeps at most maxEntries keys, dropping the least recently loaded", async () => {
    const cache = createPromiseCache<string>({ ttlMs: 60_000, maxEntries: 2 });
    const { loads, load } = counter();
    for (const key of ["a", "b", "c", "b", "a"]) await cache.get(key, load(key));
    expect(loads).to.deep.equal(["a", "b", "c", "a"]);
  });

  it("does not remember a failed load, and forget never drops a newer answer", async () => {
    const cache = createPromiseCache<string>({ ttlMs: 60_000, maxEntries: 10 });
    const failed = cache.get("k", () => Promise.reject(new Error("down")));
    await failed.catch(() => undefined);
    const { loads, load } = counter();
    const fresh = cache.get("k", load("k"));
    cache.forget("k", failed);
    await cache.get("k", load("k"));
    expect(await fresh).to.equal("K");
    expect(loads).to.deep.equal(["k"]);
    cache.forget("k", fresh);
    await cache.get("k", load("k"));
    expect(loads).to.deep.equal(["k", "k"]);
  });
});

/**
 * A per-instance cache of lookups, kept as promises: concurrent first lookups of one key share
 * one read, an answer is trusted for `ttlMs`, at most `maxEntries` keys are kept (the least
 * recently loaded go first), and a lookup that fails is not remembered, so the next caller
 * asks again. API keys and tenants' redaction policies are read through it.
 */
export interface PromiseCache<T> {
  /** The cached answer for `key`, or the one `load` gives (then cached). */
  get(key: string, load: () => Promise<T>): Promise<T>;
  /** Drops `key` if it still holds `value` (never a newer answer that replaced it). */
  forget(key: string, value: Promise<T>): void;
}

export interface PromiseCacheOptions {
  readonly ttlMs: number;
  readonly maxEntries: number;
  readonly now?: () => number;
}

export function createPromiseCache<T>(options: PromiseCacheOptions): PromiseCache<T> {
  const now = options.now ?? Date.now;
  const entries = new Map<string, { expiresAt: number; value: Promise<T> }>();
  const forget = (key: string, value: Promise<T>) => {
    if (entries.get(key)?.value === value) entries.delete(key);
  };
  return {
    get(key, load) {
      const cached = entries.get(key);
      if (cached && cached.expiresAt > now()) return cached.value;
      const value = load();
      // Re-inserting moves the key to the end: Maps iterate in insertion order.
      entries.delete(key);
      entries.set(key, { expiresAt: now() + options.ttlMs, value });
      if (entries.size > options.maxEntries) entries.delete(entries.keys().next().value as string);
      value.catch(() => forget(key, value));
      return value;
    },
    forget,
  };
}

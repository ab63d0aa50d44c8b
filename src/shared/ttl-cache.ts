import { systemClock, type Clock } from "./clock";

export interface TtlCacheOptions {
  /** how long an entry is served after it was set */
  ttlMs: number;
  /** at most this many entries: setting one more drops the one set longest ago */
  max: number;
  /** the time source (src/shared/clock.ts): a test advances a ManualClock instead of sleeping */
  clock?: Clock;
}

/**
 * The one in-process cache: entries live `ttlMs` on the injected clock, and the cache never holds more than `max`.
 * (`@isaacs/ttlcache` and `lru-cache` read performance.now() themselves, so a test could not move their time.)
 * A value may be null (a cached "not found"); `get` answers undefined for a missing or expired entry.
 */
export class TtlCache<K, V> {
  private readonly entries = new Map<K, { until: number; value: V }>();
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly clock: Clock;

  constructor(opts: TtlCacheOptions) {
    if (!(opts.max >= 1)) throw new Error("TtlCache: max must be at least 1");
    this.ttlMs = opts.ttlMs;
    this.max = opts.max;
    this.clock = opts.clock ?? systemClock;
  }

  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (this.now() >= e.until) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  set(key: K, value: V, ttlMs = this.ttlMs): this {
    this.entries.delete(key); // re-inserted last: the oldest entry is always first
    if (this.entries.size >= this.max) this.evict();
    this.entries.set(key, { until: this.now() + ttlMs, value });
    return this;
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  /** drops every entry whose value matches (e.g. every cached principal of a revoked key) */
  deleteWhere(match: (value: V, key: K) => boolean): void {
    for (const [k, e] of this.entries) if (match(e.value, k)) this.entries.delete(k);
  }

  clear(): void {
    this.entries.clear();
  }

  /** the keys held (expired ones not yet dropped included) */
  keys(): IterableIterator<K> {
    return this.entries.keys();
  }

  /** entries held, expired ones not yet dropped included */
  get size(): number {
    return this.entries.size;
  }

  private evict(): void {
    while (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as K);
  }

  private now(): number {
    return this.clock.now().getTime();
  }
}

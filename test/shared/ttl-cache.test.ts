import { ManualClock } from "../../src/shared/clock";
import { TtlCache } from "../../src/shared/ttl-cache";

describe("TtlCache (on the injected clock)", () => {
  it("serves an entry for ttlMs of the clock's time, not the wall clock's", () => {
    const clock = new ManualClock();
    const c = new TtlCache<string, number | null>({ ttlMs: 1_000, max: 10, clock });
    c.set("a", 1).set("none", null);
    clock.advance(999);
    expect(c.get("a")).toBe(1);
    expect(c.get("none")).toBeNull(); // a cached "not found" is a hit
    expect(c.has("none")).toBe(true);
    clock.advance(1);
    expect(c.get("a")).toBeUndefined();
    expect(c.get("none")).toBeUndefined();
    expect(c.has("none")).toBe(false);
    expect(c.size).toBe(0); // expired entries are dropped when read
  });

  it("a per-entry ttl overrides the default; setting again restarts it", () => {
    const clock = new ManualClock();
    const c = new TtlCache<string, string>({ ttlMs: 1_000, max: 10, clock });
    c.set("short", "x", 10);
    c.set("k", "v1");
    clock.advance(600);
    c.set("k", "v2");
    clock.advance(600);
    expect(c.get("short")).toBeUndefined();
    expect(c.get("k")).toBe("v2");
  });

  it("never holds more than max: the entry set longest ago goes first", () => {
    const c = new TtlCache<number, number>({ ttlMs: 60_000, max: 3, clock: new ManualClock() });
    for (let i = 0; i < 100; i++) c.set(i, i);
    expect(c.size).toBe(3);
    expect([c.get(96), c.get(97), c.get(98), c.get(99)]).toEqual([undefined, 97, 98, 99]);
    c.set(97, 97); // refreshed: now the newest
    c.set(100, 100);
    expect([c.get(97), c.get(98), c.get(99), c.get(100)]).toEqual([97, undefined, 99, 100]);
  });

  it("deletes one entry, those matching, or all", () => {
    const c = new TtlCache<string, { owner: string }>({ ttlMs: 60_000, max: 10 });
    c.set("a", { owner: "x" }).set("b", { owner: "y" }).set("c", { owner: "x" });
    c.deleteWhere((v) => v.owner === "x");
    expect([c.get("a"), c.get("b"), c.get("c")]).toEqual([undefined, { owner: "y" }, undefined]);
    expect(c.delete("b")).toBe(true);
    c.set("d", { owner: "z" });
    c.clear();
    expect(c.size).toBe(0);
  });
});

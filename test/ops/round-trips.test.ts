import { Client } from "pg";
import IORedis from "ioredis";
import { PgCountingProxy, RedisCountingProxy, target } from "../../bench/counting-proxy";
import { measureRoundTrips, roundTripLines, startCountedSystem, type CountedSystem, type RoundTripOperation, type RoundTripResults } from "../../bench/round-trip-counts";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { ADMIN_DATABASE_URL, testConfig, TEST_REDIS_URL } from "../helpers/env";

/**
 * Issue 16: PostgreSQL and Redis round trips per operation, counted by protocol-parsing proxies the whole bot talks
 * through (bench/counting-proxy.ts; what is counted: docs/benchmarks.md, "Round trips per operation"). Today's counts
 * are the ceiling, so a change that adds a round trip to an operation fails here; lower them when a change removes
 * some. The target for the reply end to end is ≤ 5 PostgreSQL round trips and no more Redis commands than
 * today (REPLY_TARGET_PG below, not asserted until the unit-of-work refactor lands).
 */
jest.setTimeout(180_000);

/**
 * Today's counts (2026-12-08), the fewest of 5 runs: a run that meets an expired cache (the 2 s flow cache, the
 * template statuses) or a transaction whose BEGIN went out before its first statement pays more.
 * - `pg` and `redisBesidesFetches` are exact: they do not depend on timing.
 * - a worker's job fetches (BZPOPMIN wake-ups, moveToActive) do: a worker with free slots asks for another job while
 *   one runs, and whether that finds one is a race. The totals of Redis commands and round trips hold the highest
 *   count seen in six runs today plus 2 (the fetch timing); every command besides the fetches is held exactly.
 */
const CEILING: Record<RoundTripOperation, { pg: number; redisBesidesFetches: number; redisCommands: number; redisRoundTrips: number }> = {
  replyNewContact: { pg: 12, redisBesidesFetches: 15, redisCommands: 32 + 2, redisRoundTrips: 29 + 2 },
  replyReturningContact: { pg: 8, redisBesidesFetches: 15, redisCommands: 33 + 2, redisRoundTrips: 30 + 2 },
  otpCycle: { pg: 23, redisBesidesFetches: 17, redisCommands: 36 + 2, redisRoundTrips: 33 + 2 },
  statusWebhook: { pg: 1, redisBesidesFetches: 2, redisCommands: 7 + 2, redisRoundTrips: 7 + 2 },
};
/** the target for one reply end to end (intake, inbound, send, its sent and delivered webhooks) */
export const REPLY_TARGET_PG = 5;

describe("the counting proxies count what the client asks for", () => {
  it("PostgreSQL: a simple query (however many statements) or an extended-protocol Sync is one round trip", async () => {
    const proxy = await PgCountingProxy.start(target(ADMIN_DATABASE_URL, 5432));
    const c = new Client({ connectionString: proxy.url(ADMIN_DATABASE_URL) });
    try {
      await c.connect();
      const before = proxy.snapshot();
      await c.query("SELECT 1");
      await c.query("BEGIN; SELECT 1; COMMIT");
      await c.query("SELECT $1::int AS n", [1]);
      await c.query({ name: "named", text: "SELECT $1::int AS n", values: [2] });
      await c.query({ name: "named", text: "SELECT $1::int AS n", values: [3] }); // re-bound, no Parse
      const d = proxy.since(before);
      expect(d).toMatchObject({ roundTrips: 5, simpleQueries: 2, syncs: 3, connects: 0 });
      expect(d.statements).toEqual(["SELECT 1", "BEGIN; SELECT 1; COMMIT", "SELECT $1::int AS n", "SELECT $1::int AS n", "SELECT $1::int AS n"]);
      expect(proxy.snapshot().connects).toBe(1);
    } finally {
      await c.end();
      await proxy.close();
    }
  });

  it("Redis: commands one by one, a pipeline and a MULTI; an empty blocking read is idle, not counted", async () => {
    const proxy = await RedisCountingProxy.start(target(TEST_REDIS_URL, 6379));
    const r = new IORedis(proxy.url(TEST_REDIS_URL), { maxRetriesPerRequest: null });
    const key = `rt-test:${process.pid}:${Date.now()}`;
    try {
      await r.ping();
      const before = proxy.snapshot();
      await r.set(key, "1");
      await r.get(key);
      await r.pipeline().incr(key).incr(key).get(key).exec(); // 3 commands, 1 round trip
      await r.multi().incr(key).get(key).exec(); // MULTI, 2, EXEC: 4 commands, 1 round trip
      await r.bzpopmin(`${key}:empty`, 0.05); // times out empty: idle waiting
      await r.zadd(`${key}:z`, 1, "a");
      await r.bzpopmin(`${key}:z`, 1); // returns at once: counted
      await r.del(key, `${key}:z`);
      const d = proxy.since(before);
      expect(d.commands).toBe(2 + 3 + 4 + 1 + 1 + 1);
      expect(d.roundTrips).toBe(2 + 1 + 1 + 1 + 1 + 1);
      expect(d.byName).toEqual({ set: 1, get: 3, incr: 3, multi: 1, exec: 1, zadd: 1, bzpopmin: 1, del: 1 });
      expect(d.background).toEqual({ "bzpopmin (timed out)": 1 });
    } finally {
      r.disconnect();
      await proxy.close();
    }
  });
});

describe("round trips per operation (the whole bot through the proxies)", () => {
  let db: TestDatabase;
  let sys: CountedSystem;
  let r: RoundTripResults;

  beforeAll(async () => {
    db = await createTestDatabase();
    sys = await startCountedSystem(testConfig({ DATABASE_URL: db.url }));
    r = await measureRoundTrips(sys, db.url, TEST_REDIS_URL, 5);
    // the numbers, for whoever lowers the ceiling (or finds what raised it)
    console.log(["round trips (fewest of 5 runs):", ...roundTripLines(r)].join("\n"));
  });
  afterAll(async () => {
    await sys?.close();
    await db?.drop();
  });

  it.each(Object.keys(CEILING) as RoundTripOperation[])("%s stays within today's PostgreSQL and Redis budget", (op) => {
    const got = r[op];
    const c = CEILING[op];
    const over = got.pgRoundTrips > c.pg || got.redisCommandsBesidesFetches > c.redisBesidesFetches || got.redisCommands > c.redisCommands || got.redisRoundTrips > c.redisRoundTrips;
    // over budget: say what the round trips were
    expect(over ? `${op} over budget ${JSON.stringify(c)}: ${JSON.stringify({ pg: got.detail.pg.statements, redis: got.detail.redis.byName }, null, 1)}` : "within budget").toBe("within budget");
    expect(got.pgRoundTrips).toBeLessThanOrEqual(c.pg);
    expect(got.redisCommandsBesidesFetches).toBeLessThanOrEqual(c.redisBesidesFetches);
    expect(got.redisCommands).toBeLessThanOrEqual(c.redisCommands);
    expect(got.redisRoundTrips).toBeLessThanOrEqual(c.redisRoundTrips);
    // nothing periodic ran inside the windows (the sweeps and timers are off); had it, it is not in the totals
    expect(got.detail.redis.background).toEqual({});
    // the counts are of the operation, not nothing: every one reaches PostgreSQL and the queues
    expect(got.pgRoundTrips).toBeGreaterThan(0);
    expect(got.detail.redis.byName.addStandardJob ?? 0).toBeGreaterThan(0);
  });
});

import { buildCore } from "../../src/main/core";
import { testConfig } from "../helpers/env";
import { createTestDatabase } from "../helpers/db";
import { startWorkers } from "../../src/main/workers";
import { OwnRedis } from "./own-redis";

/**
 * Shutting down while Redis is unreachable must not leave rejected promises behind: Node exits with code 1 on an
 * unhandled rejection, so a SIGTERM during a Redis outage would end the process as a crash. The race is narrow
 * (the connection must be mid-connect when close() runs), so the test waits for exactly that moment.
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

it("closes cleanly while the Redis connection is failing, with no unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  try {
    const core = buildCore(testConfig({ DATABASE_URL: db.url, REDIS_URL: "redis://127.0.0.1:1" }));
    let errors = 0;
    core.redis.on("error", () => errors++);
    // the second connection attempt: an error has been seen, and a socket is connecting again
    await new Promise<void>((resolve) => core.redis.on("connecting", () => errors >= 1 && resolve()));
    expect(core.redis.status).toBe("connecting");
    await core.close();
    await new Promise((r) => setTimeout(r, 300));
    expect(unhandled.map(String)).toEqual([]);
    expect(core.redis.status).toBe("end");
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

it("a worker process shuts down during a Redis outage: its workers and then the core close, promptly, with no unhandled rejection", async () => {
  const redis = await OwnRedis.start();
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  try {
    const core = buildCore(testConfig({ DATABASE_URL: db.url, REDIS_URL: redis.url }));
    const workers = await startWorkers(core, { heartbeat: { everyMs: 200 }, shutdownGraceMs: 1_000 });
    await redis.stop();
    await new Promise((r) => setTimeout(r, 500)); // the connections notice and start reconnecting
    const started = Date.now();
    await workers.close();
    await core.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(unhandled.map(String)).toEqual([]);
  } finally {
    process.off("unhandledRejection", onUnhandled);
    await redis.stop();
  }
}, 20_000);

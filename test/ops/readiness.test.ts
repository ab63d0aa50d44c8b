import request from "supertest";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { OwnRedis } from "./own-redis";

/**
 * /readyz turns 503 when Redis stops and 200 again when it is back. The Redis here is the test's own (a child
 * redis-server on a spare port): the machine's shared Redis is never stopped.
 */
let redis: OwnRedis;
let sys: TestSystem;

beforeAll(async () => {
  redis = await OwnRedis.start();
  sys = await startTestSystem({ workers: false, env: { REDIS_URL: redis.url } });
});
afterAll(async () => {
  await redis.start(); // the system cleans its queues up in Redis
  if (sys) await waitFor(() => sys.core.redis.status === "ready", 10_000);
  await sys?.close();
  await redis.stop();
});

describe("GET /readyz", () => {
  it("is 200 while PostgreSQL and Redis answer, 503 naming Redis while it is down, 200 once it is back", async () => {
    const ok = await request(sys.http.url).get("/readyz");
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ status: "ready", checks: { postgres: "ok", redis: "ok" } });

    await redis.stop();
    const down = await waitFor(async () => {
      const r = await request(sys.http.url).get("/readyz");
      return r.status === 503 ? r : null;
    }, 5_000);
    expect(down.body.status).toBe("unavailable");
    expect(down.body.checks.postgres).toBe("ok");
    expect(down.body.checks.redis).not.toBe("ok");
    expect(down.body.checks.redis).toEqual(expect.any(String));
    // liveness is not readiness: the process still runs
    expect((await request(sys.http.url).get("/healthz")).status).toBe(200);

    await redis.start();
    const back = await waitFor(async () => {
      const r = await request(sys.http.url).get("/readyz");
      return r.status === 200 ? r : null;
    }, 10_000);
    expect(back.body.checks).toEqual({ postgres: "ok", redis: "ok" });
  });
});

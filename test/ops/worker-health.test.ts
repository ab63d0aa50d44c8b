import { hostname } from "node:os";
import request from "supertest";
import { appVersion, readyAt, startHeartbeat } from "../../src/observability/worker-health";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { parseProm, value } from "./prom-text";

/** GET /admin/workers and the wabot_workers_alive / wabot_queue_lag_seconds gauges (real PostgreSQL and Redis). */
const QUEUE_NAMES = ["events", "flow-calls", "inbound", "otp", "outbound", "statuses"];

const admin = (sys: TestSystem) => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const scrape = async (sys: TestSystem) => {
  const res = await request(sys.http.url).get("/metrics").set(admin(sys));
  expect(res.status).toBe(200);
  return parseProm(res.text);
};

describe("worker heartbeats", () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem();
  });
  afterAll(async () => {
    await sys.close();
  });

  it("lists this process's workers while they run, with a beat that expires by itself", async () => {
    const res = await request(sys.http.url).get("/admin/workers").set(admin(sys));
    expect(res.status).toBe(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.body).toMatchObject({ status: "ok", alive: 1, checkedAt: expect.any(String) });
    const [w] = res.body.workers;
    expect(w).toEqual({
      id: sys.workers!.heartbeat.id,
      pid: process.pid,
      hostname: hostname(),
      queues: expect.arrayContaining(QUEUE_NAMES),
      startedAt: expect.any(String),
      beatAt: expect.any(String),
      version: appVersion(),
    });
    expect(appVersion()).toMatch(/^\d+\.\d+\.\d+/);
    expect(Date.now() - Date.parse(w.beatAt)).toBeLessThan(6_000);
    for (const q of QUEUE_NAMES) expect(res.body.queues[q]).toEqual({ waiting: expect.any(Number), active: expect.any(Number), delayed: expect.any(Number), failed: expect.any(Number), lagSeconds: expect.any(Number) });
    // the key has a TTL: a crashed process disappears on its own
    const ttl = await sys.core.redis.pttl(`${sys.config.QUEUE_PREFIX}:heartbeat:worker:${w.id}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(20_000);
    expect(value(await scrape(sys), "wabot_workers_alive")).toBe(1);
  });

  it("is for the deployment's admin key only", async () => {
    const none = await request(sys.http.url).get("/admin/workers");
    expect(none.status).toBe(401);
    const key = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/api-keys`).set(admin(sys)).send({ scopes: ["admin", "read"] });
    expect(key.status).toBe(201);
    const tenantKey = await request(sys.http.url).get("/admin/workers").set("Authorization", `Bearer ${key.body.key}`);
    expect(tenantKey.status).toBe(403);
    expect(tenantKey.body).toEqual({ error: { code: "forbidden", message: expect.any(String) } });
  });

  it("drops a process whose heartbeat was not renewed within its TTL (a crash)", async () => {
    // a process that beat once and then stopped beating without removing its heartbeat
    const crashed = await startHeartbeat({ redis: sys.core.redis, prefix: sys.config.QUEUE_PREFIX, queues: ["inbound"], logger: sys.core.logger, everyMs: 60_000, ttlMs: 1_500 });
    await waitFor(async () => (await request(sys.http.url).get("/admin/workers").set(admin(sys))).body.alive === 2, 1_500);
    // its key expires after 1.5 s
    const after = await waitFor(async () => {
      const r = await request(sys.http.url).get("/admin/workers").set(admin(sys));
      return r.body.alive === 1 ? r : null;
    }, 4_000);
    expect(after.body.workers.map((w: { id: string }) => w.id)).toEqual([sys.workers!.heartbeat.id]);
    await crashed.stop();
  });

  it("disappears on graceful shutdown: 503 with the same body, and the gauge goes to 0", async () => {
    await sys.workers!.close();
    expect(await sys.core.redis.exists(`${sys.config.QUEUE_PREFIX}:heartbeat:worker:${sys.workers!.heartbeat.id}`)).toBe(0);
    const res = await waitFor(async () => {
      const r = await request(sys.http.url).get("/admin/workers").set(admin(sys));
      return r.status === 503 ? r : null;
    }, 3_000);
    expect(res.body).toMatchObject({ status: "no_workers", alive: 0, workers: [] });
    expect(Object.keys(res.body.queues).sort()).toEqual(QUEUE_NAMES);
    await waitFor(async () => value(await scrape(sys), "wabot_workers_alive") === 0, 3_000);
  });
});

describe("queue lag", () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem({ workers: false });
  });
  afterAll(async () => {
    await sys.close();
  });

  it("is the age of the oldest waiting job, per queue, in the endpoint and the gauge", async () => {
    const events = sys.core.queues.events;
    await events.add("deliver", { deliveryId: "old" }, { jobId: "lag-old", timestamp: Date.now() - 90_000 });
    await events.add("deliver", { deliveryId: "new" }, { jobId: "lag-new", timestamp: Date.now() - 5_000 });
    // a delayed job is not waiting: no lag
    await sys.core.queues.otp.add("timeout", { deliveryId: "later" }, { jobId: "lag-delayed", delay: 60_000 });

    const res = await request(sys.http.url).get("/admin/workers").set(admin(sys));
    // no worker runs in this system
    expect(res.status).toBe(503);
    expect(res.body.status).toBe("no_workers");
    expect(res.body.queues.events).toMatchObject({ waiting: 2, active: 0, delayed: 0, failed: 0 });
    expect(res.body.queues.events.lagSeconds).toBeGreaterThanOrEqual(90);
    expect(res.body.queues.events.lagSeconds).toBeLessThan(100);
    expect(res.body.queues.otp).toEqual({ waiting: 0, active: 0, delayed: 1, failed: 0, lagSeconds: 0 });
    expect(res.body.queues.inbound.lagSeconds).toBe(0);

    const s = await scrape(sys);
    expect(value(s, "wabot_queue_lag_seconds", { queue: "events" })).toBeGreaterThanOrEqual(90);
    expect(value(s, "wabot_queue_lag_seconds", { queue: "events" })).toBeLessThan(100);
    expect(value(s, "wabot_queue_lag_seconds", { queue: "otp" })).toBe(0);
    expect(value(s, "wabot_queue_jobs", { queue: "events", state: "waiting" })).toBe(2);
    expect(value(s, "wabot_workers_alive")).toBe(0);
    expect(value(s, "wabot_metrics_source_up", { source: "redis" })).toBe(1);
  });

  it("counts from the end of a delay or back-off, not from the job's creation", () => {
    expect(readyAt({ timestamp: 1_000, delay: 0 } as never)).toBe(1_000);
    expect(readyAt({ timestamp: 1_000, delay: 500 } as never)).toBe(1_500);
    // moved to delayed during its attempt (pacing, a retry's back-off): from that attempt plus the delay
    expect(readyAt({ timestamp: 1_000, processedOn: 10_000, delay: 250 } as never)).toBe(10_250);
    expect(readyAt({ timestamp: 1_000, processedOn: 10_000, finishedOn: 10_100, delay: 400 } as never)).toBe(10_500);
  });
});

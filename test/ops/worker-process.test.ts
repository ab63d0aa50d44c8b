import request from "supertest";
import { buildCore } from "../../src/main/core";
import { createWorkerHealth } from "../../src/observability/worker-health";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";
import { botProcessEnv, spawnBot, type BotProcess } from "../helpers/bot-process";
import { waitFor } from "../helpers/system";
import { sparePort } from "./own-redis";
import { parseProm, value } from "./prom-text";

/**
 * `npm run start:worker` as it runs in production (node --import tsx src/main/worker.ts, a process of its own):
 * with WORKER_METRICS_PORT it serves /metrics (admin key only) and /healthz; its heartbeat is in Redis while it
 * runs and is gone after SIGTERM.
 */
jest.setTimeout(90_000);

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let bot: BotProcess | null = null;
let port: number;
const config = testConfig();

beforeAll(async () => {
  db = await createTestDatabase();
  port = await sparePort();
  const env = botProcessEnv({ ...config, DATABASE_URL: db.url }, { GRAPH_API_BASE_URL: "http://127.0.0.1:9", WORKER_METRICS_PORT: String(port) });
  bot = spawnBot("worker", env);
  // /metrics and /healthz are served before the workers reach Redis; the workers and their heartbeat follow
  await bot.ready(/worker metrics served/);
  await bot.ready(/"msg":"workers started"/);
});

afterAll(async () => {
  await bot?.kill("SIGKILL");
  // the queues the process created (the OTP expiry sweep is a repeatable job) and its database
  const core = buildCore({ ...config, DATABASE_URL: db.url });
  await Promise.allSettled(Object.values(core.queues).map((q) => q.obliterate({ force: true })));
  await core.close();
  await db.drop();
});

const url = () => `http://127.0.0.1:${port}`;

describe("a worker-only process with WORKER_METRICS_PORT", () => {
  it("serves /healthz, and /metrics only with the admin key", async () => {
    expect((await request(url()).get("/healthz")).body).toEqual({ status: "ok" });

    const none = await request(url()).get("/metrics");
    const wrong = await request(url()).get("/metrics").set("Authorization", `Bearer ${config.ADMIN_API_KEY}x`);
    for (const res of [none, wrong]) {
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
      expect(res.text).not.toMatch(/wabot_|process_cpu/);
    }

    const ok = await request(url()).get("/metrics").set("Authorization", `Bearer ${config.ADMIN_API_KEY}`);
    expect(ok.status).toBe(200);
    expect(ok.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    // this process's own instruments: job latency (recorded where workers run) and its own heartbeat
    expect(ok.text).toContain("# TYPE wabot_job_duration_seconds histogram");
    const s = parseProm(ok.text);
    expect(value(s, "wabot_workers_alive")).toBe(1);
    expect(value(s, "wabot_queue_lag_seconds", { queue: "inbound" })).toBe(0);
    expect(value(s, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    // nothing else is served there
    expect((await request(url()).get("/admin/workers").set("Authorization", `Bearer ${config.ADMIN_API_KEY}`)).status).toBe(404);
  });

  it("has its heartbeat in Redis while it runs, and removes it on SIGTERM", async () => {
    const core = buildCore({ ...config, DATABASE_URL: db.url });
    try {
      await waitFor(() => core.redis.status === "ready");
      const alive = await core.workerHealth.read();
      expect(alive.workers).toEqual([expect.objectContaining({ pid: bot!.child.pid, queues: expect.arrayContaining(["inbound", "outbound", "statuses", "events", "otp"]) })]);

      expect((await bot!.kill("SIGTERM")).code).toBe(0);
      // the core's reader shares one read for 500 ms: a reader of its own reads Redis now
      const after = await createWorkerHealth({ redis: core.redis, prefix: config.QUEUE_PREFIX, queues: core.queues }).read();
      expect(after).toMatchObject({ status: "no_workers", alive: 0, workers: [] });
      expect(bot!.output()).toContain("shutting down");
    } finally {
      await core.close();
    }
  });
});

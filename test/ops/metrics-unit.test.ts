import { EventEmitter } from "node:events";
import type { Worker } from "bullmq";
import { createLogger } from "../../src/observability/logger";
import { createMetrics, type MetricsDb } from "../../src/observability/metrics";
import { ManualClock } from "../../src/shared/clock";
import { parseProm, value } from "./prom-text";

/** The collectors on their own: outages must not hang a scrape, and a scrape must not pile up queries. */
const logger = createLogger({ level: "silent" });
const never = <T>() => new Promise<T>(() => undefined);

describe("scrape during an outage", () => {
  it("answers within the timeouts when Redis and PostgreSQL hang, and says which source is down", async () => {
    let dbCalls = 0;
    const db: MetricsDb = {
      $queryRawUnsafe: () => {
        dbCalls++;
        return never();
      },
    };
    const metrics = createMetrics({
      logger,
      defaultMetrics: false,
      queues: { inbound: { name: "inbound", getJobCounts: () => never() } },
      db,
      queueTimeoutMs: 100,
      dbTimeoutMs: 150,
    });
    const started = Date.now();
    const s = parseProm((await metrics.render()).body);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(value(s, "wabot_metrics_source_up", { source: "redis" })).toBe(0);
    expect(value(s, "wabot_metrics_source_up", { source: "postgres" })).toBe(0);
    expect(value(s, "wabot_queue_jobs")).toBeUndefined();
    expect(value(s, "wabot_webhook_requests_total", { outcome: "accepted" })).toBe(0);
    const callsAfterFirst = dbCalls;
    // the read still running is not started again by the next scrape
    await metrics.render();
    expect(dbCalls).toBe(callsAfterFirst);
  });

  it("reads the database once per cache period and keeps label values bounded", async () => {
    let reads = 0;
    const db: MetricsDb = {
      $queryRawUnsafe: async <T>(sql: string) => {
        reads++;
        if (sql.includes("send_attempts")) return [{ outcome: "permanent_error", code: 131026, n: 2n }, { outcome: "weird", code: null, n: 1n }] as T;
        if (sql.includes("audit_events")) {
          return [
            { tenant: "t1", type: "verification.sent", channel: "whatsapp", n: 3n },
            { tenant: "t1", type: "verification.sent", channel: "carrier-pigeon", n: 1n },
            { tenant: "t1", type: "verification.sent", channel: null, n: 1n },
          ] as T;
        }
        return [{ tenant: "t1", phone_number_id: "123" }] as T;
      },
    };
    const metrics = createMetrics({ logger, defaultMetrics: false, db, dbCacheMs: 60_000 });
    const s = parseProm((await metrics.render()).body);
    await metrics.render();
    expect(reads).toBe(3); // three queries, once
    expect(value(s, "wabot_cloud_api_calls_total", { outcome: "permanent_error", code: "131026" })).toBe(2);
    expect(value(s, "wabot_cloud_api_calls_total", { outcome: "other", code: "none" })).toBe(1);
    expect(value(s, "wabot_verifications_total", { tenant: "t1", channel: "whatsapp", event: "sent" })).toBe(3);
    expect(value(s, "wabot_verifications_total", { tenant: "t1", channel: "unknown", event: "sent" })).toBe(2);
  });
});

describe("job latency", () => {
  it("observes completed, retried and finally failed attempts from the worker's events", () => {
    const metrics = createMetrics({ logger, defaultMetrics: false });
    const worker = Object.assign(new EventEmitter(), { name: "outbound" });
    metrics.observeWorker(worker as unknown as Worker);
    worker.emit("completed", { processedOn: 1_000, finishedOn: 1_250, attemptsMade: 1, opts: {} });
    worker.emit("failed", { processedOn: 2_000, finishedOn: 2_100, attemptsMade: 1, opts: { attempts: 3 } }, new Error("429"));
    worker.emit("failed", { processedOn: 3_000, finishedOn: 3_500, attemptsMade: 3, opts: { attempts: 3 } }, new Error("131026"));
    worker.emit("failed", undefined, new Error("no job"));
    return metrics.render().then(({ body }) => {
      const s = parseProm(body);
      expect(value(s, "wabot_job_duration_seconds_count", { queue: "outbound", result: "completed" })).toBe(1);
      expect(value(s, "wabot_job_duration_seconds_sum", { queue: "outbound", result: "completed" })).toBeCloseTo(0.25);
      expect(value(s, "wabot_job_duration_seconds_count", { queue: "outbound", result: "retried" })).toBe(1);
      expect(value(s, "wabot_job_duration_seconds_count", { queue: "outbound", result: "failed" })).toBe(1);
      expect(value(s, "wabot_job_duration_seconds_sum", { queue: "outbound", result: "failed" })).toBeCloseTo(0.5);
    });
  });
});

describe("worker liveness and queue lag gauges", () => {
  it("report the heartbeat reader's values, and keep the last ones (source down) when Redis does not answer", async () => {
    let fail = false;
    const report = {
      status: "ok" as const,
      alive: 2,
      workers: [],
      queues: { events: { waiting: 1, active: 0, delayed: 0, failed: 0, lagSeconds: 3.5 }, inbound: { waiting: 0, active: 0, delayed: 0, failed: 0, lagSeconds: 0 } },
      checkedAt: new Date().toISOString(),
    };
    const clock = new ManualClock();
    const metrics = createMetrics({ logger, defaultMetrics: false, clock, workerHealth: { read: async () => (fail ? Promise.reject(new Error("timed out")) : report) } });
    const up = parseProm((await metrics.render()).body);
    expect(value(up, "wabot_workers_alive")).toBe(2);
    expect(value(up, "wabot_queue_lag_seconds", { queue: "events" })).toBe(3.5);
    expect(value(up, "wabot_queue_lag_seconds", { queue: "inbound" })).toBe(0);
    expect(value(up, "wabot_metrics_source_up", { source: "redis" })).toBe(1);

    fail = true;
    // one read per scrape is shared for 500 ms: a scrape within them still sees the last read
    clock.advance(499);
    expect(value(parseProm((await metrics.render()).body), "wabot_metrics_source_up", { source: "redis" })).toBe(1);
    clock.advance(1);
    const down = parseProm((await metrics.render()).body);
    expect(value(down, "wabot_metrics_source_up", { source: "redis" })).toBe(0);
    // not a false "no worker alive" during a Redis outage
    expect(value(down, "wabot_workers_alive")).toBe(2);
    expect(value(down, "wabot_queue_lag_seconds", { queue: "events" })).toBe(3.5);
  });
});

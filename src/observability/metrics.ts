import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Queue, Worker, Job } from "bullmq";
import type { Logger } from "./logger";
import type { WorkerHealth } from "./worker-health";
import { withTimeout } from "../shared/timeout";
import { systemClock, type Clock } from "../shared/clock";
import { TtlCache } from "../shared/ttl-cache";

/**
 * Prometheus metrics of one process (docs/metrics.md). One Registry per process, built by core.ts and passed
 * down: nothing here is global, so several cores (tests) never share a metric.
 *
 * Three kinds of metric live here:
 * - counted in this process: webhook outcomes (API processes), job latency (worker processes);
 * - read from Redis at scrape time: queue depths (`getJobCounts`, bounded by a timeout);
 * - read from PostgreSQL at scrape time: Cloud API calls and the verification funnel over a recent window.
 *   These are gauges derived from the database, the same value from every process; cached briefly so that
 *   several scrapers (or processes) do not multiply the queries.
 *
 * Labels never carry a phone number, a message or verification id, or free text: every label value comes from a
 * small fixed set, Meta's numeric error codes, or a tenant id (one per business number of the deployment).
 */

export const WEBHOOK_OUTCOMES = ["accepted", "invalid_signature", "invalid_json", "invalid_envelope", "unavailable", "too_large"] as const;
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

export const QUEUE_STATES = ["waiting", "active", "delayed", "failed"] as const;

/** Verification events counted by the funnel, as recorded in the audit trail (`verification.<event>`). */
export const FUNNEL_EVENTS = ["requested", "sent", "delivered", "approved", "expired", "locked", "canceled", "failed", "fallback", "reported"] as const;
const CHANNELS = new Set(["whatsapp", "sms", "voice"]);
/** send_attempts.outcome (enum SendOutcome) */
const SEND_OUTCOMES = new Set(["pending", "accepted", "transient_error", "permanent_error", "unknown"]);

export type JobResult = "completed" | "failed" | "retried";

export interface Metrics {
  registry: Registry;
  /** wabot_webhook_requests_total{outcome} */
  webhookRequests: Counter<"outcome">;
  /** wabot_job_duration_seconds{queue,result} */
  jobDuration: Histogram<"queue" | "result">;
  /** Times every job of this worker (completed and failed events; processedOn → finishedOn). */
  observeWorker(worker: Worker): void;
  /** Prometheus text exposition of the whole registry. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** The narrow database port the DB-derived gauges need (PrismaClient satisfies it). */
export interface MetricsDb {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
}

export interface MetricsOptions {
  logger: Logger;
  /** queues whose job counts are read at scrape time */
  queues?: Record<string, Pick<Queue, "name" | "getJobCounts">>;
  /** PostgreSQL, for the Cloud API and verification gauges */
  db?: MetricsDb;
  /** default process metrics (CPU, memory, event loop, GC); default true */
  defaultMetrics?: boolean;
  /** one Redis read may take this long before the scrape goes on without it (default 1,000 ms) */
  queueTimeoutMs?: number;
  /** the database reads of one scrape may take this long before it goes on without them (default 2,000 ms) */
  dbTimeoutMs?: number;
  /** database-derived values are reused for this long (default 10 s) */
  dbCacheMs?: number;
  /** the window of the database-derived gauges (default 24 hours) */
  windowHours?: number;
  /** labels put on every series of this process, e.g. { role: "api" } */
  defaultLabels?: Record<string, string>;
  /** worker heartbeats and queue lag, read from Redis at scrape time (wabot_workers_alive, wabot_queue_lag_seconds) */
  workerHealth?: Pick<WorkerHealth, "read">;
  /** the time of the read caches (default the system clock) */
  clock?: Clock;
}

/** One value shared for `ms` (a scrape's reads, shared by the gauges that need them). */
function sharedFor<T>(ms: number, clock: Clock): TtlCache<"value", T> {
  return new TtlCache<"value", T>({ ttlMs: ms, max: 1, clock });
}

interface DbSnapshot {
  cloudApi: { outcome: string; code: string; n: number }[];
  funnel: { tenant: string; channel: string; event: string; n: number }[];
  tenants: { tenant: string; phoneNumberId: string }[];
}

export function createMetrics(opts: MetricsOptions): Metrics {
  const registry = new Registry();
  if (opts.defaultLabels) registry.setDefaultLabels(opts.defaultLabels);
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const log = opts.logger;
  const queueTimeoutMs = opts.queueTimeoutMs ?? 1_000;
  const dbTimeoutMs = opts.dbTimeoutMs ?? 2_000;
  const dbCacheMs = opts.dbCacheMs ?? 10_000;
  const clock = opts.clock ?? systemClock;
  const windowHours = opts.windowHours ?? 24;

  const webhookRequests = new Counter({
    name: "wabot_webhook_requests_total",
    help: "POST /webhook requests by outcome (accepted=200, invalid_signature=401, invalid_json/invalid_envelope=400, unavailable=503, too_large=413)",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  for (const outcome of WEBHOOK_OUTCOMES) webhookRequests.inc({ outcome }, 0);

  const jobDuration = new Histogram({
    name: "wabot_job_duration_seconds",
    help: "Time a worker spent on one job attempt (processedOn to finishedOn), by queue and result (completed, retried, failed)",
    labelNames: ["queue", "result"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });

  /** what `wabot_metrics_source_up` waits for: this scrape's reads of each source */
  const probes: Record<string, () => Promise<boolean>> = {};

  if (opts.queues) {
    const queues = Object.values(opts.queues);
    type Counts = { queue: string; counts: Record<string, number> | null }[];
    // one read of Redis per scrape, shared by the gauges that need it
    const current = sharedFor<Promise<Counts>>(500, clock);
    const readCounts = (): Promise<Counts> => {
      const hit = current.get("value");
      if (hit) return hit;
      const value = Promise.all(
        queues.map(async (q) => {
          try {
            return { queue: q.name, counts: await withTimeout(q.getJobCounts(...QUEUE_STATES), queueTimeoutMs, `job counts of ${q.name}`) };
          } catch (err) {
            log.warn({ queue: q.name, err: err instanceof Error ? err.message : String(err) }, "metrics: queue counts unavailable");
            return { queue: q.name, counts: null };
          }
        }),
      );
      current.set("value", value);
      return value;
    };
    probes.redis = async () => (await readCounts()).every((c) => c.counts !== null);
    new Gauge({
      name: "wabot_queue_jobs",
      help: "Jobs in each BullMQ queue by state, read from Redis at scrape time",
      labelNames: ["queue", "state"] as const,
      registers: [registry],
      async collect() {
        this.reset();
        for (const { queue, counts } of await readCounts()) {
          if (counts) for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state] ?? 0);
        }
      },
    });
  }

  if (opts.workerHealth) {
    const health = opts.workerHealth;
    // one read per scrape, shared by the gauges and the source probe (bounded by the reader's own timeout)
    const current = sharedFor<Promise<Awaited<ReturnType<typeof health.read>> | null>>(500, clock);
    const readHealth = () => {
      const hit = current.get("value");
      if (hit) return hit;
      const value = health.read().catch((err: unknown) => {
        log.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics: worker heartbeats unavailable");
        return null;
      });
      current.set("value", value);
      return value;
    };
    const redisProbe = probes.redis;
    probes.redis = async () => {
      const [a, b] = await Promise.all([redisProbe ? redisProbe() : true, readHealth()]);
      return a && b !== null;
    };
    new Gauge({
      name: "wabot_workers_alive",
      help: "Worker processes whose heartbeat (written every 5 s, kept 20 s) is in Redis, read at scrape time",
      registers: [registry],
      async collect() {
        const r = await readHealth();
        if (r) this.set(r.alive); // else the last value stays; wabot_metrics_source_up{source="redis"} is 0
      },
    });
    new Gauge({
      name: "wabot_queue_lag_seconds",
      help: "Age of the oldest waiting job of each BullMQ queue (0 when none waits), from when it became ready to run; read from Redis at scrape time",
      labelNames: ["queue"] as const,
      registers: [registry],
      async collect() {
        const r = await readHealth();
        if (!r) return; // the last values stay; wabot_metrics_source_up{source="redis"} is 0
        this.reset();
        for (const [queue, q] of Object.entries(r.queues)) this.set({ queue }, q.lagSeconds);
      },
    });
  }

  if (opts.db) {
    const db = opts.db;
    const cached = sharedFor<DbSnapshot>(dbCacheMs, clock);

    const read = async (): Promise<DbSnapshot> => {
      const hours = windowHours;
      // cheap grouped reads over recent rows; small result sets (bounded labels)
      const [cloudApi, funnel, tenants] = await Promise.all([
        db.$queryRawUnsafe<{ outcome: string; code: number | null; n: bigint | number }[]>(
          `SELECT outcome::text AS outcome, error_code AS code, count(*) AS n
             FROM send_attempts
            WHERE started_at > now() - make_interval(hours => $1::int)
            GROUP BY 1, 2`,
          hours,
        ),
        db.$queryRawUnsafe<{ tenant: string | null; type: string; channel: string | null; n: bigint | number }[]>(
          `SELECT tenant_id::text AS tenant, type, data->>'channel' AS channel, count(*) AS n
             FROM audit_events
            WHERE created_at > now() - make_interval(hours => $1::int)
              AND type = ANY($2::text[])
            GROUP BY 1, 2, 3`,
          hours,
          FUNNEL_EVENTS.map((e) => `verification.${e}`),
        ),
        db.$queryRawUnsafe<{ tenant: string; phone_number_id: string }[]>(`SELECT id::text AS tenant, phone_number_id FROM tenants LIMIT 1000`),
      ]);
      // merge rows whose labels collapse to the same values (unknown channels, outcomes)
      const sum = new Map<string, number>();
      const add = (key: string, n: bigint | number) => sum.set(key, (sum.get(key) ?? 0) + Number(n));
      for (const r of cloudApi) add(`c\u0000${SEND_OUTCOMES.has(r.outcome) ? r.outcome : "other"}\u0000${r.code === null ? "none" : String(Math.trunc(Number(r.code)))}`, r.n);
      for (const r of funnel) {
        if (!r.tenant) continue;
        const channel = r.channel && CHANNELS.has(r.channel) ? r.channel : "unknown";
        add(`f\u0000${r.tenant}\u0000${channel}\u0000${r.type.slice("verification.".length)}`, r.n);
      }
      const value: DbSnapshot = { cloudApi: [], funnel: [], tenants: tenants.map((t) => ({ tenant: t.tenant, phoneNumberId: t.phone_number_id })) };
      for (const [key, n] of sum) {
        const [kind, a, b, c] = key.split("\u0000") as [string, string, string, string?];
        if (kind === "c") value.cloudApi.push({ outcome: a, code: b, n });
        else value.funnel.push({ tenant: a, channel: b, event: c!, n });
      }
      return value;
    };

    /**
     * The latest snapshot (cached), or null when PostgreSQL cannot be read in time. A read that outlives the
     * timeout is not started again while it runs: a slow database gets one metrics query, not one per scrape.
     */
    let reading: Promise<DbSnapshot> | null = null;
    const snapshot = async (): Promise<DbSnapshot | null> => {
      const hit = cached.get("value");
      if (hit) return hit;
      reading ??= read()
        .then((value) => {
          cached.set("value", value);
          return value;
        })
        .finally(() => {
          reading = null;
        });
      try {
        return await withTimeout(reading, dbTimeoutMs, "metrics database read");
      } catch (err) {
        log.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics: database-derived gauges unavailable");
        return null;
      }
    };

    probes.postgres = async () => (await snapshot()) !== null;

    new Gauge({
      name: "wabot_cloud_api_calls_total",
      help: `Cloud API send calls started in the last ${windowHours} hours, by outcome and Meta error code (none when there was no error code); derived from PostgreSQL (send_attempts) at scrape time`,
      labelNames: ["outcome", "code"] as const,
      registers: [registry],
      async collect() {
        const s = await snapshot();
        if (!s) return; // keep the last values; wabot_metrics_source_up{source="postgres"} says they are stale
        this.reset();
        for (const r of s.cloudApi) this.set({ outcome: r.outcome, code: r.code }, r.n);
      },
    });

    new Gauge({
      name: "wabot_verifications_total",
      help: `Verification events in the last ${windowHours} hours by tenant, channel and event; derived from PostgreSQL (audit_events) at scrape time`,
      labelNames: ["tenant", "channel", "event"] as const,
      registers: [registry],
      async collect() {
        const s = await snapshot();
        if (!s) return;
        this.reset();
        for (const r of s.funnel) this.set({ tenant: r.tenant, channel: r.channel, event: r.event }, r.n);
      },
    });

    new Gauge({
      name: "wabot_tenant_info",
      help: "1 for each tenant: maps the tenant label (tenant id) to the business phone number id it serves",
      labelNames: ["tenant", "phone_number_id"] as const,
      registers: [registry],
      async collect() {
        const s = await snapshot();
        if (!s) return;
        this.reset();
        for (const t of s.tenants) this.set({ tenant: t.tenant, phone_number_id: t.phoneNumberId }, 1);
      },
    });
  }

  new Gauge({
    name: "wabot_metrics_source_up",
    help: "1 when this scrape could read the source (redis: queue counts, postgres: DB-derived gauges), else 0",
    labelNames: ["source"] as const,
    registers: [registry],
    async collect() {
      const results = await Promise.all(Object.entries(probes).map(async ([source, probe]) => [source, await probe()] as const));
      for (const [source, up] of results) this.set({ source }, up ? 1 : 0);
    },
  });

  const observeWorker = (worker: Worker): void => {
    const queue = worker.name;
    const observe = (job: Job | undefined, result: JobResult) => {
      if (!job?.processedOn) return;
      const end = job.finishedOn ?? Date.now();
      jobDuration.observe({ queue, result }, Math.max(0, end - job.processedOn) / 1000);
    };
    worker.on("completed", (job) => observe(job, "completed"));
    worker.on("failed", (job, err) => {
      if (!job) return;
      const final = err?.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1);
      observe(job, final ? "failed" : "retried");
    });
  };

  return {
    registry,
    webhookRequests,
    jobDuration,
    observeWorker,
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/**
 * Meta's messaging limit per tenant (docs/limits.md, docs/metrics.md): `wabot_messaging_limit{tenant}` (the tier's
 * unique users per 24 h, +Inf for TIER_UNLIMITED) and `wabot_messaging_limit_unique_users_24h{tenant}` (unique
 * users reached outside the customer-service window in the moving last 24 h). The values are the last ones the
 * worker sweep (or the admin API) computed, kept in Redis, so every process exports the same: use `max()`.
 */
export function registerMessagingLimitGauges(
  registry: Registry,
  source: () => Promise<Array<{ tenant: string; limit: number | null; used: number }>>,
  logger: Logger,
  clock: Clock = systemClock,
): void {
  const current = sharedFor<Promise<Array<{ tenant: string; limit: number | null; used: number }> | null>>(500, clock);
  const read = () => {
    const hit = current.get("value");
    if (hit) return hit;
    const value = withTimeout(source(), 1_000, "messaging-limit values").catch((err: unknown) => {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics: messaging-limit values unavailable");
      return null;
    });
    current.set("value", value);
    return value;
  };
  // one gauge per figure, both read from the same (cached) rows at scrape time
  const perTenant = (name: string, help: string, figure: (r: NonNullable<Awaited<ReturnType<typeof read>>>[number]) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ["tenant"] as const,
      registers: [registry],
      async collect() {
        const rows = await read();
        if (!rows) return;
        this.reset();
        for (const r of rows) {
          const v = figure(r);
          if (v !== null) this.set({ tenant: r.tenant }, v);
        }
      },
    });
  perTenant("wabot_messaging_limit", "Meta's messaging-limit tier per tenant: unique users reachable outside the customer-service window per moving 24 h (+Inf: TIER_UNLIMITED)", (r) => r.limit);
  perTenant("wabot_messaging_limit_unique_users_24h", "Unique users each tenant reached outside the customer-service window in the moving last 24 h (business-initiated templates)", (r) => r.used);
}

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import type { Job, Queue } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";
import type { Logger } from "./logger";
import { projectRoot } from "../shared/project-root";
import { withTimeout } from "../shared/timeout";
import { TtlCache } from "../shared/ttl-cache";

/**
 * Worker liveness and queue lag, apart from /readyz (which checks PostgreSQL and Redis only, for a load balancer).
 *
 * - Every process that runs workers writes a heartbeat to Redis every `everyMs` (5 s): a key with a TTL (20 s)
 *   holding who it is, and its id in a sorted set scored by the time of the beat (so readers never SCAN; entries
 *   silent for an hour are pruned). A graceful shutdown removes both; a crashed process disappears when its key
 *   expires.
 * - `createWorkerHealth().read()` lists the live workers and, per queue, the job counts and the lag: the age of
 *   the oldest waiting job, from when it became ready to run. Used by `GET /admin/workers` and the
 *   `wabot_workers_alive` / `wabot_queue_lag_seconds` gauges (docs/metrics.md).
 *
 * Costs: one MULTI per process every 5 s; a read is a ZRANGEBYSCORE + MGET and two small reads per queue.
 */

export const HEARTBEAT_EVERY_MS = 5_000;
export const HEARTBEAT_TTL_MS = 20_000;
/** Set entries whose process has not beaten for this long are pruned (their keys expired long before). */
const PRUNE_AFTER_MS = 3_600_000;

const setKey = (prefix: string) => `${prefix}:heartbeat:workers`;
const beatKey = (prefix: string, id: string) => `${prefix}:heartbeat:worker:${id}`;

const beatSchema = z.object({
  id: z.string(),
  pid: z.number().int(),
  hostname: z.string(),
  queues: z.array(z.string()),
  startedAt: z.string(),
  version: z.string(),
  beatAt: z.string(),
});
export type WorkerBeat = z.infer<typeof beatSchema>;

let cachedVersion: string | undefined;
/** The version of the running code (package.json), "unknown" when it cannot be read. */
export function appVersion(): string {
  if (cachedVersion === undefined) {
    cachedVersion = "unknown";
    try {
      const pkg = JSON.parse(readFileSync(path.join(projectRoot(), "package.json"), "utf8")) as { version?: unknown };
      if (typeof pkg.version === "string") cachedVersion = pkg.version;
    } catch {
      // not readable: "unknown"
    }
  }
  return cachedVersion;
}

export interface HeartbeatOptions {
  /** a fail-fast connection (core.redis): a beat during an outage fails at once and is logged, never queued */
  redis: Redis;
  prefix: string;
  /** the queues this process's workers take jobs from */
  queues: string[];
  logger: Logger;
  everyMs?: number;
  ttlMs?: number;
}

export interface Heartbeat {
  /** this process's worker id (hostname, pid and a random suffix) */
  id: string;
  /** stops beating and removes the heartbeat (graceful shutdown) */
  stop(): Promise<void>;
}

/** Starts beating (the first beat is written before this resolves, when Redis takes it). */
export async function startHeartbeat(opts: HeartbeatOptions): Promise<Heartbeat> {
  const everyMs = opts.everyMs ?? HEARTBEAT_EVERY_MS;
  const ttlMs = opts.ttlMs ?? HEARTBEAT_TTL_MS;
  const host = hostname();
  const id = `${host}:${process.pid}:${randomBytes(3).toString("hex")}`;
  const fixed = { id, pid: process.pid, hostname: host, queues: opts.queues, startedAt: new Date().toISOString(), version: appVersion() };
  let failing = false;

  const beat = async (): Promise<void> => {
    const now = Date.now();
    const value: WorkerBeat = { ...fixed, beatAt: new Date(now).toISOString() };
    try {
      const results = await opts.redis
        .multi()
        .set(beatKey(opts.prefix, id), JSON.stringify(value), "PX", ttlMs)
        .zadd(setKey(opts.prefix), now, id)
        .zremrangebyscore(setKey(opts.prefix), "-inf", now - PRUNE_AFTER_MS)
        .pexpire(setKey(opts.prefix), PRUNE_AFTER_MS)
        .exec();
      const failed = results?.find(([err]) => err);
      if (!results || failed) throw failed?.[0] ?? new Error("MULTI aborted");
      if (failing) opts.logger.info({ workerId: id }, "worker heartbeat written again");
      failing = false;
    } catch (err) {
      if (!failing) opts.logger.warn({ workerId: id, err: err instanceof Error ? err.message : String(err) }, "worker heartbeat not written");
      failing = true;
    }
  };

  await beat();
  const timer = setInterval(() => void beat(), everyMs);
  timer.unref();
  let stopped = false;
  return {
    id,
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      try {
        await opts.redis.multi().del(beatKey(opts.prefix, id)).zrem(setKey(opts.prefix), id).exec();
      } catch (err) {
        opts.logger.warn({ workerId: id, err: err instanceof Error ? err.message : String(err) }, "worker heartbeat not removed (it expires by itself)");
      }
    },
  };
}

export interface QueueHealth {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
  /** age of the oldest waiting job in seconds, from when it became ready to run; 0 when none waits */
  lagSeconds: number;
}

export interface WorkerHealthReport {
  /** `ok` when at least one worker process is alive, else `no_workers` */
  status: "ok" | "no_workers";
  alive: number;
  workers: WorkerBeat[];
  queues: Record<string, QueueHealth>;
  checkedAt: string;
}

export interface WorkerHealth {
  /** reads Redis (results are shared for `cacheMs`); rejects when Redis does not answer within the timeout */
  read(): Promise<WorkerHealthReport>;
}

export interface WorkerHealthOptions {
  redis: Pick<Redis, "zrangebyscore" | "mget">;
  prefix: string;
  queues: Record<string, Pick<Queue, "name" | "getJobCounts" | "getJobs">>;
  /** the whole read may take this long (default 1,000 ms) */
  timeoutMs?: number;
  /** a read is reused this long (default 500 ms): several scrapers or callers share it */
  cacheMs?: number;
  now?: () => number;
}

/**
 * When a waiting job became ready to run: its creation, or the end of the attempt that delayed it (a back-off,
 * a pacing delay, a wait for an earlier message), plus that delay. BullMQ keeps the latest delay on the job.
 */
export function readyAt(job: Pick<Job, "timestamp" | "processedOn" | "finishedOn" | "delay">): number {
  return Math.max(job.timestamp, job.processedOn ?? 0, job.finishedOn ?? 0) + (job.delay ?? 0);
}

export function createWorkerHealth(opts: WorkerHealthOptions): WorkerHealth {
  const timeoutMs = opts.timeoutMs ?? 1_000;
  const cacheMs = opts.cacheMs ?? 500;
  const now = opts.now ?? Date.now;
  const current = new TtlCache<"report", Promise<WorkerHealthReport>>({ ttlMs: cacheMs, max: 1, clock: { now: () => new Date(now()) } });

  const readOnce = async (): Promise<WorkerHealthReport> => {
    const at = now();
    const [workers, queues] = await Promise.all([
      (async () => {
        // recent entries; alive = its key (with its TTL) still exists
        const ids = await opts.redis.zrangebyscore(setKey(opts.prefix), at - PRUNE_AFTER_MS, "+inf");
        if (ids.length === 0) return [];
        const values = await opts.redis.mget(...ids.map((id) => beatKey(opts.prefix, id)));
        return values.flatMap((v) => {
          if (!v) return []; // expired (a crash) or removed (a shutdown) since its last beat
          try {
            const parsed = beatSchema.safeParse(JSON.parse(v));
            return parsed.success ? [parsed.data] : [];
          } catch {
            return [];
          }
        });
      })(),
      Promise.all(
        Object.values(opts.queues).map(async (q) => {
          const [counts, oldest] = await Promise.all([q.getJobCounts("waiting", "active", "delayed", "failed"), q.getJobs(["waiting"], 0, 0, true)]);
          const first = oldest[0];
          const health: QueueHealth = {
            waiting: counts.waiting ?? 0,
            active: counts.active ?? 0,
            delayed: counts.delayed ?? 0,
            failed: counts.failed ?? 0,
            lagSeconds: first ? Math.max(0, Math.round(at - readyAt(first)) / 1000) : 0,
          };
          return [q.name, health] as const;
        }),
      ),
    ]);
    workers.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
    return { status: workers.length > 0 ? "ok" : "no_workers", alive: workers.length, workers, queues: Object.fromEntries(queues), checkedAt: new Date(at).toISOString() };
  };

  return {
    read() {
      const hit = current.get("report");
      if (hit) return hit;
      const value = withTimeout(readOnce(), timeoutMs, "worker health read");
      current.set("report", value);
      value.catch(() => {
        if (current.get("report") === value) current.delete("report"); // a failed read is not reused
      });
      return value;
    },
  };
}

import type { Worker } from "bullmq";
import { createInboundWorker } from "../queues/inbound.worker";
import { createOutboundWorker, type BackoffSettings } from "../queues/outbound.worker";
import { createStatusWorker } from "../queues/status.worker";
import { createEventsWorker, type EventBackoffSettings } from "../queues/events.worker";
import { createOtpWorker } from "../queues/otp.worker";
import { createFlowCallWorker } from "../queues/flow-call.worker";
import { FlowCalls } from "../flows/flow-call";
import { sqlFor } from "../db/sql";
import { workerConnection } from "../queues/redis";
import { outageLog } from "../observability/outage-log";
import type { Logger } from "../observability/logger";
import type { Redis } from "ioredis";
import { hourlyPurge } from "../retention/purge";
import { startHeartbeat, type Heartbeat } from "../observability/worker-health"; // ops: worker liveness
import { isDevMode } from "../config/env";
import type { Core } from "./core";

export interface RunningWorkers {
  workers: Worker[];
  /** ops: this process's heartbeat in Redis (GET /admin/workers), removed by close() */
  heartbeat: Heartbeat;
  /** resolves once every worker's connection is ready (already so when started with the default `waitReady`) */
  ready: Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the queue workers of one process. Every worker has its own blocking Redis connection
 * (maxRetriesPerRequest: null); `close()` waits for the jobs in flight.
 */
export async function startWorkers(
  core: Core,
  opts: { sweepEveryMs?: number; backoff?: Partial<BackoffSettings>; eventBackoff?: Partial<EventBackoffSettings>; expireSweepEveryMs?: number; heartbeat?: { everyMs?: number; ttlMs?: number }; shutdownGraceMs?: number;
    /** false: return at once, before Redis answers (the processes' start-up, src/main/startup.ts); await `ready` */
    waitReady?: boolean } = {},
): Promise<RunningWorkers> {
  const { config, logger, prisma, keyring, tenants, clock } = core;
  const connections = Array.from({ length: 6 }, () => workerConnection(config.REDIS_URL));
  // an outage is logged by the workers (their 'error' events); without a listener ioredis prints each retry to stderr
  for (const c of connections) c.on("error", () => undefined);
  const onMessageStatus = (messageId: string, status: string, errorCode?: number | string | null) =>
    core.planner.onMessageStatus(messageId, status, errorCode ?? undefined);
  const inbound = createInboundWorker({
    connection: connections[0]!,
    prefix: config.QUEUE_PREFIX,
    concurrency: config.INBOUND_CONCURRENCY,
    queue: core.queues.inbound,
    mailboxes: core.mailboxes,
    keyring: core.keyring,
    handler: core.inboundHandler,
    logger,
    lockMs: config.WORKER_LOCK_MS,
  });
  const outbound = createOutboundWorker({
    prisma, keyring, tenants, config, clock,
    logger: logger.child({ worker: "outbound" }),
    connection: connections[1]!,
    backoff: opts.backoff,
    resolveContent: (m) => core.planner.resolveContent(m),
    onMessageStatus,
  });
  const statuses = createStatusWorker({
    prisma, keyring, tenants, config, clock,
    logger: logger.child({ worker: "statuses" }),
    connection: connections[2]!,
    onMessageStatus,
    onAccountUpdate: core.accountUpdates.handle,
  });
  const events = createEventsWorker({
    prisma, keyring, clock, config,
    logger: logger.child({ worker: "events" }),
    connection: connections[3]!,
    backoff: opts.eventBackoff,
    dev: isDevMode(config),
  });
  const otp = createOtpWorker({
    prisma, keyring, clock,
    connection: connections[4]!,
    prefix: config.QUEUE_PREFIX,
    planner: core.planner,
    senders: core.senders,
    verifications: core.verifications,
    logger: logger.child({ worker: "otp" }),
    queue: core.queues.otp,
    sweepEveryMs: opts.expireSweepEveryMs,
    businessName: config.BUSINESS_NAME,
    lockMs: config.WORKER_LOCK_MS,
  });
  // flows' http steps: the business is called here, outside any transaction (src/flows/flow-call.ts)
  const flowCalls = createFlowCallWorker({
    prisma, keyring, tenants, clock,
    sql: sqlFor(prisma),
    outbox: core.outbox,
    flowHandler: core.flowHandler,
    calls: new FlowCalls(core.queues.flowCalls, keyring),
    logger: logger.child({ worker: "flow-calls" }),
    connection: connections[5]!,
    prefix: config.QUEUE_PREFIX,
    dev: isDevMode(config),
    lockMs: config.WORKER_LOCK_MS,
  });
  const workers: Worker[] = [inbound, outbound, statuses, events, otp, flowCalls];
  for (const w of workers) core.metrics.observeWorker(w); // ops: wabot_job_duration_seconds
  quietOutages(workers, connections, logger);
  // the workers wait for Redis by themselves (their connections retry for ever); only the caller may wait for them
  const ready = Promise.all(workers.map((w) => w.waitUntilReady())).then(() => undefined);
  ready.catch(() => undefined); // closed before Redis answered: nothing to report
  let everReady = false;
  void ready.then(() => (everReady = true), () => undefined);
  if (opts.waitReady !== false) await ready;
  // ops: alive while it beats (every 5 s, kept 20 s); close() removes it first
  const heartbeat = await startHeartbeat({ redis: core.redis, prefix: config.QUEUE_PREFIX, queues: workers.map((w) => w.name), logger: logger.child({ component: "heartbeat" }), ...opts.heartbeat });

  // retention (tenant settings `retention`): at most hourly per process, the first run one sweep after start;
  // wall time, like the Idempotency-Key cleanup: row timestamps are the database's
  const purge = hourlyPurge(prisma, () => new Date(), ({ total }) => {
    if (Object.values(total).some((n) => n > 0)) logger.info({ purged: total }, "retention purge");
  });
  // The outbox sweeper repairs the rare crash between a reply's commit and its job being written.
  const sweep = setInterval(() => {
    core.outbox.sweep().catch((err) => logger.warn({ err: err.message }, "outbox sweep failed"));
    core.eventPublisher.sweep().catch((err: Error) => logger.warn({ err: err.message }, "events sweep failed"));
    // an Idempotency-Key is honoured for 24 hours
    core.prisma.idempotencyRecord
      .deleteMany({ where: { createdAt: { lt: new Date(Date.now() - 24 * 3600_000) } } })
      .catch((err: Error) => logger.warn({ err: err.message }, "idempotency cleanup failed"));
    purge().catch((err: Error) => logger.warn({ err: err.message }, "retention purge failed"));
    // Meta's messaging limit: tier at most every 6 h, 24-hour use and its warning at most once a minute per tenant
    core.messagingLimits.sweep().catch((err: Error) => logger.warn({ err: err.message }, "messaging-limit sweep failed"));
  }, opts.sweepEveryMs ?? 15_000);
  sweep.unref();

  return {
    workers,
    heartbeat,
    ready,
    async close() {
      await heartbeat.stop(); // ops: no longer counted alive while the jobs in flight finish
      clearInterval(sweep);
      // BullMQ's close waits for the jobs in flight, and a worker connection retries for ever: during a Redis outage
      // that wait never ends. After the grace period the connections are dropped; the jobs held run again elsewhere
      // once their locks lapse, and handling them is idempotent (docs/reliability.md).
      // workers that never reached Redis hold no job: nothing to wait for
      const graceMs = everReady ? (opts.shutdownGraceMs ?? config.SHUTDOWN_GRACE_MS) : 0;
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        Promise.allSettled(workers.map((w) => w.close())).then(() => true),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
      ]);
      clearTimeout(timer);
      if (!finished) {
        logger.warn({ graceMs, redis: connections.map((c) => c.status) }, "jobs still held after the shutdown grace period: dropping the connections");
        for (const w of workers) (w as unknown as { blockingConnection?: { disconnect(wait?: boolean): Promise<void> } }).blockingConnection?.disconnect(false).catch(() => undefined);
      }
      await Promise.allSettled(connections.map((c) => (c.status === "ready" && finished ? c.quit() : Promise.resolve(c.disconnect()))));
    },
  };
}

/** What a worker reports on every reconnect attempt while Redis is unreachable or is not Redis. */
const CONNECTION_ERROR = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|EAI_AGAIN|Connection is closed|Stream isn't writeable|Protocol error/i;

/**
 * ops: during an outage each worker reports every reconnect attempt (several a second, per worker): those become one
 * warning per worker (and one every 30 s) and one line when its connection is back. Any other error goes to the
 * worker's own listeners as before.
 */
function quietOutages(workers: Worker[], connections: Redis[], logger: Logger): void {
  const outage = outageLog(logger);
  workers.forEach((w, i) => {
    const own = w.listeners("error") as ((err: Error) => void)[];
    w.removeAllListeners("error");
    w.on("error", (err: Error) => (CONNECTION_ERROR.test(err.message) ? outage.error(`${w.name} worker`, err) : own.forEach((l) => l(err))));
    connections[i]?.on("ready", () => outage.back(`${w.name} worker`));
  });
}

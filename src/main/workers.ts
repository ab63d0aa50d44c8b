import type { Worker } from "bullmq";
import { createInboundWorker } from "../queues/inbound.worker";
import { createOutboundWorker, type BackoffSettings } from "../queues/outbound.worker";
import { createStatusWorker } from "../queues/status.worker";
import { createEventsWorker, type EventBackoffSettings } from "../queues/events.worker";
import { createOtpWorker } from "../queues/otp.worker";
import { workerConnection } from "../queues/redis";
import { hourlyPurge } from "../retention/purge";
import type { Core } from "./core";

export interface RunningWorkers {
  workers: Worker[];
  close(): Promise<void>;
}

/**
 * Starts the queue workers of one process. Every worker has its own blocking Redis connection
 * (maxRetriesPerRequest: null); `close()` waits for the jobs in flight.
 */
export async function startWorkers(
  core: Core,
  opts: { sweepEveryMs?: number; backoff?: Partial<BackoffSettings>; eventBackoff?: Partial<EventBackoffSettings>; expireSweepEveryMs?: number } = {},
): Promise<RunningWorkers> {
  const { config, logger, prisma, keyring, tenants, clock } = core;
  const connections = Array.from({ length: 5 }, () => workerConnection(config.REDIS_URL));
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
  });
  const events = createEventsWorker({
    prisma, keyring, clock, config,
    logger: logger.child({ worker: "events" }),
    connection: connections[3]!,
    backoff: opts.eventBackoff,
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
  });
  const workers: Worker[] = [inbound, outbound, statuses, events, otp];
  for (const w of workers) core.metrics.observeWorker(w); // ops: wabot_job_duration_seconds
  await Promise.all(workers.map((w) => w.waitUntilReady()));

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
  }, opts.sweepEveryMs ?? 15_000);
  sweep.unref();

  return {
    workers,
    async close() {
      clearInterval(sweep);
      await Promise.allSettled(workers.map((w) => w.close()));
      await Promise.allSettled(connections.map((c) => c.quit()));
    },
  };
}

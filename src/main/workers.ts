import type { Worker } from "bullmq";
import { createInboundWorker } from "../queues/inbound.worker";
import { createOutboundWorker, type BackoffSettings } from "../queues/outbound.worker";
import { createStatusWorker } from "../queues/status.worker";
import { workerConnection } from "../queues/redis";
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
  opts: { sweepEveryMs?: number; backoff?: Partial<BackoffSettings> } = {},
): Promise<RunningWorkers> {
  const { config, logger, prisma, keyring, tenants, clock } = core;
  const connections = [workerConnection(config.REDIS_URL), workerConnection(config.REDIS_URL), workerConnection(config.REDIS_URL)];
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
  });
  const statuses = createStatusWorker({
    prisma, keyring, tenants, config, clock,
    logger: logger.child({ worker: "statuses" }),
    connection: connections[2]!,
  });
  const workers: Worker[] = [inbound, outbound, statuses];
  await Promise.all(workers.map((w) => w.waitUntilReady()));

  // The outbox sweeper repairs the rare crash between a reply's commit and its job being written.
  const sweep = setInterval(() => {
    core.outbox.sweep().catch((err) => logger.warn({ err: err.message }, "outbox sweep failed"));
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

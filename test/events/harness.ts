import { Queue, type Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../../src/config/env";
import { createPrisma, type PrismaClient } from "../../src/db/prisma";
import { EventPublisher } from "../../src/events/publisher";
import { createLogger } from "../../src/observability/logger";
import { createEventsWorker } from "../../src/queues/events.worker";
import { QUEUES, type EventJob } from "../../src/queues/jobs";
import { workerConnection } from "../../src/queues/redis";
import { systemClock } from "../../src/shared/clock";
import { Keyring } from "../../src/shared/crypto";
import { createTestDatabase, type TestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";

/** The events pipeline alone (publisher, queue, delivery worker) on a fresh database and queue prefix. */
export interface EventsHarness {
  db: TestDatabase;
  config: Config;
  prisma: PrismaClient;
  keyring: Keyring;
  queue: Queue<EventJob>;
  publisher: EventPublisher;
  worker: Worker<EventJob>;
  close(): Promise<void>;
}

export async function startEventsHarness(opts: {
  maxAttempts: number;
  timeoutMs: number;
  /** development mode: callbacks may be plain http to loopback (a local receiver) */
  dev: boolean;
  backoff?: { baseMs: number; factor: number; capMs: number };
}): Promise<EventsHarness> {
  const logger = createLogger({ level: "silent" });
  const db = await createTestDatabase();
  const config = testConfig({ DATABASE_URL: db.url });
  const prisma = createPrisma(db.url, 5);
  const keyring = Keyring.fromBase64(config.SECRETS_KEY);
  const connection: Redis = workerConnection(config.REDIS_URL);
  const queueConnection: Redis = workerConnection(config.REDIS_URL);
  const queue = new Queue<EventJob>(QUEUES.events, { connection: queueConnection, prefix: config.QUEUE_PREFIX });
  const publisher = new EventPublisher(prisma, queue, logger, { maxAttempts: opts.maxAttempts });
  const worker = createEventsWorker({
    prisma, keyring, connection, logger, clock: systemClock,
    config: { QUEUE_PREFIX: config.QUEUE_PREFIX },
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    timeoutMs: opts.timeoutMs,
    dev: opts.dev,
  });
  await worker.waitUntilReady();
  return {
    db, config, prisma, keyring, queue, publisher, worker,
    async close() {
      await worker.close();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await Promise.all([connection.quit(), queueConnection.quit()]);
      await prisma.$disconnect();
      await db.drop();
    },
  };
}

import { Queue, type Worker } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../../src/config/env";
import { createPrisma, transaction, type PrismaClient } from "../../src/db/prisma";
import type { StatusItem, WebhookStatus } from "../../src/ingest/envelope";
import { Outbox, type OutboundContent } from "../../src/messaging/outbox";
import { createLogger, type Logger } from "../../src/observability/logger";
import { CloudApiClient } from "../../src/providers/whatsapp/cloud-api.client";
import { jobIds, jobOptions, QUEUES, type EncryptedJob, type OutboundJob } from "../../src/queues/jobs";
import { createOutboundWorker, type OutboundWorkerDeps } from "../../src/queues/outbound.worker";
import { workerConnection } from "../../src/queues/redis";
import { createStatusWorker } from "../../src/queues/status.worker";
import { systemClock } from "../../src/shared/clock";
import { Keyring } from "../../src/shared/crypto";
import { TenantDirectory, type TenantRecord } from "../../src/tenants/tenant-directory";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";

/** Everything an outbound/status test needs, on a fresh database and a queue prefix of its own. */
export interface Harness {
  config: Config;
  prisma: PrismaClient;
  keyring: Keyring;
  tenants: TenantDirectory;
  tenant: TenantRecord;
  logger: Logger;
  client: CloudApiClient;
  outboundQueue: Queue<OutboundJob>;
  statusQueue: Queue<EncryptedJob>;
  outbox: Outbox;
  connection: Redis;
  outboundWorker?: Worker<OutboundJob>;
  statusWorker?: Worker;
  startOutbound(extra?: Partial<OutboundWorkerDeps>): Worker<OutboundJob>;
  startStatus(): Worker;
  contact(phone: string | null, userId?: string): Promise<string>;
  /** writes queued rows the way the conversation layer does and dispatches them */
  send(contactId: string, contents: OutboundContent[]): Promise<string[]>;
  /** an outbound row already sent, with a wamid */
  sentMessage(contactId: string, wamid: string): Promise<string>;
  /** enqueues a status webhook job exactly as ingest does (encrypted StatusItem) */
  status(wamid: string, status: string, tsSeconds: number, extra?: Partial<WebhookStatus>, opts?: { attempts?: number; delay?: number; jobId?: string }): Promise<void>;
  close(): Promise<void>;
}

export async function createHarness(graphUrl: string, overrides: Record<string, string> = {}): Promise<Harness> {
  const db = await createTestDatabase();
  const config = testConfig({ DATABASE_URL: db.url, GRAPH_API_BASE_URL: graphUrl, ...overrides });
  const prisma = createPrisma(db.url, 10);
  const keyring = Keyring.fromBase64(config.SECRETS_KEY);
  const tenants = new TenantDirectory(prisma, keyring);
  const tenant = await tenants.upsertDefault({
    phoneNumberId: config.WHATSAPP_PHONE_NUMBER_ID,
    displayPhoneNumber: config.WHATSAPP_DISPLAY_PHONE_NUMBER,
    accessToken: config.WHATSAPP_ACCESS_TOKEN,
  });
  const logger = createLogger({ level: config.LOG_LEVEL });
  const client = new CloudApiClient({ baseUrl: config.GRAPH_API_BASE_URL, version: config.GRAPH_API_VERSION, timeoutMs: config.OUTBOUND_TIMEOUT_MS });
  const connection = workerConnection(config.REDIS_URL);
  const queueConnection = workerConnection(config.REDIS_URL);
  const outboundQueue = new Queue<OutboundJob>(QUEUES.outbound, { connection: queueConnection, prefix: config.QUEUE_PREFIX });
  const statusQueue = new Queue<EncryptedJob>(QUEUES.statuses, { connection: queueConnection, prefix: config.QUEUE_PREFIX });
  const outbox = new Outbox(prisma, outboundQueue, logger, config.OUTBOUND_MAX_ATTEMPTS);
  let contacts = 0;

  const h: Harness = {
    config,
    prisma,
    keyring,
    tenants,
    tenant,
    logger,
    client,
    outboundQueue,
    statusQueue,
    outbox,
    connection,
    startOutbound(extra = {}) {
      h.outboundWorker = createOutboundWorker({
        prisma,
        keyring,
        tenants,
        config,
        logger,
        clock: systemClock,
        connection,
        client,
        backoff: { baseMs: 20, capMs: 100, pairBaseMs: 150, pairCapMs: 5_000 },
        orderPollMs: 20,
        ...extra,
      });
      return h.outboundWorker;
    },
    startStatus() {
      h.statusWorker = createStatusWorker({ prisma, keyring, tenants, config, logger, clock: systemClock, connection, concurrency: 8 });
      return h.statusWorker;
    },
    async contact(phone, userId) {
      contacts++;
      const row = await prisma.contact.create({
        data: { tenantId: tenant.id, waId: phone ? phone.replace(/\D/g, "") : null, phoneE164: phone, userId: userId ?? null },
      });
      return row.id;
    },
    async send(contactId, contents) {
      const ids = await transaction(prisma, (tx) => Outbox.create(tx, { tenantId: tenant.id, contactId, contents, now: new Date() }));
      await outbox.dispatch(ids);
      return ids;
    },
    async sentMessage(contactId, wamid) {
      const row = await prisma.message.create({
        data: { tenantId: tenant.id, contactId, direction: "outbound", type: "text", payload: { type: "text", text: { body: "x" } }, status: "sent", wamid, sentAt: new Date(), timestamp: new Date() },
      });
      return row.id;
    },
    async status(wamid, status, tsSeconds, extra = {}, opts = {}) {
      const item: StatusItem = {
        kind: "status",
        phoneNumberId: tenant.phoneNumberId,
        status: { id: wamid, status, timestamp: String(tsSeconds), recipient_id: "14155550123", ...extra },
        receivedAt: Date.now(),
      };
      await statusQueue.add(
        "status",
        { enc: keyring.encrypt("job-data", JSON.stringify(item)) },
        {
          ...jobOptions.statuses,
          attempts: opts.attempts ?? 3,
          backoff: { type: "fixed", delay: opts.delay ?? 30 },
          jobId: opts.jobId ?? jobIds.status(tenant.phoneNumberId, wamid, status),
        },
      );
    },
    async close() {
      await Promise.all([h.outboundWorker?.close(), h.statusWorker?.close()]);
      await outboundQueue.obliterate({ force: true }).catch(() => undefined);
      await statusQueue.obliterate({ force: true }).catch(() => undefined);
      await outboundQueue.close();
      await statusQueue.close();
      client.close();
      await Promise.all([connection.quit(), queueConnection.quit()]);
      await prisma.$disconnect();
      await db.drop();
      void contacts;
    },
  };
  return h;
}

/** Polls until the check returns a truthy value (no blind sleeps). */
export async function waitFor<T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Until the queue has nothing waiting, delayed or active. */
export async function drained(queue: Queue, timeoutMs = 10_000): Promise<void> {
  await waitFor(async () => {
    const c = await queue.getJobCounts("waiting", "delayed", "active", "prioritized", "paused");
    return Object.values(c).every((n) => n === 0);
  }, timeoutMs, `queue ${queue.name} to drain`);
}

import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "../config/env";
import { InboundHandler } from "../conversation/inbound-handler";
import { Router, greetingHandler, type MessageHandler } from "../conversation/router";
import { createPrisma, type PrismaClient } from "../db/prisma";
import { createIngest, type Ingest } from "../ingest/ingest";
import { Mailboxes } from "../ingest/mailbox";
import { Outbox } from "../messaging/outbox";
import { createLogger, type Logger } from "../observability/logger";
import { createMetrics, type Metrics } from "../observability/metrics"; // ops: metrics
import { QUEUES, type EncryptedJob, type EventJob, type OtpJob, type OutboundJob } from "../queues/jobs";
import { EventPublisher } from "../events/publisher";
import { OtpDeliveryPlanner } from "../otp/delivery.planner";
import { Limits } from "../otp/limits";
import { otpChatHandler } from "../otp/otp-chat.handler";
import { OtpEvents } from "../otp/otp-events";
import { VerificationService } from "../otp/verification.service";
import { createCodeSenders, type CodeSenders } from "../providers";
import { ApiKeys } from "../tenants/api-keys";
import { FlowHandler } from "../flows/flow.handler";
import { FlowStore } from "../flows/flow-store";
import { installBuiltinFlows, loadBuiltinFlows } from "../flows/builtin";
import { PinService } from "../pin/pin.service";
import { mergeActions, type ActionRegistry } from "../journeys/actions";
import { createContactActions } from "../journeys/contacts.actions";
import { createPinActions } from "../journeys/pin.actions";
import { createEmailSender, type EmailSender } from "../providers/email";
import { systemMessageHandler } from "../journeys/system-messages";
import { producerConnection } from "../queues/redis";
import { systemClock, type Clock } from "../shared/clock";
import { Keyring } from "../shared/crypto";
import { TenantDirectory } from "../tenants/tenant-directory";

/**
 * The services every process needs, built once from the configuration: clients, queues (as producers),
 * the ingest and the conversation layer. Composition roots (api.ts, worker.ts, all.ts, demo.ts) add HTTP
 * and workers on top and call close() on SIGTERM.
 */
export interface Core {
  config: Config;
  logger: Logger;
  clock: Clock;
  prisma: PrismaClient;
  redis: Redis;
  keyring: Keyring;
  tenants: TenantDirectory;
  queues: {
    inbound: Queue<EncryptedJob>;
    statuses: Queue<EncryptedJob>;
    outbound: Queue<OutboundJob>;
    events: Queue<EventJob>;
    otp: Queue<OtpJob>;
  };
  mailboxes: Mailboxes;
  outbox: Outbox;
  ingest: Ingest;
  router: Router;
  inboundHandler: InboundHandler;
  limits: Limits;
  apiKeys: ApiKeys;
  eventPublisher: EventPublisher;
  senders: CodeSenders;
  planner: OtpDeliveryPlanner;
  verifications: VerificationService;
  flows: FlowStore;
  flowHandler: FlowHandler;
  pins: PinService;
  email: EmailSender | undefined;
  /** ops: this process's Prometheus registry and instruments (docs/metrics.md) */
  metrics: Metrics;
  close(): Promise<void>;
}

export interface CoreOptions {
  logger?: Logger;
  clock?: Clock;
  /** handlers tried before the greeting fallback */
  handlers?: MessageHandler[];
  /** action groups for flows' `action` steps (src/journeys) */
  actions?: ActionRegistry[];
  /** ops: default process metrics in the registry (default true) */
  defaultMetrics?: boolean;
}

export function buildCore(config: Config, opts: CoreOptions = {}): Core {
  const logger = opts.logger ?? createLogger({ level: config.LOG_LEVEL, pretty: config.NODE_ENV === "development" });
  const clock = opts.clock ?? systemClock;
  const prisma = createPrisma(config.DATABASE_URL, Math.max(10, config.INBOUND_CONCURRENCY + config.OUTBOUND_CONCURRENCY + 4));
  const redis = producerConnection(config.REDIS_URL);
  redis.on("error", (err) => logger.warn({ err: err.message }, "redis connection error"));
  const keyring = Keyring.fromBase64(config.SECRETS_KEY);
  const tenants = new TenantDirectory(prisma, keyring);
  const queueOpts = { connection: redis, prefix: config.QUEUE_PREFIX };
  const queues = {
    inbound: new Queue<EncryptedJob>(QUEUES.inbound, queueOpts),
    statuses: new Queue<EncryptedJob>(QUEUES.statuses, queueOpts),
    outbound: new Queue<OutboundJob>(QUEUES.outbound, queueOpts),
    events: new Queue<EventJob>(QUEUES.events, queueOpts),
    otp: new Queue<OtpJob>(QUEUES.otp, queueOpts),
  };
  for (const q of Object.values(queues)) q.on("error", (err) => logger.warn({ err: err.message, queue: q.name }, "queue error"));
  const mailboxes = new Mailboxes(redis, config.QUEUE_PREFIX, keyring);
  const outbox = new Outbox(prisma, queues.outbound, logger, config.OUTBOUND_MAX_ATTEMPTS);
  const ingest = createIngest({ appSecret: config.WHATSAPP_APP_SECRET, keyring, redis, mailboxes, inboundQueue: queues.inbound, statusQueue: queues.statuses, logger });
  const limits = new Limits(redis, config.QUEUE_PREFIX);
  const apiKeys = new ApiKeys(prisma, keyring);
  const eventPublisher = new EventPublisher(prisma, queues.events, logger, { clock });
  const senders = createCodeSenders(config, logger);
  const otpEvents = new OtpEvents();
  const planner = new OtpDeliveryPlanner({
    prisma, keyring, outbox, clock, logger, senders, config,
    otpQueue: queues.otp,
    events: otpEvents,
    eventDispatch: (ids) => eventPublisher.dispatch(ids),
  });
  const verifications = new VerificationService({ prisma, keyring, limits, clock, logger, delivery: planner, events: otpEvents });
  const flows = FlowStore.shared(prisma, clock);
  const pins = new PinService({ clock, logger });
  const email = createEmailSender(config, logger);
  const actions = mergeActions(
    createContactActions({ prisma, eventPublisher, logger: logger.child({ component: "contact-actions" }), verifications }),
    createPinActions({ prisma, pins, keyring, clock, logger, email, config }),
    ...(opts.actions ?? []),
  );
  const flowHandler = new FlowHandler({ prisma, keyring, flows, verifications, pins, logger, actions });
  // codes typed in chat first (unless a flow step waits for input), then flows, then the caller's, then a greeting
  // Meta's system notices (number changed) move the contact before anything can answer it
  const router = new Router([
    systemMessageHandler({ eventPublisher, logger }),
    otpChatHandler({ verifications, delivery: planner }),
    flowHandler,
    ...(opts.handlers ?? []),
    greetingHandler,
  ]);
  const inboundHandler = new InboundHandler({ prisma, tenants, router, outbox, clock, logger });
  // ops: one Prometheus registry per process; queue depths and DB-derived gauges are read at scrape time
  const metrics = createMetrics({ logger, queues, db: prisma, defaultMetrics: opts.defaultMetrics });

  return {
    config, logger, clock, prisma, redis, keyring, tenants, queues, mailboxes, outbox, ingest, router, inboundHandler,
    limits, apiKeys, eventPublisher, senders, planner, verifications, flows, flowHandler, pins, email, metrics,
    async close() {
      senders.close();
      email?.close?.();
      await Promise.allSettled(Object.values(queues).map((q) => q.close()));
      await Promise.allSettled([prisma.$disconnect(), redis.status === "ready" ? redis.quit() : Promise.resolve(redis.disconnect())]);
    },
  };
}

/** The built-in flows (flows/*.json|yaml) for a tenant: published when changed, never over a business's own. */
export async function installBuiltins(core: Core, tenantId: string): Promise<void> {
  const loaded = loadBuiltinFlows();
  for (const e of loaded.errors) core.logger.error(e, "invalid built-in flow file skipped");
  const r = await installBuiltinFlows(core.flows, tenantId, loaded);
  if (r.installed.length) core.logger.info({ tenantId, installed: r.installed }, "built-in flows published");
}

/** The default tenant comes from the environment; it is created or updated at start, with the built-in flows. */
export async function ensureDefaultTenant(core: Core) {
  const tenant = await core.tenants.upsertDefault({
    phoneNumberId: core.config.WHATSAPP_PHONE_NUMBER_ID,
    displayPhoneNumber: core.config.WHATSAPP_DISPLAY_PHONE_NUMBER,
    accessToken: core.config.WHATSAPP_ACCESS_TOKEN,
    name: core.config.BUSINESS_NAME,
  });
  for (const t of await core.prisma.tenant.findMany({ select: { id: true } })) await installBuiltins(core, t.id);
  return tenant;
}

import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { isDevMode, type Config } from "../config/env";
import { InboundHandler } from "../conversation/inbound-handler";
import { Router, greetingHandler, type MessageHandler } from "../conversation/router";
import { createPrisma, type PrismaClient } from "../db/prisma";
import { createIngest, type Ingest } from "../ingest/ingest";
import { Mailboxes } from "../ingest/mailbox";
import { Outbox } from "../messaging/outbox";
import { createLogger, type Logger } from "../observability/logger";
import { outageLog } from "../observability/outage-log";
import { createMetrics, type Metrics } from "../observability/metrics"; // ops: metrics
import { createWorkerHealth, type WorkerHealth } from "../observability/worker-health"; // ops: worker heartbeats, queue lag
import { QUEUES, type EncryptedJob, type EventJob, type OtpJob, type OutboundJob } from "../queues/jobs";
import { EventPublisher } from "../events/publisher";
import { OtpDeliveryPlanner } from "../otp/delivery.planner";
import { Limits } from "../otp/limits";
import { asButtonReply, LOGIN_NOT_ME_BUTTON, otpChatHandler } from "../otp/otp-chat.handler";
import { OtpEvents } from "../otp/otp-events";
import { VerificationService } from "../otp/verification.service";
import { createCodeSenders, type CodeSenders } from "../providers";
import { ApiKeys } from "../tenants/api-keys";
import { FlowHandler } from "../flows/flow.handler";
import { FlowCalls } from "../flows/flow-call";
import { FlowStore } from "../flows/flow-store";
import { installBuiltinFlows, loadBuiltinFlows } from "../flows/builtin";
import { PinService } from "../pin/pin.service";
import { mergeActions, type ActionRegistry } from "../journeys/actions";
import { createContactActions } from "../journeys/contacts.actions";
import { createPinActions } from "../journeys/pin.actions";
import { createEmailSender, type EmailSender } from "../providers/email";
import { systemMessageHandler } from "../journeys/system-messages";
import { producerConnection } from "../queues/redis";
import { BackgroundTasks } from "../shared/background";
import { systemClock, type Clock } from "../shared/clock";
import { Keyring } from "../shared/crypto";
import { TenantDirectory } from "../tenants/tenant-directory";
import { AccountUpdates } from "../tenants/account-updates";
import { CloudApiClient } from "../providers/whatsapp/cloud-api.client";
import { MessagingLimits } from "../limits/messaging-limit";
import { DailyCodes } from "../limits/daily-codes";
import { registerMessagingLimitGauges } from "../observability/metrics";
import { TemplateHealth, templateStatusHandler } from "../tenants/templates";
import { FallbackBudget } from "../otp/fallback-budget";
import { StepUp } from "../tenants/step-up";
import { WebhookSecrets } from "../ingest/webhook-secrets";

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
  accountUpdates: AccountUpdates;
  /** Meta's messaging-limit tier, the 24-hour use and its warning (docs/limits.md) */
  messagingLimits: MessagingLimits;
  /** the per-tenant daily cap on codes (limits.codesPerDay) */
  dailyCodes: DailyCodes;
  queues: {
    inbound: Queue<EncryptedJob>;
    statuses: Queue<EncryptedJob>;
    outbound: Queue<OutboundJob>;
    events: Queue<EventJob>;
    otp: Queue<OtpJob>;
    /** flows' http steps, called outside any transaction (src/flows/flow-call.ts) */
    flowCalls: Queue<EncryptedJob>;
  };
  mailboxes: Mailboxes;
  outbox: Outbox;
  ingest: Ingest;
  router: Router;
  inboundHandler: InboundHandler;
  limits: Limits;
  apiKeys: ApiKeys;
  /** fire-and-forget work; `close()` drains it before closing PostgreSQL (src/shared/background.ts) */
  background: BackgroundTasks;
  eventPublisher: EventPublisher;
  senders: CodeSenders;
  planner: OtpDeliveryPlanner;
  /** the daily spend cap on SMS/voice codes (docs/templates.md) */
  fallbackBudget: FallbackBudget;
  verifications: VerificationService;
  stepUp: StepUp;
  webhookSecrets: WebhookSecrets;
  flows: FlowStore;
  flowHandler: FlowHandler;
  pins: PinService;
  email: EmailSender | undefined;
  /** ops: this process's Prometheus registry and instruments (docs/metrics.md) */
  metrics: Metrics;
  /** ops: live workers (heartbeats) and queue lag, read from Redis (GET /admin/workers, docs/deploy.md) */
  workerHealth: WorkerHealth;
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
  // ops: an outage is one warning (and one every 30 s), not one per reconnect attempt and queue
  const outage = outageLog(logger);
  redis.on("error", (err) => outage.error("redis", err));
  redis.on("ready", () => outage.back("redis"));
  const keyring = Keyring.fromBase64(config.SECRETS_KEY, config.SECRETS_KEY_PREVIOUS ?? "");
  const tenants = new TenantDirectory(prisma, keyring, { clock });
  tenants.onWabaMismatch = (t, wabaId) => logger.warn({ tenantId: t.id, configured: t.wabaId, seen: wabaId }, "webhook names a WABA id the tenant cannot take (it has another, or it signs its own webhooks and another tenant has that one)");
  // account-level webhook updates (template statuses, tier changes): handlers are registered by their owners below
  const accountUpdates = new AccountUpdates(tenants, logger.child({ component: "account-updates" }));
  // Meta's messaging limit (docs/limits.md): tier read from the Graph API and pushed by phone_number_quality_update
  const graphClient = new CloudApiClient({ baseUrl: config.GRAPH_API_BASE_URL, version: config.GRAPH_API_VERSION, timeoutMs: config.OUTBOUND_TIMEOUT_MS, maxSockets: 8 });
  const messagingLimits = new MessagingLimits({
    prisma, redis, prefix: config.QUEUE_PREFIX, clock, logger: logger.child({ component: "messaging-limit" }), client: graphClient,
    accessToken: (tenantId) => tenants.accessToken(tenantId),
    dispatch: (ids) => eventPublisher.dispatch(ids),
  });
  accountUpdates.on("phone_number_quality_update", messagingLimits.onQualityUpdate);
  const queueOpts = { connection: redis, prefix: config.QUEUE_PREFIX };
  const queues = {
    inbound: new Queue<EncryptedJob>(QUEUES.inbound, queueOpts),
    statuses: new Queue<EncryptedJob>(QUEUES.statuses, queueOpts),
    outbound: new Queue<OutboundJob>(QUEUES.outbound, queueOpts),
    events: new Queue<EventJob>(QUEUES.events, queueOpts),
    otp: new Queue<OtpJob>(QUEUES.otp, queueOpts),
    flowCalls: new Queue<EncryptedJob>(QUEUES.flowCalls, queueOpts),
  };
  for (const q of Object.values(queues)) q.on("error", (err) => outage.error("queue", err, { queue: q.name }));
  const mailboxes = new Mailboxes(redis, config.QUEUE_PREFIX, keyring);
  const outbox = new Outbox(prisma, queues.outbound, logger, config.OUTBOUND_MAX_ATTEMPTS);
  const webhookSecrets = new WebhookSecrets(config.WHATSAPP_APP_SECRET, async () => {
    // every tenant with its own secret or a WABA id: which secret may speak for which WABA depends on all of them
    const rows = await prisma.tenant.findMany({ where: { OR: [{ appSecretEnc: { not: null } }, { wabaId: { not: null } }] }, select: { phoneNumberId: true, wabaId: true, appSecretEnc: true } });
    return rows.map((r) => ({ phoneNumberId: r.phoneNumberId, wabaId: r.wabaId, appSecret: r.appSecretEnc ? keyring.decryptString("tenant-token", r.appSecretEnc) : null }));
  }, { clock });
  const ingest = createIngest({ appSecret: config.WHATSAPP_APP_SECRET, secrets: webhookSecrets, keyring, redis, mailboxes, inboundQueue: queues.inbound, statusQueue: queues.statuses, logger });
  const limits = new Limits(redis, config.QUEUE_PREFIX);
  const background = new BackgroundTasks();
  const apiKeys = new ApiKeys(prisma, keyring, background, clock);
  const eventPublisher = new EventPublisher(prisma, queues.events, logger, { clock });
  const senders = createCodeSenders(config, logger);
  const otpEvents = new OtpEvents();
  // template statuses (message_template_status_update) and the paid-channel budget: docs/templates.md
  const templateHealth = new TemplateHealth(prisma, logger, undefined, background, clock);
  void background.run(() => templateHealth.reload());
  const fallbackBudget = new FallbackBudget({ redis, prefix: config.QUEUE_PREFIX, prisma, clock, logger, eventDispatch: (ids) => eventPublisher.dispatch(ids) });
  const planner = new OtpDeliveryPlanner({
    prisma, keyring, outbox, clock, logger, senders, config, templates: templateHealth, budget: fallbackBudget,
    otpQueue: queues.otp,
    events: otpEvents,
    eventDispatch: (ids) => eventPublisher.dispatch(ids),
  });
  const dailyCodes = new DailyCodes({ redis, prefix: config.QUEUE_PREFIX, prisma, clock, logger, dispatch: (ids) => eventPublisher.dispatch(ids) });
  const pins = new PinService({ clock, logger });
  // a right code of a purpose in pin.requireFor also needs the contact's PIN
  const verifications = new VerificationService({ prisma, keyring, limits, clock, logger, delivery: planner, events: otpEvents, dailyCodes, pins });
  // step-up codes have their own path (fixed attempts and limits, no test numbers): only the outbound sending is shared
  const stepUp = new StepUp({ prisma, keyring, delivery: planner, limits, clock, logger: logger.child({ component: "step-up" }) });
  const flows = FlowStore.shared(prisma, clock);
  const email = createEmailSender(config, logger);
  const actions = mergeActions(
    createContactActions({ prisma, eventPublisher, logger: logger.child({ component: "contact-actions" }), verifications, background }),
    createPinActions({ prisma, pins, keyring, clock, logger, email, config }),
    ...(opts.actions ?? []),
  );
  const flowHandler = new FlowHandler({ prisma, keyring, flows, verifications, pins, logger, actions, dev: isDevMode(config), calls: new FlowCalls(queues.flowCalls, keyring) });
  // codes typed in chat first (unless a flow step waits for input), then flows, then the caller's, then a greeting
  // Meta's system notices (number changed) move the contact before anything can answer it
  const router = new Router([
    systemMessageHandler({ eventPublisher, logger }),
    otpChatHandler({
      verifications,
      delivery: planner,
      // a typed "not me" after a login notice is its "This wasn't me" (flows/login-notice.yaml; late: recover)
      loginNotMe: (ctx) => flowHandler.handle({ ...ctx, message: asButtonReply(ctx.message, LOGIN_NOT_ME_BUTTON) }),
    }),
    flowHandler,
    ...(opts.handlers ?? []),
    greetingHandler,
  ]);
  const inboundHandler = new InboundHandler({ prisma, tenants, router, outbox, clock, logger });
  // ops: one Prometheus registry per process; queue depths and DB-derived gauges are read at scrape time
  const workerHealth = createWorkerHealth({ redis, prefix: config.QUEUE_PREFIX, queues });
  const metrics = createMetrics({ logger, queues, db: prisma, defaultMetrics: opts.defaultMetrics, workerHealth });
  registerMessagingLimitGauges(metrics.registry, () => messagingLimits.metricsSnapshot(), logger);
  accountUpdates.on("message_template_status_update", templateStatusHandler({
    prisma, config, logger, health: templateHealth, registry: metrics.registry, eventDispatch: (ids) => eventPublisher.dispatch(ids), available: (c) => planner.available(c),
  }));

  return {
    config, logger, clock, prisma, redis, keyring, tenants, accountUpdates, queues, mailboxes, outbox, ingest, router, inboundHandler,
    limits, apiKeys, background, eventPublisher, senders, planner, fallbackBudget, verifications, stepUp, webhookSecrets, flows, flowHandler, pins, email, metrics, workerHealth,
    messagingLimits, dailyCodes,
    async close() {
      senders.close();
      graphClient.close();
      email?.close?.();
      if (redis.status !== "ready") await disconnectFirst(redis);
      // a shutdown never hangs: each step gets CLOSE_STEP_MS, then is named in a warning and left behind (the
      // process exits after close(); a pool waiting for a connection that is never released would block it)
      // work started off the request path finishes first: it may still use PostgreSQL and Redis (a Prisma transaction
      // open at $disconnect keeps its connection, and the pool would never end)
      await bounded("background", background.drain(), logger);
      await bounded("queues", Promise.allSettled(Object.values(queues).map((q) => q.close())), logger);
      await Promise.allSettled([
        bounded("postgres", prisma.$disconnect(), logger),
        bounded("redis", redis.status === "ready" ? redis.quit() : Promise.resolve(redis.disconnect()), logger),
      ]);
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

/**
 * A producer connection that is not up is ended before the queues close. Each queue's connection waits for the
 * shared client to be ready and reports its failure as an 'error' event; once a queue is closed nobody listens, and
 * that event would become an unhandled rejection (a crash exit on a SIGTERM during a Redis outage). Ending the client
 * first lets those failures reach the queues' listeners while they are still there.
 */
async function disconnectFirst(redis: Redis): Promise<void> {
  const ended = new Promise<void>((resolve) => {
    if (redis.status === "end") return resolve();
    redis.once("end", () => resolve());
  });
  redis.disconnect();
  // a client between attempts (status "reconnecting") has no socket to end and never emits "end": nothing waits on it
  await Promise.race([ended, new Promise((r) => setTimeout(r, 200).unref())]);
  await new Promise((r) => setImmediate(r));
}

const CLOSE_STEP_MS = 10_000;

async function bounded(step: string, work: Promise<unknown>, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), CLOSE_STEP_MS)));
  const outcome = await Promise.race([work.then(() => "done" as const, () => "done" as const), late]);
  clearTimeout(timer);
  if (outcome === "late") logger.warn({ step, ms: CLOSE_STEP_MS }, "close: step not finished in time, left behind");
}

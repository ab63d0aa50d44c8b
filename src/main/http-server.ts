import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Router, type RequestHandler } from "express";
import { adminRoutes } from "../http/admin.routes";
import { limitsRoutes } from "../http/limits.routes";
import { createHttpApp } from "../http/app";
import { withLeanWebhook } from "../http/lean-webhook";
import { authFailures, bearerAuth, keyAuthenticator } from "../http/auth";
import { flowsRoutes } from "../http/flows.routes";
import { conversationRoutes } from "../http/conversation.routes";
import { contactsRoutes } from "../http/contacts.routes";
import { pinResetRoutes } from "../http/pin-reset.routes";
import { startFlowFor } from "../conversation/start-flow";
import { metricsRoutes } from "../http/metrics.routes"; // ops
import { workersRoutes } from "../http/workers.routes"; // ops
import { openApiRoutes } from "../http/openapi.routes";
import { providerStatusRoutes } from "../http/provider-status.routes";
import { verifyRoutes } from "../http/verify.routes";
import { templatesRoutes } from "../http/templates.routes";
import { consoleRoutes } from "../web/console/console.routes";
import { installBuiltins, type Core } from "./core";
import { isDevMode } from "../config/env";
import { AccessLog } from "../observability/access-log";
import { STARTUP_STEPS, type Startup } from "./startup";

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Starts the API (webhook, health, and whatever is mounted) on the configured port (0 = ephemeral). */
export async function startHttp(
  core: Core,
  opts: {
    port?: number;
    host?: string;
    mount?: RequestHandler[];
    onTenantCreated?: Parameters<typeof adminRoutes>[0]["onTenantCreated"];
    /** false: every webhook through the Express route (the benchmark's before/after); default: the lean handler */
    leanWebhook?: boolean;
    /** the process's start-up steps (src/main/startup.ts): /readyz is 503 until they are done */
    startup?: Pick<Startup, "notReady">;
  } = {},
): Promise<RunningServer> {
  // ops: one access line per request, aggregated above ACCESS_LOG_MAX_PER_SECOND (src/observability/access-log.ts)
  const accessLog = new AccessLog(core.logger, core.config.ACCESS_LOG_MAX_PER_SECOND);
  const app = createHttpApp({
    accessLog,
    // ops: GET /metrics (admin key) before the APIs
    mount: [metricsRoutes({ metrics: core.metrics, adminApiKey: core.config.ADMIN_API_KEY, authFailed: authFailures(core.limits) }), ...apiRouters(core, opts.onTenantCreated), ...(opts.mount ?? [])],
    metrics: core.metrics, // ops: webhook outcome counter
    ingest: core.ingest,
    verifyToken: core.config.WHATSAPP_VERIFY_TOKEN,
    bodyLimitBytes: core.config.WEBHOOK_BODY_LIMIT_BYTES,
    logger: core.logger,
    readiness: {
      postgres: async () => {
        await core.prisma.$queryRaw`SELECT 1`;
        // PostgreSQL answers, but the start-up has not written the default tenant yet (it retries by itself)
        const pending = opts.startup?.notReady([STARTUP_STEPS.tenant]);
        if (pending) throw new Error(pending);
      },
      redis: async () => {
        await core.redis.ping();
        // Redis answers, but this process's workers are not connected yet
        const pending = opts.startup?.notReady([STARTUP_STEPS.workers]);
        if (pending) throw new Error(pending);
      },
    },
  });
  // POST /webhook is served by the lean handler ahead of Express (same ingest, same answers); the rest by Express
  const listener = opts.leanWebhook === false
    ? app
    : withLeanWebhook(app, { ingest: core.ingest, bodyLimitBytes: core.config.WEBHOOK_BODY_LIMIT_BYTES, logger: core.logger, metrics: core.metrics, accessLog });
  const server = createServer(listener);
  // HOST (config): `npm run demo` defaults it to loopback; production listens on every interface unless it is set
  server.listen(opts.port ?? core.config.PORT, opts.host ?? core.config.HOST ?? "0.0.0.0");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  // Meta delivers concurrently over long-lived connections: keep them open longer than a typical LB idle timeout.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    server,
    url,
    close: () =>
      new Promise<void>((resolve) => {
        // Stop listening, and close keep-alive connections as soon as they are idle: one whose request is in flight
        // becomes idle only after its answer, and server.close() would then wait for its keep-alive timeout (65 s)
        // before the workers are even told to stop (found by test/chaos/sigterm.test.ts). A request still running
        // after 10 s is cut: Meta redelivers what was not answered 200.
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        const cut = setTimeout(() => server.closeAllConnections(), 10_000);
        server.close(() => {
          clearInterval(idle);
          clearTimeout(cut);
          accessLog.flush();
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/** The business-facing APIs: Verify (/v1), admin (/admin), the OpenAPI document, provider callbacks. */
export function apiRouters(core: Core, onTenantCreated?: Parameters<typeof adminRoutes>[0]["onTenantCreated"]): RequestHandler[] {
  const { config } = core;
  // one key check for the Bearer APIs and the console's sign-in form (same throttling of failures)
  const keyAuth = keyAuthenticator({
    apiKeys: core.apiKeys,
    adminApiKey: config.ADMIN_API_KEY,
    limits: core.limits,
    defaultTenantId: async () => {
      const t = await core.tenants.byPhoneNumberId(config.WHATSAPP_PHONE_NUMBER_ID);
      if (!t) throw new Error("the default tenant does not exist yet");
      return t.id;
    },
  });
  const auth = bearerAuth(keyAuth);
  const router = Router();
  router.use(openApiRoutes());
  // the PIN reset link of an email (no API key: the single-use token is the secret)
  router.use(pinResetRoutes({ prisma: core.prisma, pins: core.pins, keyring: core.keyring, clock: core.clock, logger: core.logger, publicBaseUrl: config.PUBLIC_BASE_URL }));
  const conversations = conversationRoutes({ prisma: core.prisma, flows: core.flows, flowHandler: core.flowHandler, outbox: core.outbox, clock: core.clock, tenants: core.tenants });
  const contacts = contactsRoutes({
    prisma: core.prisma,
    eventPublisher: core.eventPublisher,
    clock: core.clock,
    logger: core.logger,
    // the business asks for a fresh verification: the built-in `reverify` journey starts for that number
    startFlow: async ({ tenantId, phoneE164, reason }) => {
      const t = await core.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
      const outcome = await startFlowFor(core, { ...t, settings: (t.settings ?? {}) as Record<string, unknown> }, {
        phoneE164,
        flow: "reverify",
        variables: reason ? { reason } : {},
        startedBy: "business:reverify",
      });
      // the route reports flowStarted: false when this throws (no live reverify flow, or a person has the chat)
      if (outcome.kind !== "started") throw new Error(`reverify flow not started: ${outcome.kind}`);
      return outcome;
    },
  });
  router.use("/v1", auth, verifyRoutes({ verifications: core.verifications, prisma: core.prisma }), conversations.v1, contacts.v1);
  // flows first: the admin router's own JSON parser (256 kB) must not take the flows routes' bodies (1 MB, YAML)
  const tenantCreated: typeof onTenantCreated = (t) => {
    onTenantCreated?.(t);
    // the tenant is looked up once; then, independently, it gets the built-in flows and its messaging-limit tier is
    // read from Meta (docs/limits.md)
    void core.background.run(async () => {
      const row = await core.tenants.byPhoneNumberId(t.phoneNumberId).catch((err: Error) => void core.logger.error({ err: err.message }, "new tenant not found: built-in flows not installed"));
      if (!row) return;
      await Promise.all([
        installBuiltins(core, row.id).catch((err: Error) => core.logger.error({ err: err.message }, "built-in flows not installed")),
        core.messagingLimits.refresh(row.id).catch((err: Error) => core.logger.warn({ err: err.message }, "messaging-limit tier not read")),
      ]);
    });
  };
  const adminApi = Router().use(
    flowsRoutes({ prisma: core.prisma, flows: core.flows, stepUp: core.stepUp }),
    conversations.admin,
    templatesRoutes({ prisma: core.prisma, config, budget: core.fallbackBudget }), // template statuses, paid-channel spend
    limitsRoutes({ prisma: core.prisma, messagingLimits: core.messagingLimits }), // messaging limit (docs/limits.md)
    adminRoutes({ prisma: core.prisma, keyring: core.keyring, apiKeys: core.apiKeys, tenants: core.tenants, eventPublisher: core.eventPublisher, stepUp: core.stepUp, webhookSecrets: core.webhookSecrets, onTenantCreated: tenantCreated, dev: isDevMode(core.config) }),
  );
  router.use("/admin", auth, workersRoutes({ health: core.workerHealth }), adminApi); // ops: GET /admin/workers
  // the business console (/console): the same admin API behind a signed-in session instead of a Bearer key
  router.use(consoleRoutes({ prisma: core.prisma, redis: core.redis, queues: core.queues, keyPrefix: config.QUEUE_PREFIX, logger: core.logger, keyAuth, adminApi,
    adminApiKey: config.ADMIN_API_KEY, keyring: core.keyring, production: config.NODE_ENV === "production" }));
  if (config.TWILIO_AUTH_TOKEN && config.PUBLIC_BASE_URL) {
    router.use(
      providerStatusRoutes({
        authToken: config.TWILIO_AUTH_TOKEN,
        publicBaseUrl: config.PUBLIC_BASE_URL,
        onStatus: (u) => core.planner.onProviderStatus(u),
        logger: core.logger,
      }),
    );
  }
  return [router];
}

import { createHttpApp } from "../../src/http/app";
import type { Core } from "../../src/main/core";

/** The HTTP app with just the webhook, health and metrics of a core: what the ingest tests post to. */
export const webhookApp = (c: Core) =>
  createHttpApp({
    ingest: c.ingest,
    verifyToken: c.config.WHATSAPP_VERIFY_TOKEN,
    bodyLimitBytes: c.config.WEBHOOK_BODY_LIMIT_BYTES,
    logger: c.logger,
    metrics: c.metrics,
    readiness: { postgres: async () => void (await c.prisma.$queryRaw`SELECT 1`), redis: async () => void (await c.redis.ping()) },
  });

import express, { type Express, type RequestHandler } from "express";
import type { Ingest } from "../ingest/ingest";
import type { AccessLog } from "../observability/access-log";
import type { Logger } from "../observability/logger";
import type { Metrics } from "../observability/metrics"; // ops
import { requestId } from "../observability/request-id"; // ops
import { errorHandler, notFound } from "./errors";
import { healthRoutes, type ReadinessCheck } from "./health.routes";
import { webhookRoutes } from "./webhook.routes";

export interface HttpAppDeps {
  ingest: Ingest;
  verifyToken: string;
  bodyLimitBytes: number;
  readiness: Record<string, ReadinessCheck>;
  logger: Logger;
  /** extra routers mounted before the 404 handler (the sandbox in demo, later the APIs) */
  mount?: RequestHandler[];
  /** ops: counts webhook outcomes (wabot_webhook_requests_total) */
  metrics?: Pick<Metrics, "webhookRequests">;
  /** one access line per request (method, route pattern, status, ms), aggregated above its rate */
  accessLog?: AccessLog;
}

export function createHttpApp(deps: HttpAppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", "loopback");
  app.use(requestId(deps.logger)); // ops: first, so every answer carries X-Request-Id
  if (deps.accessLog) app.use(deps.accessLog.middleware()); // ops: then the access line, with that id
  app.use(webhookRoutes({ ingest: deps.ingest, verifyToken: deps.verifyToken, bodyLimitBytes: deps.bodyLimitBytes, logger: deps.logger, metrics: deps.metrics }));
  app.use(healthRoutes(deps.readiness));
  for (const m of deps.mount ?? []) app.use(m);
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}

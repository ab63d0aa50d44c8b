import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { Router } from "express";
import type { Metrics } from "../observability/metrics";
import { safeEqual } from "../shared/crypto";
import { sendError } from "./errors";

export interface MetricsRoutesDeps {
  metrics: Pick<Metrics, "render">;
  /** the deployment's ADMIN_API_KEY: a scrape must bear it (`Authorization: Bearer <key>`) */
  adminApiKey: string;
  /** counts a wrong key in the same windows as the APIs (authFailures in auth.ts): Retry-After when over, else null */
  authFailed: (token: string, ip: string) => Promise<number | null>;
}

/**
 * `GET /metrics`: the Prometheus text exposition of this process's registry (docs/metrics.md), only for a request
 * bearing the admin key (compared in constant time); anything else is `401` JSON. Prometheus sends the key with
 * `authorization: { credentials_file: … }` in its scrape config.
 */
export function metricsRoutes(deps: MetricsRoutesDeps): Router {
  const router = Router();
  router.get("/metrics", async (req, res, next) => {
    try {
      const token = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
      if (!token || !safeEqual(token, deps.adminApiKey)) {
        // a wrong key here is a guess at ADMIN_API_KEY like any other: the same throttling as the APIs
        const retryAfter = token ? await deps.authFailed(token, req.ip ?? "unknown") : null;
        if (retryAfter !== null) {
          sendError(res, 429, "rate_limited", "Too many wrong keys from this address", undefined, { "Retry-After": String(retryAfter) });
          return;
        }
        sendError(res, 401, "unauthorized", "Authorization: Bearer <ADMIN_API_KEY> is required", undefined, { "WWW-Authenticate": 'Bearer realm="metrics"' });
        return;
      }
      const { contentType, body } = await deps.metrics.render();
      res.status(200).setHeader("Content-Type", contentType).setHeader("Cache-Control", "no-store").send(body);
    } catch (err) {
      next(err);
    }
  });
  return router;
}

/**
 * A server with `/metrics` alone (and `/healthz`), for a process that runs workers only (`npm run start:worker`):
 * its job latency histogram lives in that process. Started by src/main/worker.ts when WORKER_METRICS_PORT is set.
 */
export async function startMetricsServer(deps: MetricsRoutesDeps & { port: number; host?: string }): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.use(metricsRoutes(deps));
  app.use((_req, res) => sendError(res, 404, "not_found", "Only /metrics and /healthz are served here"));
  const server = app.listen(deps.port, deps.host ?? "0.0.0.0");
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

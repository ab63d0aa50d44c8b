import { Router } from "express";
import type { WorkerHealth } from "../observability/worker-health";
import { requireSuperAdmin } from "./auth";
import { ApiError } from "./errors";

/**
 * `GET /admin/workers` (mounted under /admin, after authentication): the worker processes alive (their last
 * heartbeat) and, per queue, waiting / active / delayed / failed jobs and the lag (age of the oldest waiting job,
 * seconds). `200` when at least one worker is alive, else `503` with the same body, so a monitor can alert on the
 * status alone. Deployment-wide (hosts, pids, every tenant's queues): the ADMIN_API_KEY only, like /metrics.
 * /readyz stays what a load balancer needs (PostgreSQL and Redis); this is for monitoring.
 */
export function workersRoutes(deps: { health: Pick<WorkerHealth, "read"> }): Router {
  const router = Router();
  router.get("/workers", requireSuperAdmin(), async (_req, res, next) => {
    try {
      let report;
      try {
        report = await deps.health.read();
      } catch {
        throw new ApiError(503, "unavailable", "Redis did not answer; worker heartbeats cannot be read", undefined, { "Retry-After": "5" });
      }
      res.setHeader("Cache-Control", "no-store");
      res.status(report.alive > 0 ? 200 : 503).json(report);
    } catch (err) {
      next(err);
    }
  });
  return router;
}

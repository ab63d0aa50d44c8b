import { loadConfig } from "../config/env";
import { authFailures } from "../http/auth";
import { startMetricsServer } from "../http/metrics.routes";
import { buildCore, ensureDefaultTenant } from "./core";
import { configOrExit, onShutdown } from "./lifecycle";
import { startWorkers } from "./workers";

/** `npm run start:worker`: queue workers only; run as many as the load needs. */
async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  await ensureDefaultTenant(core);
  const workers = await startWorkers(core);
  core.logger.info({ workers: workers.workers.map((w) => w.name), workerId: workers.heartbeat.id }, "workers started");
  // ops: /metrics (admin key) and /healthz for Prometheus and probes, when WORKER_METRICS_PORT is set
  const metrics =
    config.WORKER_METRICS_PORT === undefined
      ? null
      : await startMetricsServer({ metrics: core.metrics, adminApiKey: config.ADMIN_API_KEY, authFailed: authFailures(core.limits), port: config.WORKER_METRICS_PORT, host: config.HOST });
  if (metrics) core.logger.info({ url: metrics.url }, "worker metrics served");
  // the metrics stay up while the jobs in flight finish
  onShutdown(core.logger, [workers.close, ...(metrics ? [metrics.close] : []), core.close]);
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

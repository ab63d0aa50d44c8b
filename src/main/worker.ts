import { loadConfig } from "../config/env";
import { authFailures } from "../http/auth";
import { startMetricsServer } from "../http/metrics.routes";
import { buildCore, ensureDefaultTenant } from "./core";
import { configOrExit, onShutdown } from "./lifecycle";
import { Startup, STARTUP_STEPS } from "./startup";
import { startWorkers, type RunningWorkers } from "./workers";

/**
 * `npm run start:worker`: queue workers only; run as many as the load needs. It stays up while PostgreSQL or Redis
 * do not answer: the default tenant is written once PostgreSQL does, then the workers start taking jobs once Redis
 * does (src/main/startup.ts); `/healthz` on WORKER_METRICS_PORT answers meanwhile.
 */
async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  const startup = new Startup(core.logger);
  // ops: /metrics (admin key) and /healthz for Prometheus and probes, when WORKER_METRICS_PORT is set
  const metrics =
    config.WORKER_METRICS_PORT === undefined
      ? null
      : await startMetricsServer({ metrics: core.metrics, adminApiKey: config.ADMIN_API_KEY, authFailed: authFailures(core.limits), port: config.WORKER_METRICS_PORT, host: config.HOST });
  if (metrics) core.logger.info({ url: metrics.url }, "worker metrics served");
  let workers: RunningWorkers | null = null;
  const closeWorkers = async () => {
    await workers?.close();
  };
  // the metrics stay up while the jobs in flight finish
  onShutdown(core.logger, [closeWorkers, ...(metrics ? [metrics.close] : []), core.close], { deadlineMs: config.SHUTDOWN_GRACE_MS, onSignal: () => startup.stop() });
  const tenant = await startup.step(STARTUP_STEPS.tenant, () => ensureDefaultTenant(core));
  if (!tenant || startup.isStopped) return;
  workers = await startWorkers(core, { waitReady: false });
  await startup.track(STARTUP_STEPS.workers, workers.ready);
  if (startup.isStopped) return;
  core.logger.info({ workers: workers.workers.map((w) => w.name), workerId: workers.heartbeat.id }, "workers started");
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import { loadConfig } from "../config/env";
import { buildCore, ensureDefaultTenant } from "./core";
import { startHttp } from "./http-server";
import { configOrExit, onShutdown } from "./lifecycle";
import { Startup, STARTUP_STEPS } from "./startup";
import { startWorkers, type RunningWorkers } from "./workers";

/**
 * `npm start`: API and workers in one process. It listens before PostgreSQL or Redis answer (`/healthz` 200,
 * `/readyz` 503 until they do and the start-up steps are done); the default tenant is written, then the workers
 * start, each as soon as its backing service answers (src/main/startup.ts).
 */
async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  const startup = new Startup(core.logger);
  let workers: RunningWorkers | null = null;
  const http = await startHttp(core, { startup });
  core.logger.info({ url: http.url }, "API listening");
  const closeWorkers = async () => {
    await workers?.close();
  };
  onShutdown(core.logger, [http.close, closeWorkers, core.close], { deadlineMs: config.SHUTDOWN_GRACE_MS, onSignal: () => startup.stop() });
  const tenant = await startup.step(STARTUP_STEPS.tenant, () => ensureDefaultTenant(core));
  if (!tenant || startup.isStopped) return;
  workers = await startWorkers(core, { waitReady: false });
  await startup.track(STARTUP_STEPS.workers, workers.ready);
  if (startup.isStopped) return;
  core.logger.info({ url: http.url }, "API and workers started");
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

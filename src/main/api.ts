import { loadConfig } from "../config/env";
import { buildCore, ensureDefaultTenant } from "./core";
import { startHttp } from "./http-server";
import { configOrExit, onShutdown } from "./lifecycle";
import { Startup, STARTUP_STEPS } from "./startup";

/**
 * `npm run start:api`: the HTTP side only (webhook, APIs, health); scale it apart from the workers. It listens
 * before PostgreSQL or Redis answer (`/healthz` 200, `/readyz` 503 until the default tenant is written).
 */
async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  const startup = new Startup(core.logger);
  const http = await startHttp(core, { startup });
  core.logger.info({ url: http.url }, "API listening");
  onShutdown(core.logger, [http.close, core.close], { deadlineMs: config.SHUTDOWN_GRACE_MS, onSignal: () => startup.stop() });
  const tenant = await startup.step(STARTUP_STEPS.tenant, () => ensureDefaultTenant(core));
  if (!tenant || startup.isStopped) return;
  core.logger.info({ url: http.url }, "API started");
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

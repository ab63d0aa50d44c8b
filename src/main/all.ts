import { loadConfig } from "../config/env";
import { buildCore, ensureDefaultTenant } from "./core";
import { startHttp } from "./http-server";
import { configOrExit, onShutdown } from "./lifecycle";
import { startWorkers } from "./workers";

/** `npm start`: API and workers in one process. */
async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  await ensureDefaultTenant(core);
  const workers = await startWorkers(core);
  const http = await startHttp(core);
  core.logger.info({ url: http.url }, "API and workers started");
  onShutdown(core.logger, [http.close, workers.close, core.close]);
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import { loadConfig } from "../config/env";
import { buildCore, ensureDefaultTenant } from "./core";
import { configOrExit, onShutdown } from "./lifecycle";
import { startWorkers } from "./workers";

/** `npm run start:worker`: queue workers only; run as many as the load needs. */
async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  await ensureDefaultTenant(core);
  const workers = await startWorkers(core);
  core.logger.info({ workers: workers.workers.map((w) => w.name) }, "workers started");
  onShutdown(core.logger, [workers.close, core.close]);
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

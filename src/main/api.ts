import { loadConfig } from "../config/env";
import { buildCore, ensureDefaultTenant } from "./core";
import { startHttp } from "./http-server";
import { configOrExit, onShutdown } from "./lifecycle";

/** `npm run start:api`: the HTTP side only (webhook, APIs, health); scale it apart from the workers. */
async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  await ensureDefaultTenant(core);
  const http = await startHttp(core);
  core.logger.info({ url: http.url }, "API started");
  onShutdown(core.logger, [http.close, core.close]);
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

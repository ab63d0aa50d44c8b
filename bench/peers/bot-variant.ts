/**
 * The bot's API process (as `npm run start:api`, src/main/api.ts) with one of the webhook optimisations turned
 * back off, for the benchmark's before/after in the same run. Never used in production.
 *
 *   BENCH_WEBHOOK=express   every webhook through the Express route (default: the lean handler ahead of Express)
 *   BENCH_BATCH=off         each POST writes its own mailbox MULTI and addBulk calls (default: group commit)
 */
import { loadConfig } from "../../src/config/env";
import { createIngest } from "../../src/ingest/ingest";
import { buildCore, ensureDefaultTenant } from "../../src/main/core";
import { startHttp } from "../../src/main/http-server";
import { configOrExit, onShutdown } from "../../src/main/lifecycle";

async function main(): Promise<void> {
  const config = configOrExit(() => loadConfig());
  const core = buildCore(config);
  if (process.env.BENCH_BATCH === "off") {
    core.ingest = createIngest({
      appSecret: config.WHATSAPP_APP_SECRET, secrets: core.webhookSecrets, keyring: core.keyring, redis: core.redis, mailboxes: core.mailboxes,
      inboundQueue: core.queues.inbound, statusQueue: core.queues.statuses, logger: core.logger, batch: false,
    });
  }
  await ensureDefaultTenant(core);
  const http = await startHttp(core, { leanWebhook: process.env.BENCH_WEBHOOK !== "express" });
  onShutdown(core.logger, [http.close, core.close]);
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import { DEMO_DEFAULTS } from "../config/demo-defaults";
import { loadConfig } from "../config/env";
import { ensureDatabase, migrateDeploy } from "../db/migrate";
import { createLogger } from "../observability/logger";
import { createSandbox } from "../sandbox/sandbox";
import { buildCore, ensureDefaultTenant } from "./core";
import { startHttp } from "./http-server";
import { configOrExit, onShutdown } from "./lifecycle";
import { startWorkers } from "./workers";

/**
 * `npm run demo`: everything on one port with local defaults: migrations, API, workers and the Cloud API
 * sandbox standing in for Meta (the bot's GRAPH_API_BASE_URL points at itself). Prints the chat and console URLs.
 */
async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? DEMO_DEFAULTS.PORT);
  const config = configOrExit(() => loadConfig(process.env, { ...DEMO_DEFAULTS, GRAPH_API_BASE_URL: `http://127.0.0.1:${port}` }));
  const logger = createLogger({ level: config.LOG_LEVEL, pretty: true });

  await ensureDatabase(config.DATABASE_URL);
  migrateDeploy(config.DATABASE_URL);

  const sandbox = createSandbox({
    appSecret: config.WHATSAPP_APP_SECRET,
    webhookUrl: `http://127.0.0.1:${port}/webhook`,
    phoneNumbers: [
      { phoneNumberId: config.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: config.WHATSAPP_DISPLAY_PHONE_NUMBER, accessToken: config.WHATSAPP_ACCESS_TOKEN },
    ],
    logger: logger.child({ component: "sandbox" }),
  });
  const core = buildCore(config, { logger });
  await ensureDefaultTenant(core);
  const workers = await startWorkers(core);
  // the sandbox plays Meta for every tenant: those already in the database and those created from now on
  for (const t of await core.prisma.tenant.findMany()) {
    try {
      sandbox.addPhoneNumber({ phoneNumberId: t.phoneNumberId, displayPhoneNumber: t.displayPhoneNumber, accessToken: core.keyring.decryptString("tenant-token", t.accessTokenEnc) });
    } catch {
      logger.warn({ phoneNumberId: t.phoneNumberId }, "tenant token made with another SECRETS_KEY: not played by the sandbox");
    }
  }
  const http = await startHttp(core, { port, mount: [sandbox.app], onTenantCreated: (t) => sandbox.addPhoneNumber(t) });

  const base = `http://localhost:${port}`;
  const address = http.server.address();
  const listening = address && typeof address === "object" ? `${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}` : String(address);
  const loopbackOnly = config.HOST === "127.0.0.1" || config.HOST === "::1" || config.HOST === "localhost";
  process.stdout.write(
    [
      "",
      "  WhatsApp verification bot: demo running (Cloud API sandbox standing in for Meta)",
      `  Chat:     ${base}/sandbox`,
      `  Console:  ${base}/console   (sign in with ADMIN_API_KEY: ${config.ADMIN_API_KEY === DEMO_DEFAULTS.ADMIN_API_KEY ? config.ADMIN_API_KEY : "the one you set"})`,
      `  Webhook:  ${base}/webhook   (signed with the demo app secret)`,
      `  Health:   ${base}/readyz`,
      `  Listening on ${listening}${loopbackOnly ? " (this machine only; HOST=0.0.0.0 opens it to the network)" : " (reachable from the network: the demo's keys are public)"}`,
      "",
    ].join("\n") + "\n",
  );
  onShutdown(logger, [http.close, workers.close, () => sandbox.close(), core.close], { deadlineMs: config.SHUTDOWN_GRACE_MS });
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

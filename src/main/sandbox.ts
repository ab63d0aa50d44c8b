import { z } from "zod";
import { createLogger } from "../observability/logger";
import { createSandbox } from "../sandbox/sandbox";

/**
 * `npm run sandbox`: the local Cloud API stand-in on its own. The only place besides src/config that reads
 * process.env, through this schema, once.
 */
const envSchema = z.object({
  SANDBOX_PORT: z.coerce.number().int().min(0).max(65535).default(4010),
  SANDBOX_HOST: z.string().min(1).default("127.0.0.1"),
  WHATSAPP_APP_SECRET: z.string().min(1),
  WHATSAPP_PHONE_NUMBER_ID: z.string().regex(/^\d+$/, "digits only"),
  WHATSAPP_ACCESS_TOKEN: z.string().min(1),
  WHATSAPP_DISPLAY_PHONE_NUMBER: z.string().min(1).default("15550001234"),
  SANDBOX_WEBHOOK_URL: z.url().default("http://127.0.0.1:3000/webhook"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

async function main(): Promise<void> {
  const parsed = envSchema.safeParse(process.env);
  if (!parsed.success) {
    const bad = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n  ");
    process.stderr.write(`sandbox: invalid environment\n  ${bad}\n`);
    process.exit(1);
  }
  const env = parsed.data;
  const logger = createLogger({ level: env.LOG_LEVEL, name: "sandbox" });
  const sandbox = createSandbox({
    appSecret: env.WHATSAPP_APP_SECRET,
    webhookUrl: env.SANDBOX_WEBHOOK_URL,
    phoneNumbers: [{ phoneNumberId: env.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: env.WHATSAPP_DISPLAY_PHONE_NUMBER, accessToken: env.WHATSAPP_ACCESS_TOKEN }],
    logger,
  });
  const { url } = await sandbox.listen(env.SANDBOX_PORT, env.SANDBOX_HOST);
  logger.info({ url, chat: `${url}/sandbox`, webhook: env.SANDBOX_WEBHOOK_URL }, "sandbox: Cloud API stand-in ready (GRAPH_API_BASE_URL=%s)", url);
  const stop = (): void => {
    void sandbox.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

void main();

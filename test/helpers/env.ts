import { randomBytes } from "node:crypto";
import { loadConfig, type Config } from "../../src/config/env";

/** Where the suite's databases live; each test file gets a fresh copy of the migrated template. */
export const ADMIN_DATABASE_URL = process.env.TEST_ADMIN_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Set by global-setup (one template per run, so parallel runs on one machine never touch each other's). */
export function templateDatabase(): string {
  const name = process.env.WABOT_TEST_TEMPLATE_DB;
  if (!name) throw new Error("WABOT_TEST_TEMPLATE_DB is not set: run the tests through jest (global-setup)");
  return name;
}

export function databaseUrl(name: string): string {
  const u = new URL(ADMIN_DATABASE_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A valid configuration with fresh secrets and a queue prefix of its own (so test files never share queues). */
export function testConfig(overrides: Partial<Record<string, string>> = {}): Config {
  return loadConfig({
    NODE_ENV: "test",
    DATABASE_URL: databaseUrl(process.env.WABOT_TEST_TEMPLATE_DB ?? "unset"),
    REDIS_URL: TEST_REDIS_URL,
    PORT: "0",
    WHATSAPP_APP_SECRET: randomBytes(16).toString("hex"),
    WHATSAPP_VERIFY_TOKEN: "verify-" + randomBytes(6).toString("hex"),
    WHATSAPP_PHONE_NUMBER_ID: String(100000000000000 + Math.floor(Math.random() * 1e12)),
    WHATSAPP_DISPLAY_PHONE_NUMBER: "15550001234",
    WHATSAPP_ACCESS_TOKEN: "EAAG" + randomBytes(24).toString("hex"),
    ADMIN_API_KEY: "admin-" + randomBytes(16).toString("hex"),
    SECRETS_KEY: randomBytes(32).toString("base64"),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    QUEUE_PREFIX: "t" + randomBytes(5).toString("hex"),
    ...overrides,
  });
}

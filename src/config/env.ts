import { z } from "zod";

/**
 * The environment of the contract (docs/configuration.md), parsed once at start-up. Nothing outside src/config
 * reads process.env: composition roots call loadConfig() and pass the result down.
 */
const base64Key32 = z
  .string()
  .refine((v) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(v) && Buffer.from(v, "base64").length === 32, {
    message: "must be 32 random bytes, base64-encoded (openssl rand -base64 32)",
  });

const url = (protocols: string[]) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, { message: `must be a URL (${protocols.join(" or ")})` });

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const envSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  DATABASE_URL: url(["postgres:", "postgresql:"]),
  REDIS_URL: url(["redis:", "rediss:"]).default("redis://127.0.0.1:6379"),
  PORT: int(0, 65535).default(3000),
  /**
   * The address the HTTP servers listen on (the API; a worker's WORKER_METRICS_PORT). Unset: every interface
   * (`0.0.0.0`) for `npm start`; `npm run demo` listens on loopback only (`127.0.0.1`: its secrets and admin key are
   * public), `HOST=0.0.0.0` opens it to the network.
   */
  HOST: z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, "must be an IP address or a host name (0.0.0.0, 127.0.0.1, ::)").optional(),
  /**
   * A worker-only process (`npm run start:worker`) serves `/metrics` (admin key, as on the API) and `/healthz` on this
   * port, for Prometheus and liveness probes. Unset: no HTTP at all in such a process (`npm start` serves /metrics on
   * PORT). `0` picks a free port. 9464 is the usual choice.
   */
  WORKER_METRICS_PORT: int(0, 65535).optional(),
  WHATSAPP_APP_SECRET: z.string().min(1),
  WHATSAPP_VERIFY_TOKEN: z.string().min(1),
  WHATSAPP_PHONE_NUMBER_ID: z.string().regex(/^\d{1,32}$/, "must be the numeric phone number id"),
  WHATSAPP_DISPLAY_PHONE_NUMBER: z.string().default(""),
  /** How the bot names the business in its own texts (the default tenant's name). */
  BUSINESS_NAME: z.string().min(1).max(100).default("our business"),
  WHATSAPP_ACCESS_TOKEN: z.string().min(1),
  GRAPH_API_BASE_URL: url(["http:", "https:"]).default("https://graph.facebook.com"),
  GRAPH_API_VERSION: z.string().regex(/^v\d+\.\d+$/, "must look like v23.0").default("v23.0"),
  WHATSAPP_OTP_TEMPLATE: z.string().regex(/^[a-z0-9_]{1,512}$/, "lowercase letters, digits and _").default("verification_code"),
  WHATSAPP_OTP_TEMPLATE_LANGUAGE: z.string().min(2).default("en_US"),
  ADMIN_API_KEY: z.string().min(16, "must be at least 16 characters"),
  SECRETS_KEY: base64Key32,
  /**
   * Earlier values of `SECRETS_KEY`, comma-separated, while a key rotation is under way: data made with them stays
   * readable (and hashes checkable) until `npm run secrets:reencrypt` has moved it to `SECRETS_KEY`. Leave unset
   * otherwise. The procedure: docs/security.md.
   */
  SECRETS_KEY_PREVIOUS: z
    .string()
    .refine((v) => v.split(",").map((k) => k.trim()).filter(Boolean).every((k) => base64Key32.safeParse(k).success), {
      message: "must be comma-separated keys of 32 random bytes, base64-encoded",
    })
    .optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /**
   * Access lines (one per HTTP request at `info`: request id, method, route pattern, status, ms) written per second
   * before the rest of that second's requests are aggregated: one `requests aggregated` line per method, route and
   * status with their count, p50 and max ms. Nothing is dropped. 0 aggregates every request.
   */
  ACCESS_LOG_MAX_PER_SECOND: int(0, 1_000_000).default(50),
  /** Redis key prefix for the queues (lets several deployments or test runs share one Redis). */
  /**
   * Prefix of every Redis key of the deployment (queues, per-contact mailboxes, limits, console sessions), so several
   * deployments or test runs can share one Redis. On Redis Cluster, wrap it in braces (`{wabot}`): the braces are a
   * hash tag that puts every key in one slot, as BullMQ's scripts and the webhook's MULTI need (docs/scaling.md).
   * Changing it on a running deployment orphans the jobs queued under the old one: drain the queues first.
   */
  QUEUE_PREFIX: z.string().regex(/^(?:[A-Za-z0-9_-]+|\{[A-Za-z0-9_-]+\})$/, "letters, digits, _ and -, or those in braces ({wabot}) as a Redis Cluster hash tag").default("wabot"),
  /** Cloud API messages per second per business phone number (Meta: 80 by default, up to 1,000). */
  OUTBOUND_RATE_PER_SECOND: int(1, 1000).default(80),
  /** Minimum gap between two messages to the same recipient, so a multi-message reply keeps its order. */
  OUTBOUND_RECIPIENT_GAP_MS: int(0, 60_000).default(250),
  OUTBOUND_TIMEOUT_MS: int(100, 120_000).default(10_000),
  OUTBOUND_MAX_ATTEMPTS: int(1, 50).default(8),
  INBOUND_CONCURRENCY: int(1, 500).default(16),
  OUTBOUND_CONCURRENCY: int(1, 1000).default(32),
  /**
   * How long a worker's claim on a job lasts without renewal, in ms (renewed every half of it while the worker runs;
   * also how often each worker looks for claims that lapsed). After a crash (SIGKILL, out of memory, lost host) the
   * jobs it held run again within about twice this. Lower recovers sooner; an event loop blocked for longer lets
   * another worker take a job, which is safe (handling is idempotent) but may repeat a send. Sends and event
   * deliveries keep at least twice their timeout plus 5 s.
   */
  WORKER_LOCK_MS: int(2_000, 600_000).default(30_000),
  /**
   * On SIGTERM a worker process lets the jobs it holds finish for at most this long, in ms; then (say while Redis is
   * unreachable and nothing can complete) it drops its connections and exits. What it held runs again elsewhere once
   * its lock lapses (`WORKER_LOCK_MS`). Keep it below the orchestrator's grace period (compose: 60 s for workers).
   */
  SHUTDOWN_GRACE_MS: int(0, 600_000).default(50_000),
  /** Largest webhook body accepted (Meta sends up to 3 MB). */
  WEBHOOK_BODY_LIMIT_BYTES: int(4 * 1024 * 1024, 8 * 1024 * 1024).default(6 * 1024 * 1024),
  /** Fallback code channels after WhatsApp: none (off), sandbox (recorded in memory, for the demo) or twilio. */
  SMS_PROVIDER: z.enum(["none", "sandbox", "twilio"]).default("none"),
  VOICE_PROVIDER: z.enum(["none", "sandbox", "twilio"]).default("none"),
  /** Twilio credentials (Console > Account info); required when SMS_PROVIDER or VOICE_PROVIDER is twilio. */
  TWILIO_ACCOUNT_SID: z.string().regex(/^AC[0-9a-fA-F]{32}$/, "must be AC followed by 32 hex digits").optional(),
  TWILIO_AUTH_TOKEN: z.string().min(1).optional(),
  /** The Twilio number codes are sent and called from. */
  TWILIO_FROM_NUMBER: z.string().regex(/^\+[1-9]\d{1,14}$/, "must be an E.164 number such as +14155550100").optional(),
  TWILIO_BASE_URL: url(["http:", "https:"]).default("https://api.twilio.com"),
  /** Where Twilio can reach us (https in production): status callbacks go to {PUBLIC_BASE_URL}/providers/twilio/status. */
  PUBLIC_BASE_URL: url(["http:", "https:"]).optional(),
  /** Where PIN reset links are emailed from: none (off: no reset by email), sandbox (recorded in memory, for the demo) or smtp. */
  EMAIL_PROVIDER: z.enum(["none", "sandbox", "smtp"]).default("none"),
  /** The SMTP server, with its credentials (smtps:// for implicit TLS, smtp:// upgrades with STARTTLS); required when EMAIL_PROVIDER is smtp. */
  SMTP_URL: url(["smtp:", "smtps:"]).optional(),
  /** The From address of the bot's emails (PIN reset links). */
  EMAIL_FROM: z.string().min(3).max(320).default("no-reply@localhost"),
  /** How long a PIN reset link, emailed to the recovery address, stays valid (minutes; single use). Links are {PUBLIC_BASE_URL}/pin-reset/…. */
  PIN_RESET_LINK_MINUTES: int(1, 24 * 60).default(30),
}).superRefine((env, ctx) => {
  if (env.EMAIL_PROVIDER === "smtp" && !env.SMTP_URL) ctx.addIssue({ code: "custom", path: ["SMTP_URL"], message: "is required when EMAIL_PROVIDER=smtp" });
  const users = (["SMS_PROVIDER", "VOICE_PROVIDER"] as const).filter((k) => env[k] === "twilio");
  if (users.length === 0) return;
  for (const name of ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"] as const) {
    if (!env[name]) ctx.addIssue({ code: "custom", path: [name], message: `is required when ${users.map((u) => `${u}=twilio`).join(" and ")}` });
  }
});

export type Config = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Parses the environment; throws one ConfigError naming every bad or missing variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, defaults: Record<string, string> = {}): Config {
  const input: Record<string, string | undefined> = { ...defaults };
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== "") input[key] = v;
  }
  const parsed = envSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = issue.path.join(".");
    const missing = input[name] === undefined;
    return `${name}: ${missing ? "is required" : issue.message}`;
  });
  throw new ConfigError(problems);
}

/**
 * Development mode (`NODE_ENV=development`, what `npm run demo` runs): tenant-controlled URLs (flow `http` steps,
 * event callbacks) may then use plain http to 127.0.0.1, localhost and [::1]. In any other mode they never reach a
 * loopback address (src/shared/safe-http.ts).
 */
export function isDevMode(config: Pick<Config, "NODE_ENV">): boolean {
  return config.NODE_ENV === "development";
}

import { z } from "zod";
import { isFictitiousNumber, MAX_TEST_NUMBERS } from "../shared/fictitious-numbers";

/**
 * A tenant's settings (tenants.settings JSON), validated with defaults on every read and write. Defaults follow
 * ../shared/docs/otp-anchors.md: Twilio/Kratos-style 5 attempts, ASVS's 10-minute ceiling, 5 sends per number
 * per 10 minutes.
 */
export const CHANNELS = ["whatsapp", "sms", "voice"] as const;
export type Channel = (typeof CHANNELS)[number];

export const NUMBER_TYPES = [
  "MOBILE", "FIXED_LINE", "FIXED_LINE_OR_MOBILE", "PREMIUM_RATE", "TOLL_FREE", "SHARED_COST", "VOIP",
  "PERSONAL_NUMBER", "PAGER", "UAN", "VOICEMAIL",
] as const;

const countryCode = z.string().regex(/^[A-Z]{2}$/, "ISO 3166-1 alpha-2 country code, e.g. GB");
const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/, "E.164 number, e.g. +14155550123");
const testNumberSchema = z.object({
  number: e164.refine(isFictitiousNumber, "a test number must be in a fictitious range that reaches no one, e.g. +1 NPA 555-0100 to 555-0199 (docs/verify-api.md, Test numbers)"),
  code: z.string().regex(/^\d{6,10}$/).optional(),
});

export const templateRefSchema = z.object({
  /** approved AUTHENTICATION template name */
  name: z.string().regex(/^[a-z0-9_]{1,512}$/),
  /** the template's language code as approved (en_US, es, pt_BR, …) */
  language: z.string().min(2).max(15),
  /** the expiry footer Meta prints (`code_expiration_minutes`, fixed when the template was created) */
  expiryMinutes: z.number().int().min(1).max(90).optional(),
  /** the template's message_send_ttl_seconds (30–900): must not exceed the code's life */
  ttlSeconds: z.number().int().min(30).max(900).optional(),
});

export const otpSettingsSchema = z.object({
  codeLength: z.number().int().min(6).max(10).default(6),
  expiryMinutes: z.number().int().min(1).max(10).default(10),
  maxAttempts: z.number().int().min(1).max(10).default(5),
  /** wait before the 1st, 2nd, 3rd… re-send; the last value repeats */
  resendCooldownsSeconds: z.array(z.number().int().min(0).max(3600)).min(1).default([30, 60, 120]),
  maxSendsPerNumber: z.number().int().min(1).max(50).default(5),
  sendWindowMinutes: z.number().int().min(1).max(1440).default(10),
  /** delivery order: the first is tried first, the next ones are fallbacks */
  channels: z.array(z.enum(CHANNELS)).min(1).default(["whatsapp", "sms", "voice"]),
  /** fall back when no `delivered` arrives within this many seconds */
  deliveryTimeoutSeconds: z.number().int().min(5).max(900).default(60),
  /** after "I didn't request this": no new codes to that number for this long */
  blockMinutesAfterReport: z.number().int().min(1).max(60 * 24 * 30).default(24 * 60),
  /** locale → template; the default locale's entry comes from the environment for the default tenant */
  templates: z.record(z.string(), templateRefSchema).default({}),
  defaultLocale: z.string().default("en_US"),
  /** send our own "never share this code" text after a code when the 24-hour window is open */
  warnAfterCode: z.boolean().default(true),
  /**
   * numbers for tests, optionally with a fixed code: fictitious numbers only (src/shared/fictitious-numbers.ts),
   * at most MAX_TEST_NUMBERS; every limit, cap and policy still applies, and their codes go out on WhatsApp only
   */
  testNumbers: z.array(testNumberSchema).max(MAX_TEST_NUMBERS, `at most ${MAX_TEST_NUMBERS} test numbers`).default([]),
  /** what one SMS / voice code costs, in the units of limits.fallbackBudgetPerDay (currency-neutral) */
  channelCosts: z.object({ sms: z.number().min(0).max(1000).default(0.05), voice: z.number().min(0).max(1000).default(0.1) }).default({ sms: 0.05, voice: 0.1 }),
});

export const phonePolicySchema = z.object({
  /** when set, only these countries; otherwise every country not denied */
  allowedCountries: z.array(countryCode).optional(),
  deniedCountries: z.array(countryCode).default([]),
  /** number types that never get a code (FIXED_LINE_OR_MOBILE stays allowed: every US/CA number is one) */
  deniedTypes: z.array(z.enum(NUMBER_TYPES)).default(["PREMIUM_RATE", "SHARED_COST", "TOLL_FREE", "VOIP", "PAGER", "UAN", "VOICEMAIL"]),
});

export const limitSettingsSchema = z.object({
  /** verification requests per tenant per minute */
  tenantPerMinute: z.number().int().min(1).default(6000),
  /** requests per end-user IP (the `clientIp` the business passes) per hour */
  ipPerHour: z.number().int().min(1).default(30),
  /** sends per number prefix (the number without its last 4 digits) per 10 minutes: SMS-pumping defence */
  prefixPer10Minutes: z.number().int().min(1).default(20),
  /** checks per number per 10 minutes, across verifications */
  checksPerNumberPer10Minutes: z.number().int().min(1).default(30),
  /** checks per tenant per minute */
  checksPerTenantPerMinute: z.number().int().min(1).default(60000),
  /** codes sent (new and re-sent) per tenant per UTC day; beyond it `429 daily_limit_reached` (docs/limits.md) */
  codesPerDay: z.number().int().min(1).max(100_000_000).default(10000),
  /** warn (event messaging_limit.warning) when this share of Meta's messaging-limit tier is used in 24 h */
  messagingLimitWarnPercent: z.number().int().min(1).max(100).default(80),
  /** paid code channels (SMS, voice) per UTC day, in the units of otp.channelCosts; 0 = no paid channel (docs/templates.md) */
  fallbackBudgetPerDay: z.number().min(0).max(1_000_000_000).default(100),
});

export const flowSettingsSchema = z.object({
  /** a conversation idle this long is ended; the next message starts afresh */
  sessionTimeoutMinutes: z.number().int().min(1).max(7 * 24 * 60).default(30),
  /** hosts an `http` step may call (exact names, or "*.example.com"); empty = none */
  httpAllowedHosts: z.array(z.string().min(1).max(255)).default([]),
  /** the tenant's default locale for the bot's texts */
  defaultLocale: z.string().default("en_US"),
  /**
   * Utility templates per locale: a flow names a template (e.g. `login_notice`); the tenant says which approved
   * template and language carry it in each locale: {"login_notice": {"es": {"name": "aviso_login", "language": "es"}}}.
   */
  templates: z
    .record(z.string().regex(/^[a-z0-9_]{1,512}$/), z.record(z.string(), z.object({ name: z.string().regex(/^[a-z0-9_]{1,512}$/), language: z.string().min(2).max(15) })))
    .default({}),
});

export const pinSettingsSchema = z.object({
  maxAttempts: z.number().int().min(1).max(10).default(5),
  lockMinutes: z.number().int().min(1).max(7 * 24 * 60).default(30),
  /** without a recovery email, a forgotten PIN can be reset after this long */
  resetWaitDays: z.number().int().min(0).max(30).default(7),
  /**
   * Code purposes for which a contact's PIN is asked after a right code (src/otp/verification.service.ts): the check
   * answers `pinRequired: true` and approves only with the PIN too. `registration` is the verify journey (a new
   * phone, a re-install: the SIM-swap case), `account_recovery` the recover journey. [] turns it off.
   */
  requireFor: z.array(z.string().regex(/^[a-z0-9_.-]{1,40}$/)).max(50).default(["login", "registration", "account_recovery"]),
});

export const eventSettingsSchema = z.object({
  /** the business's HTTPS endpoint for status events (http:// only for loopback addresses, for development) */
  url: z.string().url().optional(),
  /** encrypted (Keyring "tenant-token"); generated when the url is first set */
  secretEnc: z.string().optional(),
});

/**
 * How long data is kept (src/retention/purge.ts, run at most hourly by each worker process). Inbound message rows
 * carry the wamid deduplication key Meta may redeliver for up to 7 days, and status events the status one: so no
 * window that deletes them may be shorter than 7 days.
 */
export const retentionSettingsSchema = z.object({
  /** messages (and their send attempts), status events and ended verifications (and their deliveries) */
  messagesDays: z.number().int().min(7).max(3650).default(90),
  auditDays: z.number().int().min(7).max(3650).default(365),
  /** delivered or failed events of the callback log (pending ones are kept) */
  eventDeliveriesDays: z.number().int().min(7).max(3650).default(30),
  /** a contact with no message either way for this long is erased (src/retention/erase.ts); 0 = kept */
  inactiveContactsDays: z.number().int().min(0).max(3650).default(0).refine((d) => d === 0 || d >= 7, "0 (keep) or at least 7"),
});

export const tenantSettingsSchema = z.object({
  otp: otpSettingsSchema.default(otpSettingsSchema.parse({})).superRefine((otp, ctx) => {
    // Meta fixes a template's expiry footer and time-to-live at creation: they must not promise more than the code lives
    for (const [locale, t] of Object.entries(otp.templates)) {
      if (t.ttlSeconds !== undefined && t.ttlSeconds > otp.expiryMinutes * 60) {
        ctx.addIssue({ code: "custom", path: ["templates", locale, "ttlSeconds"], message: `must not exceed the code's life (${otp.expiryMinutes * 60} s)` });
      }
      if (t.expiryMinutes !== undefined && t.expiryMinutes > otp.expiryMinutes) {
        ctx.addIssue({ code: "custom", path: ["templates", locale, "expiryMinutes"], message: `the template says the code lives ${t.expiryMinutes} min, longer than otp.expiryMinutes (${otp.expiryMinutes})` });
      }
    }
  }),
  phonePolicy: phonePolicySchema.default(phonePolicySchema.parse({})),
  limits: limitSettingsSchema.default(limitSettingsSchema.parse({})),
  flows: flowSettingsSchema.default(flowSettingsSchema.parse({})),
  pin: pinSettingsSchema.default(pinSettingsSchema.parse({})),
  events: eventSettingsSchema.default({}),
  retention: retentionSettingsSchema.default(retentionSettingsSchema.parse({})),
});

export type TenantSettings = z.infer<typeof tenantSettingsSchema>;
export type OtpSettings = z.infer<typeof otpSettingsSchema>;
export type RetentionSettings = z.infer<typeof retentionSettingsSchema>;

const parsedByRecord = new WeakMap<object, TenantSettings>();
let parsedEmpty: TenantSettings | undefined;

/**
 * Settings as stored may be partial or from an older version: read them through the schema (defaults filled in).
 *
 * Parsed once per tenant record: the result is memoised on the identity of the `raw` object (the `settings` of the
 * tenant row the caller holds), and the result itself maps to itself, so `readSettings(readSettings(x))` and the
 * many `readSettings(ctx.tenant.settings)` of one message cost one lookup. A row read again from the database is a
 * new object and is parsed again, so a change is seen on the next read; a stored settings object is never mutated in
 * place (writes build a new object: admin.routes.ts `mergeSettings`, events/callback.ts `updateEvents`).
 * The result is shared and deeply frozen: read it, never change it (copy it to build a new one).
 */
export function readSettings(raw: unknown): TenantSettings {
  if (raw === null || raw === undefined) return (parsedEmpty ??= parseSettings({}));
  if (typeof raw !== "object") return parseSettings(raw);
  const hit = parsedByRecord.get(raw);
  if (hit) return hit;
  const settings = parseSettings(raw);
  parsedByRecord.set(raw, settings);
  parsedByRecord.set(settings, settings);
  return settings;
}

function parseSettings(raw: unknown): TenantSettings {
  return deepFreeze(tenantSettingsSchema.parse(withoutUnsafeTestNumbers(raw)));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Stored settings from before test numbers had to be fictitious may list real numbers: those entries (and any past
 * MAX_TEST_NUMBERS) are ignored on read, so they get no test-number treatment and the settings still load. A write
 * (`tenantSettingsSchema`) refuses them.
 */
function withoutUnsafeTestNumbers(raw: unknown): unknown {
  const otp = (raw as { otp?: { testNumbers?: unknown } } | null)?.otp;
  if (!otp || typeof otp !== "object" || !Array.isArray(otp.testNumbers)) return raw;
  const list = otp.testNumbers as unknown[];
  const kept = list.filter((t) => typeof (t as { number?: unknown })?.number === "string" && isFictitiousNumber((t as { number: string }).number)).slice(0, MAX_TEST_NUMBERS);
  if (kept.length === list.length) return raw;
  return { ...(raw as object), otp: { ...otp, testNumbers: kept } };
}

/** The tenant's test number entry for an E.164 number, if it is one. */
export function testNumberOf(settings: TenantSettings, e164: string): TenantSettings["otp"]["testNumbers"][number] | undefined {
  return settings.otp.testNumbers.find((t) => t.number === e164);
}

const parsedByTenant = new Map<string, { raw: string; settings: TenantSettings }>();

/**
 * `readSettings` for settings read as text (`settings::text`) in a statement the caller runs anyway: the parse is
 * memoised per tenant on the exact stored text, so a change is seen on the next read (no TTL, nothing to
 * invalidate) while an unchanged document is not validated again. The result is shared: do not mutate it.
 */
export function readSettingsText(tenantId: string, raw: string | null): TenantSettings {
  const text = raw ?? "{}";
  const hit = parsedByTenant.get(tenantId);
  if (hit && hit.raw === text) return hit.settings;
  const settings = readSettings(JSON.parse(text));
  if (parsedByTenant.size > 10_000) parsedByTenant.clear();
  parsedByTenant.set(tenantId, { raw: text, settings });
  return settings;
}

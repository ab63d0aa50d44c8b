import { z } from "zod";
import { CHANNELS } from "../tenants/settings";

/**
 * The event catalogue: what the business's callback URL receives. Every event is a JSON body
 *
 *     { "id": "<uuid>", "type": "verification.approved", "createdAt": "<ISO 8601>", "tenantId": "<uuid>", "data": { … } }
 *
 * signed as described in ./signature.ts. `id` is unique per event (use it to deduplicate: delivery is
 * at-least-once and not ordered). `data` is one of the schemas below; it is validated before the event is stored.
 * An event never carries a code: the publisher refuses data with a code/otp/pin/secret key at any depth.
 */
export const EVENT_TYPES = [
  "verification.requested",
  "verification.sent",
  "verification.delivered",
  "verification.failed",
  "verification.fallback",
  "verification.approved",
  "verification.expired",
  "verification.locked",
  "verification.canceled",
  "verification.reported",
  "number.blocked",
  "contact.verified",
  "contact.number_changed",
  "login.revoked",
  "unauthorized_access.reported",
  "reverification.requested",
  "template.paused",
  "template.disabled",
  "template.reinstated",
  "limit.fallback_budget_reached",
  "messaging_limit.warning",
  "limit.daily_codes_reached",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/, "E.164 number, e.g. +14155550123");
const isoDate = z.iso.datetime({ offset: true });
const channel = z.enum(CHANNELS);
/** mirrors the VerificationStatus enum of prisma/schema.prisma */
export const VERIFICATION_STATUSES = ["pending", "approved", "expired", "max_attempts_reached", "canceled"] as const;
const status = z.enum(VERIFICATION_STATUSES);

/** Fields every verification.* event has; optional ones are set when the moment has them. */
const verificationBase = {
  verificationId: z.uuid(),
  to: e164,
  purpose: z.string().min(1).max(64),
  /** the channel concerned: the one a code went out on, or failed on */
  channel,
  status,
  /** checks made so far */
  attempts: z.number().int().min(0).optional(),
  /** codes sent so far */
  sendCount: z.number().int().min(0).optional(),
  /** provider or Meta error code, as a string (e.g. "131026") */
  errorCode: z.string().max(64).optional(),
  /** a short machine-readable reason (e.g. "delivery_timeout", "customer_report") */
  reason: z.string().max(200).optional(),
};

const verification = <T extends z.ZodRawShape>(extra: T) => z.strictObject({ ...verificationBase, ...extra });

/** template.* events: a WhatsApp template the tenant uses changed status at Meta (message_template_status_update) */
const templateAlert = z.strictObject({
  name: z.string().min(1).max(512),
  language: z.string().min(1).max(20),
  /** Meta's event word: PAUSED, DISABLED, REJECTED, APPROVED, REINSTATED, … */
  status: z.string().min(1).max(64),
  /** the status known before, when there was one */
  previousStatus: z.string().min(1).max(64).optional(),
  /** Meta's reason (e.g. "NONE", "INCORRECT_CATEGORY") and other_info title/description, when given */
  reason: z.string().max(500).optional(),
  /** Meta's template id */
  templateId: z.string().max(64).optional(),
  /** locales whose verification codes use this template (empty: not a code template) */
  verificationLocales: z.array(z.string().max(20)).max(200),
  /** flow template keys (settings flows.templates) this template carries */
  flowTemplates: z.array(z.string().max(512)).max(200),
  /** what happens to codes meanwhile: "fallback:sms", "fallback:voice", "whatsapp_only" (no other channel), "none" */
  verificationDelivery: z.string().max(64),
});

export const eventDataSchemas = {
  /** a verification was created (before any code left) */
  "verification.requested": verification({ expiresAt: isoDate.optional(), locale: z.string().max(15).optional() }),
  /** a code was accepted by the provider for one channel */
  "verification.sent": verification({ provider: z.string().max(64).optional() }),
  /** the provider reported the code delivered to the handset */
  "verification.delivered": verification({ provider: z.string().max(64).optional() }),
  /** sending on one channel failed (a fallback may follow) */
  "verification.failed": verification({ provider: z.string().max(64).optional() }),
  /** the next channel is tried: `channel` is the new one */
  "verification.fallback": verification({ fromChannel: channel.optional() }),
  /** the right code was given */
  "verification.approved": verification({}),
  /** the code's life ended unused */
  "verification.expired": verification({}),
  /** too many wrong codes: status max_attempts_reached */
  "verification.locked": verification({}),
  /** canceled by the business (API) or superseded */
  "verification.canceled": verification({}),
  /** the customer said they did not request the code; `until`: new codes to the number are refused until then */
  "verification.reported": verification({ until: isoDate.optional() }),
  /** new codes to this number are refused until `until` */
  "number.blocked": z.strictObject({
    to: e164,
    until: isoDate,
    reason: z.string().min(1).max(200).optional(),
    verificationId: z.uuid().optional(),
  }),
  /** the contact proved it holds its number (a journey approved a code) */
  "contact.verified": z.strictObject({
    contactId: z.uuid(),
    to: e164.optional(),
    verifiedAt: isoDate,
    /** what verified it, e.g. "flow:login" */
    source: z.string().min(1).max(100).optional(),
  }),
  /** the contact's number or WhatsApp user id changed (in the chat, or Meta said so); its verified state is cleared */
  "contact.number_changed": z.strictObject({
    contactId: z.uuid(),
    from: e164.optional(),
    to: e164.optional(),
    /** the business-scoped user id before and after, when that is what changed */
    fromUserId: z.string().min(1).max(128).optional(),
    userId: z.string().min(1).max(128).optional(),
    /** "user_changed_number", "user_changed_user_id", "customer_identity_changed", "customer_request" */
    reason: z.string().min(1).max(200),
    /** a fresh verification is required before anything else */
    reverifyRequired: z.boolean(),
  }),
  /** logins (sessions) the business reported for the contact were revoked: end them on your side */
  "login.revoked": z.strictObject({
    contactId: z.uuid(),
    to: e164.optional(),
    count: z.number().int().min(0),
    /** the business's own ids of the revoked logins (at most 100 listed) */
    loginIds: z.array(z.string().min(1).max(200)).max(100),
    /** "customer_request", "api", … */
    reason: z.string().min(1).max(200).optional(),
  }),
  /** the customer told the bot someone else may be using their account */
  "unauthorized_access.reported": z.strictObject({
    contactId: z.uuid(),
    to: e164.optional(),
    /** pending verifications canceled for the number */
    canceled: z.number().int().min(0).optional(),
    /** new codes to the number are refused until then */
    blockedUntil: isoDate.optional(),
    reason: z.string().min(1).max(200),
  }),
  /** a fresh verification is required from the contact (asked by the business or by a rule) */
  "reverification.requested": z.strictObject({
    contactId: z.uuid(),
    to: e164.optional(),
    requestedAt: isoDate,
    reason: z.string().min(1).max(200).optional(),
  }),
  /** Meta paused a template the tenant uses (codes go out on the next channel meanwhile: docs/templates.md) */
  "template.paused": templateAlert,
  /** Meta disabled or rejected a template the tenant uses (`status` says which); it will not come back by itself */
  "template.disabled": templateAlert,
  /** a template the tenant uses can be sent again (APPROVED / REINSTATED after a pause, disable or rejection) */
  "template.reinstated": templateAlert,
  /** today's (UTC) spend on paid code channels reached limits.fallbackBudgetPerDay: SMS/voice codes are refused until midnight UTC */
  "limit.fallback_budget_reached": z.strictObject({
    /** the UTC day, YYYY-MM-DD */
    day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
    budget: z.number().min(0),
    /** spent so far today, in the same units */
    spent: z.number().min(0),
    /** the channel whose code was refused */
    channel,
    /** what that code would have cost */
    cost: z.number().min(0),
    verificationId: z.uuid().optional(),
  }),
  /** the unique users reached outside the customer-service window in the last 24 h crossed limits.messagingLimitWarnPercent of Meta's tier (docs/limits.md) */
  "messaging_limit.warning": z.strictObject({
    /** Meta's tier, e.g. TIER_250 */
    tier: z.string().min(1).max(40),
    /** the unique users the tier allows per moving 24 h */
    limit: z.number().int().min(1),
    uniqueUsers24h: z.number().int().min(0),
    /** uniqueUsers24h / limit × 100, one decimal */
    usedPercent: z.number().min(0),
    /** the tenant's threshold (limits.messagingLimitWarnPercent) */
    warnPercent: z.number().int().min(1).max(100),
    /** when the tier was last read from Meta or pushed by a webhook */
    checkedAt: isoDate.optional(),
  }),
  /** today's (UTC) codes reached limits.codesPerDay: new codes and re-sends are refused (429 daily_limit_reached) until midnight UTC */
  "limit.daily_codes_reached": z.strictObject({
    /** the UTC day, YYYY-MM-DD */
    day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
    /** limits.codesPerDay */
    limit: z.number().int().min(1),
    /** codes counted today when the event was raised */
    count: z.number().int().min(0),
    /** the next midnight UTC, when codes are accepted again */
    resetsAt: isoDate,
  }),
} satisfies Record<EventType, z.ZodType>;

export type EventData<T extends EventType> = z.input<(typeof eventDataSchemas)[T]>;

/** The JSON body POSTed to the callback URL. */
export interface EventEnvelope<T extends EventType = EventType> {
  id: string;
  type: T;
  createdAt: string;
  tenantId: string;
  data: z.output<(typeof eventDataSchemas)[T]>;
}

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

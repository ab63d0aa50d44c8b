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

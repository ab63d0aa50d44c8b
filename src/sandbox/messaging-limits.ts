import { z } from "zod";
import type { GraphResult } from "./cloud-api";
import { wabaIdOf } from "./envelope";
import { fbtraceId } from "./ids";
import { limitOfTier } from "../limits/tiers";
import { MetaError, authError } from "./meta-errors";
import type { SandboxPhoneNumber } from "./types";

/**
 * Meta's messaging-limit tier of each sandbox number (../shared/docs/cloud-api.md "Messaging limits"):
 * - `GET /{version}/{phone-number-id}?fields=whatsapp_business_manager_messaging_limit` answers like Graph:
 *   `{"whatsapp_business_manager_messaging_limit":"TIER_250","id":"…"}` (190 for a wrong token, 100 for an unknown
 *   id or field, 2500 for a bad version);
 * - the control API sets a number's tier and sends the signed `phone_number_quality_update` webhook
 *   (WA/webhooks/reference/phone_number_quality_update: display_phone_number, event, old_limit, current_limit,
 *   max_daily_conversations_per_business).
 * A new number starts at TIER_250, Meta's first tier.
 */
export const DEFAULT_TIER = "TIER_250";
/** current names first, then the older ones Meta still sends */
export const TIERS = ["TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED", "TIER_50", "TIER_1K"] as const;
/** for the event's direction: a tier's size (unlimited is the highest, an unknown name the lowest) */
const rank = (tier: string): number => {
  const limit = limitOfTier(tier);
  return limit === null ? Infinity : (limit ?? 0);
};
export const QUALITY_EVENTS = ["UPGRADE", "DOWNGRADE", "FLAGGED", "UNFLAGGED", "ONBOARDING"] as const;

export const messagingLimitInputSchema = z.strictObject({
  /** the number; default: the sandbox's first */
  phoneNumberId: z.string().min(1).optional(),
  tier: z.enum(TIERS),
  /** the webhook's event; default UPGRADE or DOWNGRADE by the tiers' order (UPGRADE when unchanged) */
  event: z.enum(QUALITY_EVENTS).optional(),
  /** send the webhook (default true) */
  webhook: z.boolean().default(true),
});
export type MessagingLimitInput = z.infer<typeof messagingLimitInputSchema>;

/** Fields a phone-number node answers here; anything else is Graph's "nonexisting field" error. */
const FIELDS = new Set(["id", "display_phone_number", "verified_name", "quality_rating", "whatsapp_business_manager_messaging_limit", "messaging_limit_tier"]);

function graphError(status: number, message: string, code: number, type = "OAuthException", subcode?: number): GraphResult {
  const e = new MetaError(status, { error: { message, type, code, ...(subcode !== undefined ? { error_subcode: subcode } : {}), fbtrace_id: fbtraceId() } });
  return { status: e.httpStatus, body: e.body, errorCode: code };
}

export class SandboxMessagingLimits {
  private readonly tiers = new Map<string, string>();

  constructor(private readonly phones: SandboxPhoneNumber[]) {}

  tierOf(phoneNumberId: string): string {
    return this.tiers.get(phoneNumberId) ?? DEFAULT_TIER;
  }

  /** `GET /{version}/{phone-number-id}` with `fields`, Graph's way. */
  read(version: string, phoneNumberId: string, authorization: string | undefined, fields: unknown): GraphResult {
    if (!/^v\d+\.\d+$/.test(version)) return graphError(400, `Unknown path components: /${version}/${phoneNumberId}`, 2500);
    const token = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1]?.trim();
    if (!token || !this.phones.some((p) => p.accessToken === token)) return fromMeta(authError(false));
    const phone = this.phones.find((p) => p.phoneNumberId === phoneNumberId);
    if (!phone) {
      return graphError(
        400,
        `Unsupported get request. Object with ID '${phoneNumberId}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api`,
        100,
        "GraphMethodException",
        33,
      );
    }
    if (phone.accessToken !== token) return fromMeta(authError(false));
    const asked = typeof fields === "string" && fields.trim() !== "" ? fields.split(",").map((f) => f.trim()).filter(Boolean) : ["verified_name", "display_phone_number", "quality_rating"];
    const unknown = asked.find((f) => !FIELDS.has(f));
    if (unknown) return graphError(400, `(#100) Tried accessing nonexisting field (${unknown}) on node type (WhatsAppBusinessPhoneNumber)`, 100);
    const tier = this.tierOf(phone.phoneNumberId);
    const values: Record<string, string> = {
      display_phone_number: phone.displayPhoneNumber,
      verified_name: "Sandbox Business",
      quality_rating: "GREEN",
      whatsapp_business_manager_messaging_limit: tier,
      messaging_limit_tier: tier,
    };
    const body: Record<string, string> = {};
    for (const f of asked) if (f !== "id") body[f] = values[f]!;
    body.id = phone.phoneNumberId;
    return { status: 200, body };
  }

  /** Sets a number's tier; returns the webhook envelope to send (null when `webhook` is false). */
  set(phone: SandboxPhoneNumber, input: MessagingLimitInput, nowMs: number): { oldTier: string; event: string; envelope: Record<string, unknown> | null } {
    const oldTier = this.tierOf(phone.phoneNumberId);
    this.tiers.set(phone.phoneNumberId, input.tier);
    const event = input.event ?? (rank(input.tier) < rank(oldTier) ? "DOWNGRADE" : "UPGRADE");
    if (!input.webhook) return { oldTier, event, envelope: null };
    const value = {
      display_phone_number: phone.displayPhoneNumber.replace(/\D/g, ""),
      event,
      ...(oldTier !== input.tier ? { old_limit: oldTier } : {}),
      current_limit: input.tier,
      max_daily_conversations_per_business: input.tier,
    };
    const envelope = {
      object: "whatsapp_business_account",
      entry: [{ id: wabaIdOf(phone), time: Math.floor(nowMs / 1000), changes: [{ value, field: "phone_number_quality_update" }] }],
    };
    return { oldTier, event, envelope };
  }
}

function fromMeta(e: MetaError): GraphResult {
  return { status: e.httpStatus, body: e.body, headers: e.headers, errorCode: e.code };
}

import { createHash } from "node:crypto";
import { z } from "zod";
import { wabaIdOf } from "./envelope";
import { metaError, type MetaError } from "./meta-errors";
import type { SandboxPhoneNumber } from "./types";

/**
 * Template statuses as Meta keeps them, per WhatsApp Business Account (templates belong to the WABA, shared by its
 * numbers). A template with no status set is APPROVED. A send of a template that is not sendable fails like Meta:
 * PAUSED → 132015 "Template is Paused", DISABLED → 132016 "Template is Disabled" (../shared/docs/cloud-api.md §4),
 * any other status that is not approved (REJECTED, PENDING, IN_APPEAL, DELETED, …) → 132001, which Meta also gives
 * for a template that "does not exist in the translation or is not approved".
 */
export const SENDABLE = new Set(["APPROVED", "REINSTATED", "UNARCHIVED", "FLAGGED"]);

/** The control API's body: `POST /sandbox/api/templates/status`. */
export const templateStatusInputSchema = z.strictObject({
  /** the business number whose WABA owns the template (default: the first one) */
  phoneNumberId: z.string().min(1).optional(),
  name: z.string().regex(/^[a-z0-9_]{1,512}$/),
  language: z.string().min(2).max(15),
  /** Meta's event word: APPROVED, PAUSED, DISABLED, REJECTED, REINSTATED, FLAGGED, IN_APPEAL, PENDING, … */
  status: z.string().regex(/^[A-Z_]{3,40}$/),
  /** Meta's `reason` (default "NONE"), and for a pause the `other_info` Meta adds */
  reason: z.string().max(200).optional(),
  otherInfo: z.strictObject({ title: z.string().max(200), description: z.string().max(500) }).optional(),
  /** send the message_template_status_update webhook (default true) */
  webhook: z.boolean().default(true),
});
export type TemplateStatusInput = z.output<typeof templateStatusInputSchema>;

export class TemplateStatusBook {
  private readonly statuses = new Map<string, string>();

  private key(wabaId: string, name: string, language: string): string {
    return `${wabaId}|${name}|${language}`;
  }

  set(phone: SandboxPhoneNumber, name: string, language: string, status: string): void {
    this.statuses.set(this.key(wabaIdOf(phone), name, language), status);
  }

  status(phone: SandboxPhoneNumber, name: string, language: string): string {
    return this.statuses.get(this.key(wabaIdOf(phone), name, language)) ?? "APPROVED";
  }

  /** Meta's refusal of a send of this template, or null when it may be sent. */
  refusal(phone: SandboxPhoneNumber, name: string, language: string): MetaError | null {
    const s = this.status(phone, name, language);
    if (SENDABLE.has(s)) return null;
    if (s === "PAUSED") return metaError(132015);
    if (s === "DISABLED") return metaError(132016);
    return metaError(132001, `template name (${name}) does not exist in ${language} or is not approved (status ${s})`);
  }
}

/** A stable fake Meta template id for (WABA, name, language): 15 digits. */
export function templateIdOf(wabaId: string, name: string, language: string): number {
  const h = createHash("sha256").update(`${wabaId}|${name}|${language}`).digest();
  return Number(BigInt(`0x${h.subarray(0, 6).toString("hex")}`) % 900_000_000_000_000n) + 100_000_000_000_000;
}

/** The `message_template_status_update` webhook (WA/webhooks/reference/message_template_status_update). */
export function templateStatusEnvelope(phone: SandboxPhoneNumber, input: TemplateStatusInput, nowMs: number): Record<string, unknown> {
  const wabaId = wabaIdOf(phone);
  const value: Record<string, unknown> = {
    event: input.status,
    message_template_id: templateIdOf(wabaId, input.name, input.language),
    message_template_name: input.name,
    message_template_language: input.language,
    reason: input.reason ?? "NONE",
  };
  if (input.otherInfo) value.other_info = input.otherInfo;
  else if (input.status === "PAUSED") value.other_info = { title: "FIRST_PAUSE", description: "Your template has been paused for 3 hours due to low quality." };
  if (input.status === "DISABLED") value.disable_info = { disable_date: String(Math.floor(nowMs / 1000)) };
  return {
    object: "whatsapp_business_account",
    entry: [{ id: wabaId, time: Math.floor(nowMs / 1000), changes: [{ value, field: "message_template_status_update" }] }],
  };
}

import { z } from "zod";
import type { OutboundContent } from "../../messaging/outbox";

/**
 * Meta's send body for one stored outbound message: the routing fields first, then the message object as stored
 * (what we store is what Meta gets, in Meta's documented key order):
 * `{"messaging_product":"whatsapp","recipient_type":"individual","to":"+<digits>", "type": …, "<type>": {…}}`.
 * A contact known only by its business-scoped user id (a username, no phone number) gets `"recipient": "<BSUID>"`
 * instead of `to` (Meta, May 2026). Authentication templates need the phone number: Meta refuses BSUIDs for them
 * (the OTP service only sends codes to phone numbers).
 *
 * The zod schemas cover the few shapes we produce, with Meta's documented limits (cloud-api.md §3); Meta's own
 * OpenAPI file is too strict and too loose at once to validate with (§6). Unknown fields pass through.
 */
const nonEmpty = z.string().min(1);

const context = z.looseObject({ message_id: nonEmpty }).optional();
const common = { context, biz_opaque_callback_data: z.string().max(512).optional() };

export const textContentSchema = z.looseObject({
  type: z.literal("text"),
  text: z.looseObject({ body: z.string().min(1).max(4096), preview_url: z.boolean().optional() }),
  ...common,
});

const templateParameter = z.looseObject({ type: nonEmpty, text: z.string().optional(), parameter_name: z.string().optional() });
const templateComponent = z.looseObject({
  type: z.enum(["header", "body", "button", "footer"]),
  sub_type: z.string().optional(),
  index: z.union([z.string().regex(/^\d+$/), z.number().int().min(0)]).optional(),
  parameters: z.array(templateParameter).optional(),
});
export const templateContentSchema = z.looseObject({
  type: z.literal("template"),
  template: z.looseObject({
    name: z.string().regex(/^[a-z0-9_]{1,512}$/),
    language: z.looseObject({ code: z.string().min(2) }),
    components: z.array(templateComponent).optional(),
  }),
  ...common,
});

const textObject = (max: number) => z.looseObject({ text: z.string().min(1).max(max) });
const replyButton = z.looseObject({
  type: z.literal("reply"),
  reply: z.looseObject({ id: z.string().min(1).max(256), title: z.string().min(1).max(20) }),
});
const buttonInteractive = z.looseObject({
  type: z.literal("button"),
  header: z.looseObject({ type: nonEmpty }).optional(),
  body: textObject(1024),
  footer: textObject(60).optional(),
  action: z.looseObject({
    buttons: z
      .array(replyButton)
      .min(1)
      .max(3)
      .refine((bs) => new Set(bs.map((b) => b.reply.title)).size === bs.length, { message: "button titles must be unique" }),
  }),
});
const listRow = z.looseObject({ id: z.string().min(1).max(200), title: z.string().min(1).max(24), description: z.string().max(72).optional() });
const listInteractive = z.looseObject({
  type: z.literal("list"),
  header: z.looseObject({ type: z.literal("text"), text: z.string().max(60) }).optional(),
  body: textObject(4096),
  footer: textObject(60).optional(),
  action: z.looseObject({
    button: z.string().min(1).max(20),
    sections: z
      .array(z.looseObject({ title: z.string().max(24).optional(), rows: z.array(listRow).min(1) }))
      .min(1)
      .max(10)
      .refine((ss) => ss.reduce((n, s) => n + s.rows.length, 0) <= 10, { message: "at most 10 rows in total" }),
  }),
});
export const interactiveContentSchema = z.looseObject({
  type: z.literal("interactive"),
  interactive: z.discriminatedUnion("type", [buttonInteractive, listInteractive]),
  ...common,
});

export const outboundContentSchema = z.discriminatedUnion("type", [textContentSchema, templateContentSchema, interactiveContentSchema]);
export type KnownOutboundContent = z.infer<typeof outboundContentSchema>;

export const markAsReadSchema = z.strictObject({
  messaging_product: z.literal("whatsapp"),
  status: z.literal("read"),
  message_id: nonEmpty,
});
export type MarkAsReadBody = z.infer<typeof markAsReadSchema>;

export type SendBody = {
  messaging_product: "whatsapp";
  recipient_type: "individual";
  type: string;
  [field: string]: unknown;
} & ({ to: string } | { recipient: string });

/** The fields of a contact that address it. */
export interface RecipientFields {
  phoneE164?: string | null;
  waId?: string | null;
  userId?: string | null;
}

export type BuildResult = { ok: true; body: SendBody } | { ok: false; reason: string };

const KNOWN_TYPES = new Set(["text", "template", "interactive"]);

/** `+<digits>` from a stored E.164 number or a wa_id; undefined when there is no usable number. */
export function toE164(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const digits = value.replace(/[^\d]/g, "");
  if (digits.length < 6 || digits.length > 15) return undefined;
  return `+${digits}`;
}

/**
 * Builds the body for Meta. Expected problems are values: no way to address the contact, or content that breaks
 * one of our shapes' rules. Types we do not produce ourselves (media, reactions…) pass through unchecked.
 */
export function buildSendBody(content: OutboundContent, contact: RecipientFields): BuildResult {
  if (KNOWN_TYPES.has(content.type)) {
    const parsed = outboundContentSchema.safeParse(content);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return { ok: false, reason: `invalid ${content.type} message: ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}` };
    }
  }
  const message = canonicalOrder(content);
  const to = toE164(contact.phoneE164) ?? toE164(contact.waId);
  if (to) return { ok: true, body: { messaging_product: "whatsapp", recipient_type: "individual", to, ...message } as SendBody };
  if (contact.userId) {
    return { ok: true, body: { messaging_product: "whatsapp", recipient_type: "individual", recipient: contact.userId, ...message } as SendBody };
  }
  return { ok: false, reason: "the contact has neither a phone number nor a user id" };
}

/**
 * The message object in Meta's documented key order (`type`, the object named after it, then the rest):
 * stored payloads come back from PostgreSQL's jsonb with their keys reordered. Routing keys are dropped (the
 * contact decides them).
 */
function canonicalOrder(content: OutboundContent): Record<string, unknown> {
  const { messaging_product: _mp, recipient_type: _rt, to: _to, recipient: _r, type, ...rest } = content as OutboundContent & Record<string, unknown>;
  const out: Record<string, unknown> = { type };
  if (type in rest) out[type] = rest[type];
  for (const [k, v] of Object.entries(rest)) if (k !== type) out[k] = v;
  return out;
}

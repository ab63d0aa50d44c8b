import { z } from "zod";

/**
 * Meta's webhook envelope, parsed tolerantly: only what routing needs is checked; every other field (and every
 * message type we do not know yet) passes through untouched and is kept with the message.
 * Shapes: ../shared/docs/cloud-api.md §2 and Meta's webhook reference.
 */
const str = z.string();
const numericish = z.union([z.string(), z.number()]).transform(String);

/** The earliest plausible time of a WhatsApp message or status: 2009-01-01 (Unix seconds). */
const MIN_PLAUSIBLE_SECONDS = 1_230_768_000;
/** How far ahead of our clock a sender's clock may be. */
const MAX_AHEAD_SECONDS = 24 * 3600;

/**
 * When a message (or status) was sent: Meta's `timestamp` (Unix seconds, a string) when it is a plausible one —
 * digits, after 2009 and at most a day after it was received — else the time it was received. A `timestamp` such
 * as `"soon"`, `"1e400"`, `"-1"` or 20 digits would otherwise make an Invalid Date, fail the job on every retry
 * and hold the contact's later messages back behind it.
 */
export function sentAtOf(timestamp: unknown, receivedAtMs: number): Date {
  const s = typeof timestamp === "number" ? String(timestamp) : typeof timestamp === "string" ? timestamp.trim() : "";
  if (/^\d{1,12}(\.\d{1,9})?$/.test(s)) {
    const seconds = Number(s);
    if (seconds >= MIN_PLAUSIBLE_SECONDS && seconds <= receivedAtMs / 1000 + MAX_AHEAD_SECONDS) return new Date(Math.floor(seconds * 1000));
  }
  return new Date(receivedAtMs);
}

export const inboundMessageSchema = z.looseObject({
  id: str.min(1),
  from: str.optional(),
  from_user_id: str.optional(),
  timestamp: numericish.optional(),
  type: str.default("unknown"),
});
export type InboundMessage = z.infer<typeof inboundMessageSchema> & Record<string, unknown>;

export const contactSchema = z.looseObject({
  wa_id: str.optional(),
  user_id: str.optional(),
  profile: z.looseObject({ name: str.optional(), username: str.optional() }).optional(),
});
export type WebhookContact = z.infer<typeof contactSchema>;

export const statusErrorSchema = z.looseObject({
  code: z.coerce.number().optional(),
  title: str.optional(),
  message: str.optional(),
  error_data: z.looseObject({ details: str.optional() }).optional(),
});

export const statusSchema = z.looseObject({
  id: str.min(1),
  status: str.min(1),
  timestamp: numericish.optional(),
  recipient_id: str.optional(),
  recipient_user_id: str.optional(),
  errors: z.array(statusErrorSchema).optional(),
});
export type WebhookStatus = z.infer<typeof statusSchema>;

const valueSchema = z.looseObject({
  messaging_product: str.optional(),
  metadata: z.looseObject({ phone_number_id: numericish, display_phone_number: numericish.optional() }).optional(),
  contacts: z.array(z.unknown()).optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
  errors: z.array(z.unknown()).optional(),
});

export const envelopeSchema = z.looseObject({
  object: str,
  entry: z.array(
    z.looseObject({
      id: numericish.optional(),
      changes: z.array(z.looseObject({ field: str.optional(), value: valueSchema.optional() })).default([]),
    }),
  ),
});
export type Envelope = z.infer<typeof envelopeSchema>;

/** One message to hand off, with what the worker needs to route it. */
export interface InboundItem {
  kind: "message";
  phoneNumberId: string;
  /** the WhatsApp Business Account id (the entry's id), when Meta sends it */
  wabaId?: string;
  displayPhoneNumber?: string;
  /** user_id (BSUID) when Meta sends one, else the phone-based wa_id: the contact's serialisation key */
  contactKey: string;
  contact: WebhookContact | null;
  message: InboundMessage;
  receivedAt: number;
  /** position in arrival order: receivedAt * 1000 + index within the POST */
  order: number;
  /** the webhook request's id (X-Request-Id), for tracing the message through the workers' logs and sends */
  requestId?: string;
}

export interface StatusItem {
  kind: "status";
  phoneNumberId: string;
  wabaId?: string;
  status: WebhookStatus;
  receivedAt: number;
  /** the webhook request's id (X-Request-Id), for tracing */
  requestId?: string;
}

/**
 * Webhook fields about the business account rather than one message: routed by the WABA id (the entry's id) to
 * every tenant of that account and handled by src/tenants/account-updates.ts.
 */
export const ACCOUNT_FIELDS = [
  "message_template_status_update",
  "message_template_quality_update",
  "template_category_update",
  "phone_number_quality_update",
  "account_update",
] as const;
export type AccountField = (typeof ACCOUNT_FIELDS)[number];

export interface AccountUpdateItem {
  kind: "account";
  wabaId: string;
  field: AccountField;
  /** the change's value, as Meta sent it (validated by the field's handler) */
  value: Record<string, unknown>;
  receivedAt: number;
  /** the webhook request's id (X-Request-Id), for tracing */
  requestId?: string;
}

export interface ExtractResult {
  messages: InboundItem[];
  statuses: StatusItem[];
  account: AccountUpdateItem[];
  /** updates we keep no job for (other webhook fields, envelope-level errors), logged */
  other: { field: string; phoneNumberId?: string }[];
  /** elements that were not messages or statuses at all (no id): logged, never fatal */
  malformed: { path: string; reason: string }[];
}

/** Walks every entry, change, message and status of a batch, in array order. */
export function extractUpdates(envelope: Envelope, receivedAt: number): ExtractResult {
  const out: ExtractResult = { messages: [], statuses: [], account: [], other: [], malformed: [] };
  let index = 0;
  envelope.entry.forEach((entry, ei) => {
    entry.changes.forEach((change, ci) => {
      const value = change.value;
      const field = change.field ?? "unknown";
      const phoneNumberId = value?.metadata?.phone_number_id;
      const wabaId = entry.id;
      if ((ACCOUNT_FIELDS as readonly string[]).includes(field)) {
        if (wabaId && value) out.account.push({ kind: "account", wabaId, field: field as AccountField, value, receivedAt });
        else out.malformed.push({ path: `entry[${ei}].changes[${ci}]`, reason: `${field} without an entry id or value` });
        return;
      }
      if (field !== "messages" || !value || !phoneNumberId) {
        out.other.push({ field, phoneNumberId });
        return;
      }
      const contacts = (value.contacts ?? []).flatMap((c) => {
        const parsed = contactSchema.safeParse(c);
        return parsed.success ? [parsed.data] : [];
      });
      (value.messages ?? []).forEach((raw, mi) => {
        const parsed = inboundMessageSchema.safeParse(raw);
        const path = `entry[${ei}].changes[${ci}].value.messages[${mi}]`;
        if (!parsed.success) {
          out.malformed.push({ path, reason: parsed.error.issues[0]?.message ?? "invalid" });
          return;
        }
        const message = parsed.data as InboundMessage;
        const contact = findContact(contacts, message);
        const contactKey = message.from_user_id ?? contact?.user_id ?? message.from ?? contact?.wa_id;
        if (!contactKey) {
          out.malformed.push({ path, reason: "no sender (from / from_user_id)" });
          return;
        }
        out.messages.push({
          kind: "message",
          phoneNumberId,
          wabaId,
          displayPhoneNumber: value.metadata?.display_phone_number,
          contactKey,
          contact,
          message,
          receivedAt,
          order: receivedAt * 1000 + (index++ % 1000),
        });
      });
      (value.statuses ?? []).forEach((raw, si) => {
        const parsed = statusSchema.safeParse(raw);
        if (!parsed.success) {
          out.malformed.push({ path: `entry[${ei}].changes[${ci}].value.statuses[${si}]`, reason: parsed.error.issues[0]?.message ?? "invalid" });
          return;
        }
        out.statuses.push({ kind: "status", phoneNumberId, wabaId, status: parsed.data, receivedAt });
      });
      if (value.errors?.length) out.other.push({ field: "messages.errors", phoneNumberId });
    });
  });
  return out;
}

function findContact(contacts: WebhookContact[], message: InboundMessage): WebhookContact | null {
  const exact = contacts.find(
    (c) => (message.from && c.wa_id === message.from) || (message.from_user_id && c.user_id === message.from_user_id),
  );
  if (exact) return exact;
  // A lone contact entry belongs to the message unless it names someone else.
  const only = contacts.length === 1 ? contacts[0]! : null;
  if (!only) return null;
  const contradicts =
    (only.wa_id !== undefined && message.from !== undefined && only.wa_id !== message.from) ||
    (only.user_id !== undefined && message.from_user_id !== undefined && only.user_id !== message.from_user_id) ||
    (only.wa_id === undefined && message.from !== undefined && message.from_user_id === undefined);
  return contradicts ? null : only;
}

/**
 * JSON.parse for webhook bodies. PostgreSQL text and jsonb cannot hold U+0000, so a `\u0000` anywhere (a customer's
 * text, a key) would fail every attempt to store the message; it is dropped here, at intake. Bodies without one
 * (all of Meta's, in practice) are parsed as they are, at no extra cost.
 */
export function parseWebhookJson(text: string): unknown {
  return text.includes("\\u0000") ? JSON.parse(text, withoutNul) : JSON.parse(text);
}

function withoutNul(_key: string, value: unknown): unknown {
  if (typeof value === "string") return value.includes("\u0000") ? value.replace(/\u0000/g, "") : value;
  if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).some((k) => k.includes("\u0000"))) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(/\u0000/g, ""), v]));
  }
  return value;
}

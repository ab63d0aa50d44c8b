import type { Customer } from "./store";
import type { SandboxPhoneNumber } from "./types";

/**
 * Meta's webhook envelope (WA/webhooks/reference/messages/*): one entry per WABA, one change with
 * `field: "messages"` per business number, `timestamp`s as strings of Unix seconds.
 */
export function wabaIdOf(phone: SandboxPhoneNumber): string {
  return phone.wabaId ?? `1${phone.phoneNumberId.replace(/\D/g, "").padStart(14, "0").slice(-14)}`;
}

function metadata(phone: SandboxPhoneNumber): { display_phone_number: string; phone_number_id: string } {
  return { display_phone_number: phone.displayPhoneNumber.replace(/\D/g, ""), phone_number_id: phone.phoneNumberId };
}

export interface InboundItem {
  phone: SandboxPhoneNumber;
  customer: Customer;
  message: Record<string, unknown>;
  /** this message's `contacts[]` element */
  contact: Record<string, unknown>;
}

/** `contacts[]` element: profile, wa_id (absent for username-only users), user_id (BSUID). */
export function contactOf(c: Customer): Record<string, unknown> {
  const profile: Record<string, string> = {};
  if (c.profileName) profile.name = c.profileName;
  if (c.username) profile.username = c.username;
  return { profile, ...(c.phone ? { wa_id: c.phone } : {}), ...(c.userId ? { user_id: c.userId } : {}) };
}

/** Messages grouped by business number, in array order: one change per number, all in one POST. */
export function inboundEnvelope(items: InboundItem[]): Record<string, unknown> {
  const groups = new Map<string, InboundItem[]>();
  for (const item of items) {
    const list = groups.get(item.phone.phoneNumberId) ?? [];
    list.push(item);
    groups.set(item.phone.phoneNumberId, list);
  }
  const byWaba = new Map<string, Record<string, unknown>[]>();
  for (const list of groups.values()) {
    const phone = list[0]!.phone;
    const contacts: Record<string, unknown>[] = [];
    const seen = new Set<string>();
    for (const { customer, contact } of list) {
      if (seen.has(customer.key)) continue;
      seen.add(customer.key);
      contacts.push(contact);
    }
    const change = {
      value: { messaging_product: "whatsapp", metadata: metadata(phone), contacts, messages: list.map((i) => i.message) },
      field: "messages",
    };
    const wabaId = wabaIdOf(phone);
    byWaba.set(wabaId, [...(byWaba.get(wabaId) ?? []), change]);
  }
  return { object: "whatsapp_business_account", entry: [...byWaba].map(([id, changes]) => ({ id, changes })) };
}

/** One status update (sent / delivered / read / failed) in its envelope. */
export function statusEnvelope(phone: SandboxPhoneNumber, status: Record<string, unknown>, contacts?: Record<string, unknown>[]): Record<string, unknown> {
  const value: Record<string, unknown> = { messaging_product: "whatsapp", metadata: metadata(phone) };
  if (contacts?.length) value.contacts = contacts;
  value.statuses = [status];
  return { object: "whatsapp_business_account", entry: [{ id: wabaIdOf(phone), changes: [{ value, field: "messages" }] }] };
}

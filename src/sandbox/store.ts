import { EventEmitter } from "node:events";
import { conversationId, digits } from "./ids";
import type { RecordedRequest, RecordedWebhook, SandboxMessage, SandboxStatusEvent } from "./types";

/** A WhatsApp user as the sandbox knows them: a phone number, a BSUID, or both. */
export interface Customer {
  key: string;
  phone?: string;
  userId?: string;
  profileName?: string;
  username?: string;
}

const BSUID = /^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/;

export function isBsuid(value: string): boolean {
  return BSUID.test(value);
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** In-memory state of the sandbox: customers, conversations, the request and webhook logs. Emits live events. */
export class SandboxStore {
  readonly events = new EventEmitter();
  private readonly customers: Customer[] = [];
  // indexes of `customers` (a benchmark talks to thousands of customers: no linear scans per request)
  private readonly byPhone = new Map<string, Customer>();
  private readonly byUserId = new Map<string, Customer>();
  private readonly messages: SandboxMessage[] = [];
  private readonly byWamid = new Map<string, SandboxMessage>();
  private readonly lastInbound = new Map<string, number>();
  private readonly conversations = new Map<string, { id: string; expiresAt: number }>();
  readonly requests: RecordedRequest[] = [];
  readonly webhooks: RecordedWebhook[] = [];
  private seq = 0;

  constructor() {
    this.events.setMaxListeners(100);
  }

  /** Finds a customer by phone (with or without +) or BSUID. */
  findCustomer(idOrPhone: string): Customer | undefined {
    if (isBsuid(idOrPhone)) return this.byUserId.get(idOrPhone);
    const d = digits(idOrPhone);
    return d ? this.byPhone.get(d) : undefined;
  }

  /** Finds or creates the customer, linking phone and BSUID when both are given, and updating profile fields. */
  upsertCustomer(input: { phone?: string; userId?: string; profileName?: string; username?: string }): Customer {
    const phone = input.phone ? digits(input.phone) : undefined;
    let c = (input.userId && this.findCustomer(input.userId)) || (phone && this.findCustomer(phone)) || undefined;
    if (!c) {
      c = { key: `c${++this.seq}` };
      this.customers.push(c);
    }
    if (phone && c.phone !== phone) {
      if (c.phone && this.byPhone.get(c.phone) === c) this.byPhone.delete(c.phone);
      c.phone = phone;
    }
    if (phone && !this.byPhone.has(phone)) this.byPhone.set(phone, c);
    if (input.userId && c.userId !== input.userId) {
      if (c.userId && this.byUserId.get(c.userId) === c) this.byUserId.delete(c.userId);
      c.userId = input.userId;
    }
    if (input.userId && !this.byUserId.has(input.userId)) this.byUserId.set(input.userId, c);
    if (input.profileName) c.profileName = input.profileName;
    if (input.username) c.username = input.username;
    return c;
  }

  /** Every customer the sandbox knows (for the chat page's number picker). */
  customerList(): Customer[] {
    return this.customers.map((c) => ({ ...c }));
  }

  recordInbound(phoneNumberId: string, customer: Customer, atMs: number): void {
    const key = `${phoneNumberId}|${customer.key}`;
    this.lastInbound.set(key, Math.max(this.lastInbound.get(key) ?? 0, atMs));
  }

  /** WA/messages/send-messages: the customer service window is open for 24 h after the customer's last message. */
  windowOpen(phoneNumberId: string, customer: Customer, nowMs: number): boolean {
    const last = this.lastInbound.get(`${phoneNumberId}|${customer.key}`);
    return last !== undefined && nowMs - last < DAY_MS;
  }

  /** One conversation id per (business number, customer, category) for 24 h, like Meta's `conversation.id`. */
  conversationFor(phoneNumberId: string, customer: Customer, category: string, nowMs: number): { id: string; expiresAt: number } {
    const key = `${phoneNumberId}|${customer.key}|${category}`;
    const existing = this.conversations.get(key);
    if (existing && existing.expiresAt > nowMs) return existing;
    const fresh = { id: conversationId(), expiresAt: nowMs + DAY_MS };
    this.conversations.set(key, fresh);
    return fresh;
  }

  addMessage(message: SandboxMessage): void {
    this.messages.push(message);
    this.byWamid.set(message.wamid, message);
    this.events.emit("message", message);
  }

  message(wamid: string): SandboxMessage | undefined {
    return this.byWamid.get(wamid);
  }

  addStatus(message: SandboxMessage, event: SandboxStatusEvent): void {
    message.statuses.push(event);
    message.status = event.status;
    this.events.emit("status", { wamid: message.wamid, phoneNumberId: message.phoneNumberId, customer: message.customer, userId: message.userId, ...event });
  }

  conversation(customer: string, phoneNumberId?: string): SandboxMessage[] {
    const c = this.findCustomer(customer);
    if (!c) return [];
    return this.messages.filter(
      (m) => (!phoneNumberId || m.phoneNumberId === phoneNumberId) && ((c.phone !== undefined && m.customer === c.phone) || (c.userId !== undefined && m.userId === c.userId)),
    );
  }

  addRequest(r: RecordedRequest): void {
    this.requests.push(r);
    this.events.emit("request", r);
  }

  addWebhook(w: RecordedWebhook): void {
    this.webhooks.push(w);
    this.events.emit("webhook", w);
  }
}

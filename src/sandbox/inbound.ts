import { z } from "zod";
import type { Clock } from "../shared/clock";
import { contactOf, type InboundItem, inboundEnvelope } from "./envelope";
import { newWamid } from "./ids";
import { metaJson } from "./meta-json";
import type { SandboxStore } from "./store";
import type { InjectInput, SandboxPhoneNumber } from "./types";
import type { WebhookSender } from "./webhook-sender";

export const injectInputSchema = z
  .strictObject({
    phoneNumberId: z.string().min(1).optional(),
    from: z.string().regex(/^\+?\d{5,20}$/, "from must be a phone number (digits, optional +)").optional(),
    userId: z.string().regex(/^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/, "userId must be a BSUID like US.13491208655302741918").optional(),
    profileName: z.string().optional(),
    username: z.string().optional(),
    message: z.looseObject({ type: z.string().min(1) }).optional(),
    text: z.string().optional(),
    id: z.string().min(1).optional(),
    timestamp: z.number().int().positive().optional(),
    context: z.unknown().optional(),
  })
  .refine((i) => i.from !== undefined || i.userId !== undefined, { message: "from or userId is required" });

/** What a person sees for an inbound message, for the conversation log and the chat page. */
function displayText(message: Record<string, unknown>): string {
  const type = String(message.type);
  const inner = (message[type] ?? {}) as Record<string, unknown>;
  if (type === "text") return String(inner.body ?? "");
  if (type === "button") return String(inner.text ?? inner.payload ?? "");
  if (type === "interactive") {
    const reply = (inner.button_reply ?? inner.list_reply) as { title?: string } | undefined;
    if (reply?.title) return reply.title;
  }
  if (type === "reaction") return String(inner.emoji ?? "");
  return typeof inner.caption === "string" ? inner.caption : `[${type}]`;
}

/**
 * Turns customer messages into Meta's inbound webhook (one POST for the whole batch), records them, opens the
 * 24-hour window, and posts the signed envelope to the bot.
 */
export class InboundInjector {
  constructor(
    private readonly deps: { phones: SandboxPhoneNumber[]; store: SandboxStore; sender: WebhookSender; clock: Clock },
  ) {}

  async inject(inputs: InjectInput[]): Promise<{ wamids: string[]; status: number }> {
    const items: InboundItem[] = inputs.map((raw) => this.prepare(injectInputSchema.parse(raw)));
    const status = await this.deps.sender.deliver(metaJson(inboundEnvelope(items)), "message");
    return { wamids: items.map((i) => String(i.message.id)), status };
  }

  private prepare(input: z.infer<typeof injectInputSchema>): InboundItem {
    const phone = input.phoneNumberId ? this.deps.phones.find((p) => p.phoneNumberId === input.phoneNumberId) : this.deps.phones[0];
    if (!phone) throw new Error(`unknown business phone number id: ${input.phoneNumberId ?? "(none configured)"}`);
    const customer = this.deps.store.upsertCustomer({ phone: input.from, userId: input.userId, profileName: input.profileName, username: input.username });
    const nowMs = this.deps.clock.now().getTime();
    const sentAtMs = input.timestamp !== undefined ? input.timestamp * 1000 : nowMs;
    const typed = input.message ?? { type: "text", text: { body: input.text ?? "" } };
    const message: Record<string, unknown> = {
      // username-only users come without a phone number: `from` / `wa_id` only when the input has one
      ...(input.from ? { from: customer.phone } : {}),
      ...(customer.userId ? { from_user_id: customer.userId } : {}),
      id: input.id ?? newWamid(),
      timestamp: String(Math.floor(sentAtMs / 1000)),
      ...(input.context !== undefined ? { context: input.context } : {}),
      ...typed,
    };
    this.deps.store.recordInbound(phone.phoneNumberId, customer, sentAtMs);
    this.deps.store.addMessage({
      wamid: String(message.id),
      direction: "inbound",
      phoneNumberId: phone.phoneNumberId,
      customer: customer.phone,
      userId: customer.userId,
      type: String(message.type),
      text: displayText(message),
      payload: (message[String(message.type)] ?? {}) as Record<string, unknown>,
      at: nowMs,
      status: "delivered",
      statuses: [],
    });
    const contact = contactOf(customer);
    if (!input.from) delete contact.wa_id;
    return { phone, customer, message, contact };
  }
}

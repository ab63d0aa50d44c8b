import type { Logger } from "../observability/logger";
import type { Clock } from "../shared/clock";
import { contactOf, statusEnvelope } from "./envelope";
import { type MetaErrorCode, statusError } from "./meta-errors";
import { metaJson } from "./meta-json";
import type { Customer, SandboxStore } from "./store";
import type { SandboxMessage, SandboxPhoneNumber } from "./types";
import type { WebhookSender } from "./webhook-sender";

export interface StatusPlan {
  phone: SandboxPhoneNumber;
  customer: Customer;
  message: SandboxMessage;
  /** how the send addressed the user: `to` (phone) or `recipient` (BSUID) */
  addressedBy: "phone" | "bsuid";
  /** pricing category: "authentication" | "utility" | "marketing" | "service" */
  category: string;
  bizOpaque?: string;
  /** accepted, then failed with this code instead of sent/delivered/read */
  failure?: MetaErrorCode;
}

export interface StatusDelays {
  sent: number;
  delivered: number;
  read: number;
}

/**
 * Plays the asynchronous half of a send: status webhooks `sent` → `delivered` → `read` (or one `failed`), each signed
 * and posted after its delay from the send. Each waits for the previous one's first delivery, so the bot sees them in
 * order unless it makes Meta redeliver. Shapes: WA/webhooks/reference/messages/status (v23: `conversation` and
 * `pricing` with `pricing_model: "PMP"` on `sent` and `delivered`; `failed` carries `errors[]` and no pricing).
 */
export class StatusScheduler {
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly deps: {
      store: SandboxStore;
      sender: WebhookSender;
      delays: StatusDelays;
      autoRead: boolean;
      clock: Clock;
      logger: Logger;
    },
  ) {}

  schedule(plan: StatusPlan): void {
    const start = Date.now();
    const steps: ("sent" | "delivered" | "read" | "failed")[] = plan.failure ? ["failed"] : ["sent", "delivered", ...(this.deps.autoRead ? (["read"] as const) : [])];
    const delayOf = (s: string) => (s === "read" ? this.deps.delays.read : s === "delivered" ? this.deps.delays.delivered : this.deps.delays.sent);
    void (async () => {
      for (const step of steps) {
        await this.sleep(Math.max(0, start + delayOf(step) - Date.now()));
        if (this.closed) return;
        await this.post(plan, step).catch((err: unknown) => this.deps.logger.error({ err }, "sandbox: status webhook failed"));
      }
    })();
  }

  private async post(plan: StatusPlan, status: "sent" | "delivered" | "read" | "failed"): Promise<void> {
    const { customer, message } = plan;
    const nowMs = this.deps.clock.now().getTime();
    const obj: Record<string, unknown> = { id: message.wamid, status, timestamp: String(Math.floor(nowMs / 1000)) };
    const phoneKnown = customer.phone && (plan.addressedBy === "phone" || !customer.username);
    if (phoneKnown) obj.recipient_id = customer.phone;
    if (customer.userId) obj.recipient_user_id = customer.userId;
    if (plan.bizOpaque) obj.biz_opaque_callback_data = plan.bizOpaque;
    if (status === "sent" || status === "delivered") {
      const conv = this.deps.store.conversationFor(plan.phone.phoneNumberId, customer, plan.category, nowMs);
      const service = plan.category === "service";
      obj.conversation = {
        id: conv.id,
        ...(status === "sent" ? { expiration_timestamp: String(Math.floor(conv.expiresAt / 1000)) } : {}),
        origin: { type: plan.category },
      };
      obj.pricing = { billable: !service, pricing_model: "PMP", type: service ? "free_customer_service" : "regular", category: plan.category };
    }
    if (status === "failed" && plan.failure) obj.errors = [statusError(plan.failure)];
    // failed statuses omit contacts; the others carry the user's BSUID contact once BSUIDs exist (WA/business-scoped-user-ids)
    const contacts = status !== "failed" && customer.userId ? [contactOf(customer)] : undefined;
    this.deps.store.addStatus(message, { status, at: nowMs, ...(plan.failure ? { errorCode: plan.failure } : {}) });
    await this.deps.sender.deliver(metaJson(statusEnvelope(plan.phone, obj, contacts)), "status");
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

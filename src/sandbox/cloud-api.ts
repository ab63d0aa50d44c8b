import type { Clock } from "../shared/clock";
import { FaultBook } from "./faults";
import { digits, newWamid } from "./ids";
import { MetaError, authError, metaError, throttledError, unknownObjectError, type MetaErrorCode } from "./meta-errors";
import { markReadSchema, sendSchema, type SendBody } from "./send-schema";
import type { StatusScheduler } from "./status-scheduler";
import type { TemplateStatusBook } from "./template-statuses";
import { isBsuid, type SandboxStore } from "./store";
import type { SandboxPhoneNumber, TemplateDef } from "./types";
import { validateMessage, zodToMeta } from "./validate-message";

export interface GraphResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** hold the answer this long (timeout fault); the send is already accepted */
  holdMs?: number;
  errorCode?: number;
  wamid?: string;
}

function fromError(e: MetaError): GraphResult {
  return { status: e.httpStatus, body: e.body, headers: e.headers, errorCode: e.code };
}

/**
 * The Cloud API's `POST /{version}/{phone-number-id}/messages`, framework-free: auth, mark-as-read, validation,
 * faults, the 24-hour window, acceptance. Synchronous errors come back as Meta's JSON with Meta's HTTP status;
 * 131047 (window closed) and 131026 (undeliverable) are asynchronous: the send is accepted (200 + wamid) and a
 * `failed` status webhook follows — Meta's error-codes page lists both as webhook errors, and BSPs document the
 * same ("Your message will be accepted by the server but it will not be sent … You will receive a message_failed
 * webhook event", docs.amio.io/reference/whatsapp-messages-handling-errors).
 */
export class CloudApi {
  constructor(
    private readonly deps: {
      phones: SandboxPhoneNumber[];
      templates: TemplateDef[];
      store: SandboxStore;
      faults: FaultBook;
      statuses: StatusScheduler;
      clock: Clock;
      /** templates paused, disabled, rejected… (control API); none: every known template is approved */
      templateStatuses?: TemplateStatusBook;
    },
  ) {}

  handle(phoneNumberId: string, authorization: string | undefined, rawBody: unknown): GraphResult {
    const token = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1]?.trim();
    const phones = this.deps.phones;
    if (!token || !phones.some((p) => p.accessToken === token)) return fromError(authError(false));
    const phone = phones.find((p) => p.phoneNumberId === phoneNumberId);
    if (!phone) return fromError(unknownObjectError(phoneNumberId));
    if (phone.accessToken !== token) return fromError(authError(false));

    if (rawBody && typeof rawBody === "object" && "status" in rawBody) return this.markRead(phone, rawBody);

    const parsed = sendSchema.safeParse(rawBody ?? {});
    if (!parsed.success) return fromError(zodToMeta(parsed.error));
    const body = parsed.data as SendBody;
    const recipient = body.to ?? body.recipient; // Meta: when both are present, `to` takes precedence
    if (!recipient) return fromError(metaError(100, "The parameter to is required."));
    const byBsuid = body.to === undefined;
    if (byBsuid && !isBsuid(recipient)) return fromError(metaError(100, `Param recipient is not a valid business-scoped user id: ${recipient}`));
    if (!byBsuid && !/^\+?[\d\s()-]{5,20}$/.test(recipient)) return fromError(metaError(100, `Invalid parameter to: ${recipient}`));

    const known = this.deps.store.findCustomer(recipient);
    if (this.deps.faults.take(recipient, known, ["token_expired"])) return fromError(authError(true));

    const validated = validateMessage(body, this.deps.templates);
    if (validated instanceof MetaError) return fromError(validated);
    if (validated.template) {
      // Meta refuses a template that is not approved at send time (132015 paused, 132016 disabled, 132001)
      const refusal = this.deps.templateStatuses?.refusal(phone, validated.template.def.name, validated.template.def.language);
      if (refusal) return fromError(refusal);
    }
    if (byBsuid && validated.template?.def.category === "AUTHENTICATION") {
      // copy-code / one-tap / zero-tap authentication templates need a phone number (WA/business-scoped-user-ids)
      return fromError(metaError(131062));
    }

    const fault = this.deps.faults.take(recipient, known);
    const retryAfter: Record<string, string> = fault?.retryAfterSeconds !== undefined ? { "Retry-After": String(fault.retryAfterSeconds) } : {};
    if (fault?.type === "rate_limit") return fromError(metaError(130429, undefined, retryAfter));
    if (fault?.type === "pair_rate") return fromError(metaError(131056, undefined, retryAfter));
    if (fault?.type === "server_error") return fromError(metaError(131000, undefined, retryAfter));
    if (fault?.type === "service_unavailable") return fromError(metaError(131016, undefined, retryAfter));
    if (fault?.type === "too_many_requests") return fromError(throttledError(retryAfter));

    const customer = this.deps.store.upsertCustomer(byBsuid ? { userId: recipient } : { phone: recipient });
    const now = this.deps.clock.now().getTime();
    const isTemplate = validated.type === "template";
    let failure: MetaErrorCode | undefined;
    if (fault?.type === "undeliverable") failure = 131026;
    else if (!isTemplate && !this.deps.store.windowOpen(phone.phoneNumberId, customer, now)) failure = 131047;

    const wamid = newWamid();
    const message = {
      wamid,
      direction: "outbound" as const,
      phoneNumberId: phone.phoneNumberId,
      customer: customer.phone,
      userId: customer.userId,
      type: validated.type,
      text: validated.text,
      payload: validated.payload,
      ...(validated.buttons ? { buttons: validated.buttons } : {}),
      at: now,
      status: "accepted" as const,
      statuses: [],
    };
    this.deps.store.addMessage(message);
    this.deps.statuses.schedule({
      phone,
      customer,
      message,
      addressedBy: byBsuid ? "bsuid" : "phone",
      category: isTemplate ? (validated.template?.def.category.toLowerCase() ?? "utility") : "service",
      bizOpaque: body.biz_opaque_callback_data,
      failure,
    });

    const contact = byBsuid ? { input: recipient, user_id: recipient } : { input: recipient, wa_id: digits(recipient) };
    const response = {
      messaging_product: "whatsapp",
      contacts: [contact],
      messages: [isTemplate ? { id: wamid, message_status: "accepted" } : { id: wamid }],
    };
    return { status: 200, body: response, wamid, ...(fault?.type === "timeout" ? { holdMs: fault.timeoutMs ?? 15_000 } : {}) };
  }

  /** WA/messages/mark-message-as-read: `{"success": true}` for an inbound wamid of this business number. */
  private markRead(phone: SandboxPhoneNumber, rawBody: unknown): GraphResult {
    const parsed = markReadSchema.safeParse(rawBody);
    if (!parsed.success) return fromError(zodToMeta(parsed.error));
    const message = this.deps.store.message(parsed.data.message_id);
    if (!message || message.direction !== "inbound" || message.phoneNumberId !== phone.phoneNumberId) {
      // Meta's exact answer for an unknown id is not documented; Graph's generic invalid-parameter error is used
      return fromError(metaError(100, `Invalid message_id: ${parsed.data.message_id}`));
    }
    // "also marks earlier messages as read": every earlier inbound message of that customer on this number
    const at = this.deps.clock.now().getTime();
    const customerKey = message.customer ?? message.userId;
    const thread = customerKey ? this.deps.store.conversation(customerKey, phone.phoneNumberId) : [message];
    for (const m of thread) {
      if (m.direction === "inbound" && m.at <= message.at && m.status !== "read") this.deps.store.addStatus(m, { status: "read", at });
    }
    return { status: 200, body: { success: true } };
  }
}

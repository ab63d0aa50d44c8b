import type { Tx } from "../db/prisma";
import type { InboundMessage } from "../ingest/envelope";
import type { OutboundContent } from "../messaging/outbox";
import type { TenantRecord } from "../tenants/tenant-directory";
import type { ContactRow } from "./contacts";

export interface SessionState {
  id: string;
  flow: string | null;
  flowVersion: number | null;
  step: string | null;
  variables: Record<string, unknown>;
  /** the flow engine's own bookkeeping (what the current step waits for) */
  state: Record<string, unknown>;
  expiresAt: Date | null;
  /** handed to a person: the bot stays quiet until released */
  handoffAt: Date | null;
  version: number;
}

/** Everything a handler may look at for one inbound message. */
export interface RouteContext {
  tx: Tx;
  tenant: TenantRecord;
  contact: ContactRow;
  isNewContact: boolean;
  message: InboundMessage;
  session: SessionState;
  now: Date;
}

/** What handling produced: replies, in order, and the session as it should be saved (undefined = unchanged). */
export interface RouteResult {
  replies: OutboundContent[];
  session?: Partial<Pick<SessionState, "flow" | "flowVersion" | "step" | "variables" | "state" | "expiresAt" | "handoffAt">>;
  /** the inbound message carried a secret (a code, a PIN): store it redacted */
  redactInbound?: boolean;
  /** work to hand to the queues once the transaction has committed */
  afterCommit?: () => Promise<void>;
}

/**
 * A conversation handler. Handlers are tried in order; the first that returns a result owns the message.
 * The flow engine and the OTP chat handler plug in here ahead of the greeting fallback.
 */
export interface MessageHandler {
  readonly name: string;
  /**
   * Whether `handle` may use `ctx.tx` (Prisma) for this message. A handler that answers `false` must not touch
   * `ctx.tx` for it: the message is then handled on the plain SQL path, without a Prisma transaction.
   * Absent = it may (the safe default).
   */
  usesTx?(message: InboundMessage): boolean;
  handle(ctx: RouteContext): Promise<RouteResult | null>;
}

export class Router {
  constructor(private readonly handlers: MessageHandler[]) {}

  /** Whether some handler may need the Prisma transaction for this message. */
  usesTx(message: InboundMessage): boolean {
    return this.handlers.some((h) => (h.usesTx ? h.usesTx(message) : true));
  }

  async route(ctx: RouteContext): Promise<RouteResult & { handler: string | null }> {
    for (const h of this.handlers) {
      const result = await h.handle(ctx);
      if (result) return { ...result, handler: h.name };
    }
    return { replies: [], handler: null };
  }
}

export function textOf(message: InboundMessage): string | null {
  const m = message as Record<string, any>;
  switch (message.type) {
    case "text":
      return typeof m.text?.body === "string" ? m.text.body : null;
    case "button":
      return typeof m.button?.text === "string" ? m.button.text : null;
    case "interactive":
      return m.interactive?.button_reply?.title ?? m.interactive?.list_reply?.title ?? null;
    default:
      return null;
  }
}

/**
 * Until a flow takes the contact, the bot greets: a new contact's first message gets a welcome, later texts a
 * short pointer to what the bot does. Reactions, statuses, system notices and media get no reply.
 */
export const greetingHandler: MessageHandler = {
  name: "greeting",
  usesTx: () => false,
  async handle({ isNewContact, contact, message, tenant }) {
    const text = textOf(message);
    if (text === null) return null;
    const name = contact.profileName ? ` ${contact.profileName}` : "";
    const body = isNewContact
      ? `Hi${name}! 👋 This is the verification assistant of ${tenant.name}. I send and check one-time codes for your account. We will never ask you to share a code or PIN with anyone.`
      : `I'm the verification assistant of ${tenant.name}. When you request a code on our website or app, it arrives here. Never share it with anyone, not even with us.`;
    return { replies: [{ type: "text", text: { body, preview_url: false } }] };
  },
};

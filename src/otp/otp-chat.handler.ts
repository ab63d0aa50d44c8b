import { STEP_UP_PURPOSE_PREFIX } from "../tenants/step-up";
import type { MessageHandler, RouteContext, RouteResult } from "../conversation/router";
import { textOf } from "../conversation/router";
import type { InboundMessage } from "../ingest/envelope";
import type { OutboundContent } from "../messaging/outbox";
import { extractCode } from "./codes";
import { emptyPostCommit, type DeliveryPlanner } from "./delivery";
import { OtpError } from "./errors";
import { NEW_CODE_BUTTON_ID, NOT_ME_BUTTON_ID, NOT_ME_KEYWORDS, otpTexts } from "./texts";
import type { VerificationService } from "./verification.service";

/** Meta's "I didn't request a code" button on authentication templates arrives as this payload. */
export const DID_NOT_REQUEST_CODE = "DID_NOT_REQUEST_CODE";
/** How long after a code expired a typed code still gets the "expired, here's a new one" answer. */
const RECENTLY_EXPIRED_MS = 60 * 60_000;

const text = (body: string): OutboundContent => ({ type: "text", text: { body, preview_url: false } });
const withButton = (body: string, id: string, title: string): OutboundContent => ({
  type: "interactive",
  interactive: { type: "button", body: { text: body }, action: { buttons: [{ type: "reply", reply: { id, title } }] } },
});

function buttonId(message: InboundMessage): string | null {
  const m = message as Record<string, any>;
  if (message.type === "button") return typeof m.button?.payload === "string" ? m.button.payload : null;
  if (message.type === "interactive") return m.interactive?.button_reply?.id ?? m.interactive?.list_reply?.id ?? null;
  return null;
}

function isNotMe(message: InboundMessage, button: string | null, typed: string | null): boolean {
  return (
    button === DID_NOT_REQUEST_CODE ||
    button === NOT_ME_BUTTON_ID ||
    (message.type === "text" && typed !== null && NOT_ME_KEYWORDS.includes(typed.trim().toLowerCase().replace(/[’`]/g, "'").replace(/[.!]+$/, "")))
  );
}

/**
 * Codes in the chat: a contact with a pending verification who types the code approves it (the same counting
 * and expiry as the check endpoint), unless a flow step is waiting for other input from them. "I didn't request
 * this" (Meta's button, our quick reply, or a keyword) cancels pending codes, blocks new ones and advises.
 */
export function otpChatHandler(deps: { verifications: VerificationService; delivery: DeliveryPlanner }): MessageHandler {
  const run = async (ctx: RouteContext, fn: (ext: { tx: RouteContext["tx"]; post: ReturnType<typeof emptyPostCommit> }) => Promise<RouteResult>) => {
    const post = emptyPostCommit();
    const result = await fn({ tx: ctx.tx, post });
    return { ...result, afterCommit: () => deps.delivery.afterCommit(post) };
  };

  return {
    name: "otp",
    // the transaction is used only for "not me", "new code" and text that holds a code; other messages pass by
    usesTx(message) {
      const button = buttonId(message);
      const typed = textOf(message);
      if (isNotMe(message, button, typed) || button === NEW_CODE_BUTTON_ID) return true;
      if (message.type !== "text" || typed === null) return false;
      return extractCode(typed) !== null;
    },
    async handle(ctx) {
      const phone = ctx.contact.phoneE164;
      if (!phone) return null; // codes go to phone numbers only (Meta: no authentication templates to BSUIDs)
      const who = { tenantId: ctx.tenant.id, actor: `chat:${ctx.contact.id}` };
      const locale = ctx.contact.locale ?? "en_US";
      const button = buttonId(ctx.message);
      const typed = textOf(ctx.message);

      if (isNotMe(ctx.message, button, typed)) {
        return run(ctx, async (ext) => {
          await deps.verifications.report(who, phone, button ?? "keyword", ext);
          return { replies: [text(otpTexts.reported(localeOf(ctx, locale)))] };
        });
      }

      if (button === NEW_CODE_BUTTON_ID) {
        const last = await ctx.tx.verification.findFirst({ where: { tenantId: ctx.tenant.id, to: phone }, orderBy: { createdAt: "desc" } });
        if (!last) return null;
        return run(ctx, async (ext) => {
          try {
            await deps.verifications.create(who, { to: phone, purpose: last.purpose, locale: last.locale ?? undefined }, ext);
            return { replies: [] }; // the code itself is the answer
          } catch (err) {
            if (err instanceof OtpError) return { replies: [text(otpTexts.newCodeRefused(localeOf(ctx, last.locale), err.retryAfterSeconds))] };
            throw err;
          }
        });
      }

      if (ctx.message.type !== "text" || typed === null) return null;
      // a flow step waiting for this contact's input gets the text, even if it looks like a code
      if (ctx.session.step && (!ctx.session.expiresAt || ctx.session.expiresAt > ctx.now)) return null;
      const code = extractCode(typed);
      if (!code) return null;

      // a step-up code confirms an admin change through the admin API only: typed here it approves nothing
      const pending = await ctx.tx.verification.findFirst({
        where: { tenantId: ctx.tenant.id, to: phone, status: "pending", NOT: { purpose: { startsWith: STEP_UP_PURPOSE_PREFIX } } },
        orderBy: { createdAt: "desc" },
      });
      if (!pending) {
        const recent = await ctx.tx.verification.findFirst({
          where: { tenantId: ctx.tenant.id, to: phone, status: "expired", endedAt: { gte: new Date(ctx.now.getTime() - RECENTLY_EXPIRED_MS) } },
          orderBy: { createdAt: "desc" },
        });
        if (!recent) return null;
        const l = localeOf(ctx, recent.locale);
        return { replies: [withButton(otpTexts.expired(l), NEW_CODE_BUTTON_ID, otpTexts.newCodeTitle(l))], redactInbound: true };
      }
      const l = localeOf(ctx, pending.locale);
      if (pending.expiresAt <= ctx.now) {
        await deps.verifications.expire(pending.id, who.actor);
        return { replies: [withButton(otpTexts.expired(l), NEW_CODE_BUTTON_ID, otpTexts.newCodeTitle(l))], redactInbound: true };
      }
      return run(ctx, async (ext) => {
        try {
          const { verification, valid } = await deps.verifications.check(who, { id: pending.id, code }, ext);
          if (valid) return { replies: [text(otpTexts.approved(l))], redactInbound: true };
          if (verification.status === "max_attempts_reached") return { replies: [text(otpTexts.locked(l))], redactInbound: true };
          return { replies: [text(otpTexts.wrong(l, verification.maxAttempts - verification.attempts))], redactInbound: true };
        } catch (err) {
          if (err instanceof OtpError && err.code === "rate_limited") return { replies: [text(otpTexts.newCodeRefused(l, err.retryAfterSeconds))], redactInbound: true };
          if (err instanceof OtpError && err.code === "verification_not_found") {
            return { replies: [withButton(otpTexts.expired(l), NEW_CODE_BUTTON_ID, otpTexts.newCodeTitle(l))], redactInbound: true };
          }
          throw err;
        }
      });
    },
  };
}

function localeOf(ctx: RouteContext, fallback: string | null | undefined): string {
  return ctx.contact.locale ?? fallback ?? "en_US";
}

import { NOT_STEP_UP } from "../tenants/step-up-purpose";
import type { MessageHandler, RouteContext, RouteResult } from "../conversation/router";
import { textOf } from "../conversation/router";
import type { InboundMessage } from "../ingest/envelope";
import type { OutboundContent } from "../messaging/outbox";
import { extractCode } from "./codes";
import { emptyPostCommit, type DeliveryPlanner } from "./delivery";
import { readSettings } from "../tenants/settings";
import { OtpError } from "./errors";
import { localeFor } from "./locale";
import { normalizeNumber } from "./phone";
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

/** A button that belongs to a code message: Meta's "I didn't request a code", or our own quick reply under a code. */
function isCodeNotMe(button: string | null): boolean {
  return button === DID_NOT_REQUEST_CODE || button === NOT_ME_BUTTON_ID;
}

/** "not me", "no fui yo", "não fui eu"… typed: what it refers to depends on what the bot last asked. */
function isNotMeKeyword(message: InboundMessage, typed: string | null): boolean {
  return message.type === "text" && typed !== null && NOT_ME_KEYWORDS.includes(typed.trim().toLowerCase().replace(/[’`]/g, "'").replace(/[.!]+$/, ""));
}

function isNotMe(message: InboundMessage, button: string | null, typed: string | null): boolean {
  return isCodeNotMe(button) || isNotMeKeyword(message, typed);
}

/** The flow whose question a typed "not me" answers as "this login wasn't me" (flows/login-notice.yaml). */
export const LOGIN_NOTICE_FLOW = "login-notice";
/** The login notice's "This wasn't me" button (flows/login-notice.yaml; also a button trigger of recover). */
export const LOGIN_NOT_ME_BUTTON = { id: "login_not_me", title: "This wasn't me" } as const;

/** The same inbound message (id, sender, time) as a tap on a reply button. */
export function asButtonReply(message: InboundMessage, button: { id: string; title: string }): InboundMessage {
  const { text: _text, ...rest } = message as InboundMessage & { text?: unknown };
  return { ...rest, type: "interactive", interactive: { type: "button_reply", button_reply: { id: button.id, title: button.title } } } as InboundMessage;
}

/** A typed "not me" refers to a code sent (or still pending) this recently; with none, nothing is blocked. */
const NOT_ME_CODE_WINDOW_MS = 60 * 60_000;

export interface OtpChatDeps {
  verifications: VerificationService;
  delivery: DeliveryPlanner;
  /**
   * A typed "not me" while the bot's last question is a login notice: answered as the notice's "This wasn't me"
   * (the login is ended, the business told, and recover offered; once the notice's session is over, recover starts).
   */
  loginNotMe?: (ctx: RouteContext) => Promise<RouteResult | null>;
}

/**
 * Codes in the chat: a contact with a pending verification who types the code approves it (the same counting
 * and expiry as the check endpoint), unless a flow step is waiting for other input from them; when the tenant asks
 * for the PIN after codes of that purpose (pin.requireFor) and the contact has one, the PIN is asked next and
 * approves it. "I didn't request this" (Meta's button or our quick reply under a code) cancels pending codes,
 * blocks new ones and advises. A typed "not me" is read against what the bot last asked: a login notice → that
 * login is ended and recover offered (nothing blocked: the owner must stay able to recover); a code sent in the
 * last hour → as the button; nothing → advice only, no block.
 */
export function otpChatHandler(deps: OtpChatDeps): MessageHandler {
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

      if (isNotMeKeyword(ctx.message, typed) && !isCodeNotMe(button)) {
        // the bot's last question was a login notice (its session, live or just over): "this login wasn't me"
        if (ctx.session.flow === LOGIN_NOTICE_FLOW && ctx.session.step && deps.loginNotMe) {
          const answered = await deps.loginNotMe(ctx);
          if (answered) return answered;
        }
        const since = new Date(ctx.now.getTime() - NOT_ME_CODE_WINDOW_MS);
        const recent = await ctx.tx.verification.findFirst({
          where: { tenantId: ctx.tenant.id, to: phone, ...NOT_STEP_UP, OR: [{ status: "pending" }, { lastSentAt: { gte: since } }, { createdAt: { gte: since } }] },
          select: { id: true },
        });
        // no code to refer to: blocking would only lock the owner out of recovering
        if (!recent) return { replies: [text(otpTexts.notMeNothingPending(contactLocale(ctx)))] };
      }
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
        where: { tenantId: ctx.tenant.id, to: phone, status: "pending", ...NOT_STEP_UP },
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
      if (pending.codeVerifiedAt) {
        // the code was right: this is the PIN (two-step verification, pin.requireFor)
        const pin = typed.replace(/\s/g, "");
        if (!/^\d{6}$/.test(pin)) return { replies: [text(otpTexts.pinFormat(l))], redactInbound: true };
        return run(ctx, async (ext) => {
          try {
            const r = await deps.verifications.checkPin(who, { id: pending.id, pin }, ext);
            if (r.valid) return { replies: [text(otpTexts.approved(l))], redactInbound: true };
            if (r.pinLocked) return { replies: [text(otpTexts.pinLocked(l))], redactInbound: true };
            return { replies: [text(otpTexts.pinWrong(l, r.pinAttemptsRemaining ?? 0))], redactInbound: true };
          } catch (err) {
            if (err instanceof OtpError && err.code === "rate_limited") return { replies: [text(otpTexts.newCodeRefused(l, err.retryAfterSeconds))], redactInbound: true };
            if (err instanceof OtpError && err.code === "verification_not_found") {
              return { replies: [withButton(otpTexts.expired(l), NEW_CODE_BUTTON_ID, otpTexts.newCodeTitle(l))], redactInbound: true };
            }
            throw err;
          }
        });
      }
      return run(ctx, async (ext) => {
        try {
          const { verification, valid, pinRequired } = await deps.verifications.check(who, { id: pending.id, code }, ext);
          if (valid) return { replies: [text(otpTexts.approved(l))], redactInbound: true };
          if (pinRequired) return { replies: [text(otpTexts.pinAsk(l))], redactInbound: true };
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

/** The contact's language: chosen, else from its number's country (as the journeys pick it). */
function contactLocale(ctx: RouteContext): string {
  let country: string | undefined;
  try {
    country = ctx.contact.phoneE164 ? normalizeNumber(ctx.contact.phoneE164).country : undefined;
  } catch {
    country = undefined;
  }
  return localeFor(ctx.contact.locale, country, readSettings(ctx.tenant.settings).otp.defaultLocale);
}

function localeOf(ctx: RouteContext, fallback: string | null | undefined): string {
  return ctx.contact.locale ?? fallback ?? "en_US";
}

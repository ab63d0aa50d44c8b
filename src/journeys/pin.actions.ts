import { randomBytes } from "node:crypto";
import { recordAudit } from "../audit/audit";
import type { Config } from "../config/env";
import type { PrismaClient, Tx } from "../db/prisma";
import type { ActionContext, ActionResult } from "../flows/flow.handler";
import type { Logger } from "../observability/logger";
import { pick, type Locale } from "../otp/locale";
import type { PinService } from "../pin/pin.service";
import { isPlainAddress, maskEmail, type EmailSender } from "../providers/email/ports";
import type { Clock } from "../shared/clock";
import { escapeHtml } from "../shared/html";
import type { Keyring } from "../shared/crypto";
import { actionActor, type ActionRegistry } from "./actions";

/**
 * Two-step verification, the forgotten-PIN side: the `pin_status`, `request_pin_reset` and `remove_pin` actions of
 * flows' `action` steps (src/flows/schema.ts ACTIONS).
 *
 * - `pin_status` (optional `purpose`) → `{set, hasEmail, proven, required, resetPending, resetAvailableAt?}`: whether
 *   the contact has a PIN, a recovery email, whether the PIN was proven in the last PIN_PROOF_MINUTES, whether the
 *   tenant asks for it after a code of `purpose` (`pin.requireFor`), and a pending waiting-period reset (ISO time).
 * - `request_pin_reset`, with a recovery email (and an email channel): a single-use link
 *   `{PUBLIC_BASE_URL}/pin-reset/{token}`, valid PIN_RESET_LINK_MINUTES, emailed in the contact's locale
 *   → `{sent: "email", emailMasked}` (`throttled: true` when a link was sent less than a minute ago and none was sent
 *   again). The token is 32 random bytes (base64url); only its keyed hash is stored. A new link replaces the
 *   contact's older unused ones. Without a recovery email (or without an email channel): the tenant's waiting
 *   period, counted from this request → `{sent: "wait", availableAt, requested}` (`requested: true` when this
 *   request started it); a request once it has passed removes the PIN → `{sent: "removed"}`. A right PIN, or
 *   `cancel_pin_reset`, cancels the pending reset. No PIN → error `pin_not_set`.
 * - `cancel_pin_reset` → `{canceled}`: the owner's "that wasn't me" on a pending reset.
 * - `remove_pin` → `{removed}`, and `set_recovery_email`: only with the PIN proven in the last PIN_PROOF_MINUTES
 *   (typed right, or just set), else error `pin_required`: whoever holds the number cannot drop the second lock or
 *   point its recovery at their own mailbox.
 *
 * Nothing here logs an email address in clear or a token; flows see the address masked only.
 */
export interface PinActionsDeps {
  prisma: PrismaClient;
  pins: PinService;
  keyring: Keyring;
  clock: Clock;
  logger: Logger;
  /** the email channel (createEmailSender); without it, resets always take the waiting period */
  email?: EmailSender;
  config: Pick<Config, "PUBLIC_BASE_URL" | "PIN_RESET_LINK_MINUTES">;
}

export const PIN_RESET_PATH = "/pin-reset";
/** A reset token as it appears in links: 32 bytes, base64url without padding. */
export const PIN_RESET_TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
/** A second link within this time of the last one is not sent (a chat loop or an impatient customer). */
export const PIN_RESET_RESEND_COOLDOWN_MS = 60_000;

/** The stored form of a reset token: HMAC-SHA256 under the keyring's hashing key, with its own label. */
export function pinResetTokenHash(keyring: Keyring, token: string): string {
  return keyring.keyedHash("otp-hash", "pin-reset-link", token);
}

/** Every stored form a link's token hash may have (current and SECRETS_KEY_PREVIOUS keys): look up with `IN`. */
export function pinResetTokenHashes(keyring: Keyring, token: string): string[] {
  return keyring.hashCandidates("otp-hash", "pin-reset-link", token);
}

export function newPinResetToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The reset link for a token: under PUBLIC_BASE_URL (its path prefix kept). */
export function pinResetLink(publicBaseUrl: string, token: string): string {
  return `${publicBaseUrl.replace(/\/+$/, "")}${PIN_RESET_PATH}/${token}`;
}

/** Makes the contact's unused reset links unusable (after a reset, or when a newer link replaces them). */
export async function invalidatePinResetTokens(tx: Pick<Tx, "pinResetToken">, contactId: string, now: Date, exceptId?: string): Promise<number> {
  const { count } = await tx.pinResetToken.updateMany({
    where: { contactId, usedAt: null, ...(exceptId ? { id: { not: exceptId } } : {}) },
    data: { usedAt: now },
  });
  return count;
}

interface EmailTexts {
  subject: string;
  text: (p: { business: string; link: string; minutes: number }) => string;
  intro: (business: string) => string;
  button: string;
  after: (minutes: number) => string;
}

const EMAIL: Record<Locale, EmailTexts> = {
  en_US: {
    subject: "Reset your PIN",
    intro: (b) => `Someone, hopefully you, asked in WhatsApp to reset the PIN you use with ${b}. Open this link to remove your PIN, then set a new one in the chat:`,
    button: "Reset my PIN",
    after: (m) => `The link works once and expires in ${m} minutes. If you did not ask for this, ignore this email: your PIN stays as it is.`,
    text: ({ business, link, minutes }) => `${EMAIL.en_US.intro(business)}\n\n${link}\n\n${EMAIL.en_US.after(minutes)}\n`,
  },
  es: {
    subject: "Restablece tu PIN",
    intro: (b) => `Alguien, esperamos que tú, pidió en WhatsApp restablecer el PIN que usas con ${b}. Abre este enlace para quitar tu PIN y luego crea uno nuevo en el chat:`,
    button: "Restablecer mi PIN",
    after: (m) => `El enlace sirve una sola vez y caduca en ${m} minutos. Si no lo pediste, ignora este correo: tu PIN no cambia.`,
    text: ({ business, link, minutes }) => `${EMAIL.es.intro(business)}\n\n${link}\n\n${EMAIL.es.after(minutes)}\n`,
  },
  pt_BR: {
    subject: "Redefina seu PIN",
    intro: (b) => `Alguém, esperamos que você, pediu no WhatsApp para redefinir o PIN que você usa com ${b}. Abra este link para remover seu PIN e depois crie um novo no chat:`,
    button: "Redefinir meu PIN",
    after: (m) => `O link funciona uma única vez e expira em ${m} minutos. Se você não pediu isso, ignore este e-mail: seu PIN continua o mesmo.`,
    text: ({ business, link, minutes }) => `${EMAIL.pt_BR.intro(business)}\n\n${link}\n\n${EMAIL.pt_BR.after(minutes)}\n`,
  },
};

/** The reset email in the contact's locale (en_US, es, pt_BR; others fall back by language, then English). */
export function pinResetEmail(locale: string, p: { business: string; link: string; minutes: number }): { subject: string; text: string; html: string } {
  const t = pick(EMAIL, locale);
  const html = [
    "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">",
    `<p>${escapeHtml(t.intro(p.business))}</p>`,
    `<p><a href="${escapeHtml(p.link)}">${escapeHtml(t.button)}</a></p>`,
    `<p style="color:#555">${escapeHtml(t.after(p.minutes))}</p>`,
    "</body></html>",
  ].join("");
  return { subject: t.subject, text: t.text(p), html };
}

export function createPinActions(deps: PinActionsDeps): ActionRegistry {
  const { prisma, pins, keyring, logger } = deps;
  const log = logger.child({ component: "pin-actions" });
  const emailChannel = (): { email: EmailSender; base: string } | null =>
    deps.email && deps.config.PUBLIC_BASE_URL ? { email: deps.email, base: deps.config.PUBLIC_BASE_URL } : null;

  async function removeWith(ctx: ActionContext, via: "wait" | "flow"): Promise<boolean> {
    return prisma.$transaction(async (tx) => {
      const had = await pins.has(tx, ctx.contact.id);
      await invalidatePinResetTokens(tx, ctx.contact.id, ctx.now);
      if (!had) return false;
      await pins.remove(tx, ctx.contact.id);
      await recordAudit(tx, { tenantId: ctx.tenant.id, type: "pin.removed", actor: actionActor(ctx, "customer"), subject: ctx.contact.id, data: { via, flow: ctx.flow }, at: ctx.now });
      return true;
    });
  }

  async function byEmail(ctx: ActionContext, address: string, channel: { email: EmailSender; base: string }): Promise<ActionResult> {
    const emailMasked = maskEmail(address)!;
    const minutes = deps.config.PIN_RESET_LINK_MINUTES;
    const recent = await prisma.pinResetToken.findFirst({
      where: { contactId: ctx.contact.id, usedAt: null, expiresAt: { gt: ctx.now }, createdAt: { gt: new Date(ctx.now.getTime() - PIN_RESET_RESEND_COOLDOWN_MS) } },
      select: { id: true },
    });
    if (recent) {
      log.info({ tenantId: ctx.tenant.id, contactId: ctx.contact.id }, "pin reset link not sent again (cool-down)");
      return { ok: true, data: { sent: "email", emailMasked, throttled: true } };
    }
    const token = newPinResetToken();
    const expiresAt = new Date(ctx.now.getTime() + minutes * 60_000);
    const row = await prisma.pinResetToken.create({
      data: { tenantId: ctx.tenant.id, contactId: ctx.contact.id, tokenHash: pinResetTokenHash(keyring, token), expiresAt, createdAt: ctx.now },
      select: { id: true },
    });
    const message = pinResetEmail(ctx.locale, { business: ctx.tenant.name, link: pinResetLink(channel.base, token), minutes });
    let sent;
    try {
      sent = await channel.email.send({ to: address, ...message });
    } catch (err) {
      sent = { ok: false as const, error: err instanceof Error ? err.name : "email_error" };
    }
    if (!sent.ok) {
      await prisma.pinResetToken.deleteMany({ where: { id: row.id } });
      log.warn({ tenantId: ctx.tenant.id, contactId: ctx.contact.id, error: sent.error }, "pin reset email not sent");
      return { ok: false, error: "email_failed" };
    }
    await prisma.$transaction(async (tx) => {
      // only the newest link works
      await invalidatePinResetTokens(tx, ctx.contact.id, ctx.now, row.id);
      await recordAudit(tx, { tenantId: ctx.tenant.id, type: "pin.reset_requested", actor: actionActor(ctx, "customer"), subject: ctx.contact.id, data: { via: "email", flow: ctx.flow }, at: ctx.now });
    });
    log.info({ tenantId: ctx.tenant.id, contactId: ctx.contact.id, expiresAt: expiresAt.toISOString() }, "pin reset link emailed");
    return { ok: true, data: { sent: "email", emailMasked } };
  }

  return {
    async pin_status(ctx, params) {
      const set = await pins.has(prisma, ctx.contact.id);
      if (!set) return { ok: true, data: { set: false, hasEmail: false, proven: false, required: false, resetPending: false } };
      const email = await pins.recoveryEmail(prisma, ctx.contact.id);
      const pending = await pins.pendingReset(prisma, ctx.contact.id);
      const proven = (await pins.provenWithin(prisma, ctx.contact.id)) === true;
      const required = typeof params.purpose === "string" ? await pins.requiredFor(prisma, ctx.tenant.id, params.purpose) : true;
      return {
        ok: true,
        data: { set: true, hasEmail: !!email, proven, required, resetPending: pending !== null, ...(pending ? { resetAvailableAt: pending.availableAt.toISOString() } : {}) },
      };
    },

    async request_pin_reset(ctx) {
      if (!(await pins.has(prisma, ctx.contact.id))) return { ok: false, error: "pin_not_set" };
      const address = (await pins.recoveryEmail(prisma, ctx.contact.id))?.trim() ?? null;
      if (address) {
        const channel = emailChannel();
        if (channel && isPlainAddress(address)) return byEmail(ctx, address, channel);
        log.warn(
          { tenantId: ctx.tenant.id, contactId: ctx.contact.id, reason: channel ? "unusable_address" : deps.email ? "no_public_base_url" : "no_email_provider" },
          "pin reset by email unavailable: the waiting period applies",
        );
      }
      // the wait counts from the request: whoever holds the number now cannot drop a PIN set long ago at once
      const r = await prisma.$transaction(async (tx) => {
        const req = await pins.requestReset(tx, ctx.contact.id);
        if (req?.state === "requested") {
          await recordAudit(tx, { tenantId: ctx.tenant.id, type: "pin.reset_requested", actor: actionActor(ctx, "customer"), subject: ctx.contact.id, data: { via: "wait", flow: ctx.flow, availableAt: req.availableAt.toISOString() }, at: ctx.now });
        }
        return req;
      });
      if (!r) return { ok: false, error: "pin_not_set" };
      if (r.state !== "due") {
        log.info({ tenantId: ctx.tenant.id, contactId: ctx.contact.id, availableAt: r.availableAt.toISOString(), started: r.state === "requested" }, "pin reset: waiting period");
        return { ok: true, data: { sent: "wait", availableAt: r.availableAt.toISOString(), requested: r.state === "requested" } };
      }
      await removeWith(ctx, "wait");
      return { ok: true, data: { sent: "removed" } };
    },

    async cancel_pin_reset(ctx) {
      const canceled = await prisma.$transaction(async (tx) => {
        const done = await pins.cancelReset(tx, ctx.contact.id);
        if (done) await recordAudit(tx, { tenantId: ctx.tenant.id, type: "pin.reset_canceled", actor: actionActor(ctx, "customer"), subject: ctx.contact.id, data: { flow: ctx.flow }, at: ctx.now });
        return done;
      });
      if (canceled) log.info({ tenantId: ctx.tenant.id, contactId: ctx.contact.id }, "pending pin reset cancelled by the customer");
      return { ok: true, data: { canceled } };
    },

    async remove_pin(ctx) {
      const proven = await pins.provenWithin(prisma, ctx.contact.id);
      if (proven === false) return { ok: false, error: "pin_required" };
      return { ok: true, data: { removed: await removeWith(ctx, "flow") } };
    },

    /** `params.email`: the recovery email for a forgotten PIN (the contact must have a PIN). */
    async set_recovery_email(ctx, params) {
      const email = typeof params.email === "string" ? params.email.trim().toLowerCase() : "";
      if (!isPlainAddress(email)) return { ok: false, error: "invalid_email" };
      const proven = await pins.provenWithin(prisma, ctx.contact.id);
      if (proven === "no_pin") return { ok: false, error: "pin_not_set" };
      if (!proven) return { ok: false, error: "pin_required" };
      const res = await prisma.contactPin.updateMany({ where: { tenantId: ctx.tenant.id, contactId: ctx.contact.id }, data: { recoveryEmail: email } });
      if (res.count === 0) return { ok: false, error: "pin_not_set" };
      await recordAudit(prisma, { tenantId: ctx.tenant.id, type: "pin.recovery_email_set", actor: actionActor(ctx, `flow:${ctx.flow}`), subject: ctx.contact.id, data: {}, at: ctx.now });
      return { ok: true, data: { emailMasked: maskEmail(email) } };
    },
  };
}

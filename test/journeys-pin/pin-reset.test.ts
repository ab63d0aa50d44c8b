import express from "express";
import pino from "pino";
import request from "supertest";
import { createPrisma, type PrismaClient } from "../../src/db/prisma";
import type { ActionContext, ActionExecutor } from "../../src/flows/flow.handler";
import { errorHandler } from "../../src/http/errors";
import { pinResetRoutes } from "../../src/http/pin-reset.routes";
import { createPinActions, pinResetEmail, pinResetTokenHash, type PinActionsDeps } from "../../src/journeys/pin.actions";
import { PinService } from "../../src/pin/pin.service";
import { createEmailSender, maskEmail, RecordingEmailSender, SmtpEmailSender } from "../../src/providers/email";
import { ManualClock } from "../../src/shared/clock";
import { Keyring } from "../../src/shared/crypto";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";

/** The forgotten-PIN actions and the emailed reset link, on a real database with a manual clock. */
const BASE = "https://verify.example.test";
let db: { url: string; drop: () => Promise<void> };
let prisma: PrismaClient;
const clock = new ManualClock(Date.parse("2026-03-01T10:00:00Z"));
const logLines: string[] = [];
const logger = pino({ level: "debug" }, { write: (s: string) => void logLines.push(s) });
const pins = new PinService({ clock, logger });
const keyring = new Keyring(Buffer.alloc(32, 7));
const email = new RecordingEmailSender({ clock, logger });
let tenant: ActionContext["tenant"];
let app: express.Express;
let n = 0;

const deps = (over: Partial<PinActionsDeps> = {}): PinActionsDeps => ({
  prisma, pins, keyring, clock, logger, email, config: { PUBLIC_BASE_URL: BASE, PIN_RESET_LINK_MINUTES: 30 }, ...over,
});
const actions = () => createPinActions(deps());
const run = (name: string, ctx: ActionContext, registry = actions()) => (registry[name] as ActionExecutor)(ctx, {});

beforeAll(async () => {
  db = await createTestDatabase();
  prisma = createPrisma(db.url, 8);
  const t = await prisma.tenant.create({
    data: { name: "Acme Bank", phoneNumberId: "pn-pin", displayPhoneNumber: "15550001", accessTokenEnc: "e", settings: { pin: { maxAttempts: 5, lockMinutes: 30, resetWaitDays: 7 } } },
  });
  tenant = { id: t.id, name: t.name, phoneNumberId: t.phoneNumberId, displayPhoneNumber: t.displayPhoneNumber, wabaId: null, settings: t.settings as Record<string, unknown> };
  app = express();
  app.use(pinResetRoutes({ prisma, pins, keyring, clock, logger, publicBaseUrl: BASE }));
  app.use(errorHandler(logger));
});
afterAll(async () => {
  await prisma.$disconnect();
  await db.drop();
});
beforeEach(() => email.clear());

/** A contact with a PIN (and a recovery email when given), as an action step would see it. */
async function contactWithPin(recoveryEmail: string | null, locale: string | null = null): Promise<ActionContext> {
  n++;
  const c = await prisma.contact.create({ data: { tenantId: tenant.id, waId: `3466600${String(n).padStart(4, "0")}`, phoneE164: `+3466600${String(n).padStart(4, "0")}`, locale } });
  expect(await pins.set(prisma, { tenantId: tenant.id, contactId: c.id, pin: "580314", recoveryEmail })).toEqual({ ok: true });
  return {
    tenant,
    contact: { id: c.id, waId: c.waId, userId: null, phoneE164: c.phoneE164, profileName: null, locale, lastInboundAt: null },
    now: clock.now(),
    flow: "forgot-pin",
    step: "reset",
    locale: locale ?? "en_US",
  };
}
const now = (ctx: ActionContext): ActionContext => ({ ...ctx, now: clock.now() });
const seenTokens: string[] = [];
const linkIn = (text: string): string => {
  const m = /https:\/\/verify\.example\.test\/pin-reset\/([A-Za-z0-9_-]{43})/.exec(text);
  if (!m) throw new Error("no reset link in the email");
  seenTokens.push(m[1]!);
  return m[1]!;
};
const pathOf = (token: string) => `/pin-reset/${token}`;

describe("pin_status", () => {
  it("tells whether a PIN and a recovery email exist, and when the waiting period ends", async () => {
    const ctx = await contactWithPin("ada@example.com");
    const r = await run("pin_status", ctx);
    // no reset pending yet: nothing to wait for; the PIN was just set, so it counts as proven
    expect(r).toEqual({ ok: true, data: { set: true, hasEmail: true, proven: true, required: true, resetPending: false } });
    const other = await contactWithPin(null);
    expect(await run("pin_status", other)).toMatchObject({ ok: true, data: { set: true, hasEmail: false } });
    await pins.remove(prisma, other.contact.id);
    expect(await run("pin_status", other)).toEqual({ ok: true, data: { set: false, hasEmail: false, proven: false, required: false, resetPending: false } });
  });
});

describe("request_pin_reset by email", () => {
  it("emails a single-use link, stores only the token's hash, and the link removes the PIN once", async () => {
    const ctx = await contactWithPin("ada.lovelace@example.com");
    const r = await run("request_pin_reset", ctx);
    expect(r).toEqual({ ok: true, data: { sent: "email", emailMasked: "a•••@example.com" } });

    const mail = email.last("ada.lovelace@example.com")!;
    expect(mail.subject).toBe("Reset your PIN");
    expect(mail.text).toContain("Acme Bank");
    expect(mail.text).toContain("30 minutes");
    const token = linkIn(mail.text);
    expect(mail.html).toContain(`${BASE}/pin-reset/${token}`);

    // only the keyed hash is stored
    const rows = await prisma.pinResetToken.findMany({ where: { contactId: ctx.contact.id } });
    expect(rows).toHaveLength(1);
    expect(rows[0]!.tokenHash).toBe(pinResetTokenHash(keyring, token));
    expect(JSON.stringify(rows)).not.toContain(token);
    expect(rows[0]!.expiresAt.toISOString()).toBe(new Date(clock.now().getTime() + 30 * 60_000).toISOString());

    // the page: one form button, no external assets, no token in it
    const page = await request(app).get(pathOf(token));
    expect(page.status).toBe(200);
    expect(page.type).toBe("text/html");
    expect(page.text).toContain("Reset my PIN");
    expect(page.text).toMatch(/<form method="post">/);
    expect(page.text).not.toContain(token);
    expect(page.text).not.toMatch(/<script|src=|href=/i);
    expect(page.headers["cache-control"]).toBe("no-store");
    expect(page.headers["referrer-policy"]).toBe("no-referrer");
    expect(page.headers["content-security-policy"]).toMatch(/default-src 'none'/);
    // looking is not using
    expect(await pins.has(prisma, ctx.contact.id)).toBe(true);

    const done = await request(app).post(pathOf(token)).set("Origin", BASE).type("form").send({});
    expect(done.status).toBe(200);
    expect(done.text).toContain("Your PIN was removed; set a new one in the chat");
    expect(await pins.has(prisma, ctx.contact.id)).toBe(false);
    expect((await prisma.pinResetToken.findFirstOrThrow({ where: { contactId: ctx.contact.id } })).usedAt).not.toBeNull();

    const again = await request(app).post(pathOf(token)).type("form").send({});
    expect(again.status).toBe(410);
    expect((await request(app).get(pathOf(token))).status).toBe(410);

    const audit = await prisma.auditEvent.findMany({ where: { subject: ctx.contact.id }, orderBy: { createdAt: "asc" } });
    expect(audit.map((a) => [a.type, (a.data as { via?: string }).via])).toEqual([
      ["pin.reset_requested", "email"],
      ["pin.removed", "email_link"],
    ]);
  });

  it("expires: after PIN_RESET_LINK_MINUTES the link answers 410 and the PIN stays", async () => {
    const ctx = await contactWithPin("grace@example.org");
    await run("request_pin_reset", ctx);
    const token = linkIn(email.last()!.text);
    clock.advance(30 * 60_000); // exactly the lifetime: expires_at > now no longer holds
    expect((await request(app).get(pathOf(token))).status).toBe(410);
    const r = await request(app).post(pathOf(token)).type("form").send({});
    expect(r.status).toBe(410);
    expect(await pins.has(prisma, ctx.contact.id)).toBe(true);
  });

  it("answers unknown, used and expired links alike (no oracle), and in JSON for JSON requests", async () => {
    const ctx = await contactWithPin("hopper@example.net");
    await run("request_pin_reset", ctx);
    const used = linkIn(email.last()!.text);
    expect((await request(app).post(pathOf(used)).send({})).status).toBe(200); // JSON body
    clock.advance(2 * 60_000);
    await run("request_pin_reset", now(await contactWithPin("hopper2@example.net")));
    const expired = linkIn(email.last()!.text);
    clock.advance(31 * 60_000);
    const unknown = "A".repeat(43);

    const pages = await Promise.all([used, expired, unknown, "short"].map((t) => request(app).post(pathOf(t)).type("form").send({})));
    expect(pages.map((p) => p.status)).toEqual([410, 410, 410, 410]);
    expect(new Set(pages.map((p) => p.text)).size).toBe(1);

    const json = await Promise.all([used, expired, unknown].map((t) => request(app).post(pathOf(t)).send({ confirm: true })));
    for (const j of json) {
      expect(j.status).toBe(410);
      expect(j.body).toEqual({ error: { code: "link_gone", message: expect.any(String) } });
    }
    const getJson = await request(app).get(pathOf(unknown)).set("Accept", "application/json");
    expect(getJson.status).toBe(410);
    expect(getJson.body.error.code).toBe("link_gone");
  });

  it("refuses a cross-origin post without using the token", async () => {
    const ctx = await contactWithPin("lin@example.com");
    await run("request_pin_reset", ctx);
    const token = linkIn(email.last()!.text);
    const evil = await request(app).post(pathOf(token)).set("Origin", "https://evil.example").type("form").send({});
    expect(evil.status).toBe(403);
    const nul = await request(app).post(pathOf(token)).set("Origin", "null").send({});
    expect(nul.status).toBe(403);
    expect(nul.body.error.code).toBe("forbidden");
    expect(await pins.has(prisma, ctx.contact.id)).toBe(true);
    expect((await request(app).post(pathOf(token)).set("Origin", BASE).type("form").send({})).status).toBe(200);
  });

  it("two clicks at once remove the PIN once: one 200, one 410", async () => {
    const ctx = await contactWithPin("race@example.com");
    await run("request_pin_reset", ctx);
    const token = linkIn(email.last()!.text);
    const both = await Promise.all([1, 2].map(() => request(app).post(pathOf(token)).type("form").send({})));
    expect(both.map((r) => r.status).sort()).toEqual([200, 410]);
    expect(await prisma.auditEvent.count({ where: { subject: ctx.contact.id, type: "pin.removed" } })).toBe(1);
  });

  it("writes in the contact's locale", async () => {
    await run("request_pin_reset", await contactWithPin("maria@example.es", "es"));
    expect(email.last()!.subject).toBe("Restablece tu PIN");
    expect(email.last()!.text).toMatch(/caduca en 30 minutos/);
    await run("request_pin_reset", await contactWithPin("joao@example.com.br", "pt_BR"));
    expect(email.last()!.subject).toBe("Redefina seu PIN");
    expect(email.last()!.text).toMatch(/expira em 30 minutos/);
    expect(pinResetEmail("es_MX", { business: "B", link: "L", minutes: 5 }).subject).toBe("Restablece tu PIN");
    expect(pinResetEmail("fr", { business: "B", link: "L", minutes: 5 }).subject).toBe("Reset your PIN");
    expect(pinResetEmail("en_US", { business: "<b>", link: "https://x/\"", minutes: 5 }).html).not.toMatch(/<b>|x\/"/);
  });

  it("a newer link replaces the older one; a second request within a minute sends nothing", async () => {
    const ctx = await contactWithPin("again@example.com");
    await run("request_pin_reset", ctx);
    const first = linkIn(email.last()!.text);
    const throttled = await run("request_pin_reset", now(ctx));
    expect(throttled).toEqual({ ok: true, data: { sent: "email", emailMasked: "a•••@example.com", throttled: true } });
    expect(email.sent("again@example.com")).toHaveLength(1);
    clock.advance(61_000);
    await run("request_pin_reset", now(ctx));
    const second = linkIn(email.last()!.text);
    expect(second).not.toBe(first);
    expect((await request(app).post(pathOf(first)).type("form").send({})).status).toBe(410);
    expect((await request(app).post(pathOf(second)).type("form").send({})).status).toBe(200);
  });

  it("a failed email takes the error branch and leaves no usable token", async () => {
    const ctx = await contactWithPin("bounce@example.com");
    email.failNext(1);
    expect(await run("request_pin_reset", ctx)).toEqual({ ok: false, error: "email_failed" });
    expect(await prisma.pinResetToken.count({ where: { contactId: ctx.contact.id } })).toBe(0);
  });
});

describe("request_pin_reset without a recovery email: the waiting period", () => {
  it("says when the reset opens, then removes the PIN once the tenant's waiting period has passed", async () => {
    const ctx = await contactWithPin(null);
    const setAt = clock.now().getTime();
    const wait = await run("request_pin_reset", ctx);
    expect(wait).toEqual({ ok: true, data: { sent: "wait", availableAt: new Date(setAt + 7 * 86_400_000).toISOString(), requested: true } });
    expect(email.sent()).toHaveLength(0);

    clock.advance(7 * 86_400_000 - 1);
    expect(await run("request_pin_reset", now(ctx))).toMatchObject({ data: { sent: "wait" } });
    expect(await pins.has(prisma, ctx.contact.id)).toBe(true);

    clock.advance(1);
    expect(await run("request_pin_reset", now(ctx))).toEqual({ ok: true, data: { sent: "removed" } });
    expect(await pins.has(prisma, ctx.contact.id)).toBe(false);
    expect(await prisma.auditEvent.count({ where: { subject: ctx.contact.id, type: "pin.removed" } })).toBe(1);
    // nothing left to reset
    expect(await run("request_pin_reset", now(ctx))).toEqual({ ok: false, error: "pin_not_set" });
  });

  it("the waiting period counts from the request, not from when the PIN was set, and follows the tenant's setting", async () => {
    const ctx = await contactWithPin(null);
    // a PIN set 30 days ago is not removed at once: the wait starts now
    clock.advance(30 * 86_400_000);
    const r = await run("request_pin_reset", now(ctx));
    expect(r).toEqual({ ok: true, data: { sent: "wait", availableAt: new Date(clock.now().getTime() + 7 * 86_400_000).toISOString(), requested: true } });
    expect(await pins.has(prisma, ctx.contact.id)).toBe(true);
    expect(await run("pin_status", now(ctx))).toMatchObject({ data: { resetPending: true, resetAvailableAt: new Date(clock.now().getTime() + 7 * 86_400_000).toISOString() } });

    await prisma.tenant.update({ where: { id: tenant.id }, data: { settings: { pin: { maxAttempts: 5, lockMinutes: 30, resetWaitDays: 0 } } } });
    try {
      expect(await run("request_pin_reset", now(ctx))).toEqual({ ok: true, data: { sent: "removed" } });
    } finally {
      await prisma.tenant.update({ where: { id: tenant.id }, data: { settings: { pin: { maxAttempts: 5, lockMinutes: 30, resetWaitDays: 7 } } } });
    }
  });

  it("without an email channel (or a public URL), a recovery email cannot be used: the waiting period applies", async () => {
    const ctx = await contactWithPin("nomail@example.com");
    const noChannel = createPinActions(deps({ email: undefined }));
    expect(await run("request_pin_reset", ctx, noChannel)).toMatchObject({ ok: true, data: { sent: "wait" } });
    const noBase = createPinActions(deps({ config: { PUBLIC_BASE_URL: undefined, PIN_RESET_LINK_MINUTES: 30 } }));
    expect(await run("request_pin_reset", ctx, noBase)).toMatchObject({ ok: true, data: { sent: "wait" } });
    expect(email.sent()).toHaveLength(0);
  });
});

describe("remove_pin", () => {
  it("removes the PIN and any outstanding link", async () => {
    const ctx = await contactWithPin("rm@example.com");
    await run("request_pin_reset", ctx);
    const token = linkIn(email.last()!.text);
    expect(await run("remove_pin", now(ctx))).toEqual({ ok: true, data: { removed: true } });
    expect(await pins.has(prisma, ctx.contact.id)).toBe(false);
    expect((await request(app).get(pathOf(token))).status).toBe(410);
    expect(await run("remove_pin", now(ctx))).toEqual({ ok: true, data: { removed: false } });
  });
});

describe("email channel", () => {
  it("createEmailSender follows EMAIL_PROVIDER; smtp needs SMTP_URL", () => {
    expect(createEmailSender(testConfig(), logger)).toBeUndefined();
    expect(createEmailSender(testConfig({ EMAIL_PROVIDER: "sandbox" }), logger)).toBeInstanceOf(RecordingEmailSender);
    const smtp = createEmailSender(testConfig({ EMAIL_PROVIDER: "smtp", SMTP_URL: "smtp://user:pw@127.0.0.1:2525" }), logger);
    expect(smtp).toBeInstanceOf(SmtpEmailSender);
    smtp!.close?.();
    expect(() => testConfig({ EMAIL_PROVIDER: "smtp" })).toThrow(/SMTP_URL: is required/);
    expect(() => testConfig({ EMAIL_PROVIDER: "smtp", SMTP_URL: "https://mail.example" })).toThrow(/SMTP_URL/);
    const c = testConfig();
    expect([c.EMAIL_FROM, c.PIN_RESET_LINK_MINUTES]).toEqual(["no-reply@localhost", 30]);
  });

  it("the SMTP adapter hands the message to nodemailer and reports failures as values", async () => {
    const sent: Record<string, unknown>[] = [];
    let fail: Error | null = null;
    const transporter = {
      sendMail: async (m: Record<string, unknown>) => {
        if (fail) throw fail;
        sent.push(m);
        return { messageId: "<m1@example>", rejected: [] };
      },
      close: () => undefined,
    };
    const smtp = new SmtpEmailSender({ url: "smtp://127.0.0.1:2525", from: "bot@example.com", logger, transporter: transporter as never });
    expect(await smtp.send({ to: "x@example.com", subject: "s", text: "t", html: "<p>t</p>" })).toEqual({ ok: true, id: "<m1@example>" });
    expect(sent[0]).toEqual({ from: "bot@example.com", to: "x@example.com", subject: "s", text: "t", html: "<p>t</p>" });
    fail = Object.assign(new Error("auth"), { code: "EAUTH" });
    expect(await smtp.send({ to: "x@example.com", subject: "s", text: "t" })).toEqual({ ok: false, error: "EAUTH" });
  });

  it("masks addresses", () => {
    expect(maskEmail("ada@example.com")).toBe("a•••@example.com");
    expect(maskEmail("not-an-address")).toBe("•••");
    expect(maskEmail(null)).toBeUndefined();
  });
});

describe("logs", () => {
  it("never carry an address in clear or a token", () => {
    const all = logLines.join("\n");
    expect(all).toContain("pin reset link emailed");
    expect(all).toContain("a•••@example.com");
    expect(all).not.toMatch(/[A-Za-z0-9._-]+@example\.(com|org|net|es|com\.br)/);
    expect(seenTokens.length).toBeGreaterThan(5);
    for (const t of seenTokens) expect(all).not.toContain(t);
  });
});

import express from "express";
import request from "supertest";
import { ACTIONS } from "../../src/flows/schema";
import type { ActionContext, ActionExecutor } from "../../src/flows/flow.handler";
import { authenticate } from "../../src/http/auth";
import { contactsRoutes } from "../../src/http/contacts.routes";
import { errorHandler } from "../../src/http/errors";
import type { ActionRegistry } from "../../src/journeys/actions";
import { createContactActions } from "../../src/journeys/contacts.actions";
import { loginsText } from "../../src/journeys/logins";
import { systemMessageHandler } from "../../src/journeys/system-messages";
import { createLogger } from "../../src/observability/logger";
import { Receiver } from "../events/receiver";
import { envelope, messages } from "../helpers/payloads";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** Contact journeys: actions on the verified state and logins, the logins API, Meta's number-change notices. */
let sys: TestSystem;
const receiver = new Receiver();
const logger = createLogger({ level: "warn" });
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });

// the core is built after the options: the actions reach it through this
let real: ActionRegistry | null = null;
const registry = () =>
  (real ??= createContactActions({ prisma: sys.core.prisma, eventPublisher: sys.core.eventPublisher, logger, verifications: sys.core.verifications }));
const lazy: ActionRegistry = Object.fromEntries(ACTIONS.map((n) => [n, ((ctx, p) => registry()[n]?.(ctx, p) ?? Promise.resolve({ ok: false, error: "unknown_action" })) as ActionExecutor]));

let api: express.Express;
const events = () => receiver.at("/hooks").map((r) => JSON.parse(r.raw) as { id: string; type: string; tenantId: string; data: Record<string, any> });
const eventOf = (type: string, pred: (d: Record<string, any>) => boolean = () => true) => waitFor(() => events().find((e) => e.type === type && pred(e.data)), 15_000);

beforeAll(async () => {
  await receiver.listen();
  sys = await startTestSystem({
    // events go to a local receiver over http: development mode, opted into explicitly
    env: { OUTBOUND_RECIPIENT_GAP_MS: "5", NODE_ENV: "development" },
    actions: [lazy],
    handlers: [systemMessageHandler({ eventPublisher: { dispatch: (ids) => sys.core.eventPublisher.dispatch(ids) }, logger })],
  });
  api = express();
  api.use(
    "/v1",
    authenticate({ apiKeys: sys.core.apiKeys, adminApiKey: sys.config.ADMIN_API_KEY, limits: sys.core.limits, defaultTenantId: async () => sys.tenantId }),
    contactsRoutes({ prisma: sys.core.prisma, eventPublisher: sys.core.eventPublisher, clock: sys.core.clock, logger }).v1,
  );
  api.use(errorHandler(logger));
  const set = await request(sys.http.url).put(`/admin/tenants/${sys.tenantId}/events`).set(admin()).send({ url: `${receiver.url}/hooks` });
  expect(set.status).toBe(200);
});
afterAll(async () => {
  await sys.close();
  await receiver.close();
});

async function contactCtx(digits: string, flow = "test"): Promise<ActionContext> {
  const tenant = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
  const c =
    (await sys.core.prisma.contact.findFirst({ where: { tenantId: sys.tenantId, waId: digits } })) ??
    (await sys.core.prisma.contact.create({ data: { tenantId: sys.tenantId, waId: digits, phoneE164: `+${digits}` } }));
  return {
    tenant: { ...tenant, settings: (tenant.settings ?? {}) as Record<string, unknown> },
    contact: { id: c.id, waId: c.waId, userId: c.userId, phoneE164: c.phoneE164, profileName: c.profileName, locale: c.locale, lastInboundAt: c.lastInboundAt },
    now: new Date(),
    flow,
    step: "s1",
    locale: "en_US",
  };
}
const run = (name: string, ctx: ActionContext, params: Record<string, string | number | boolean> = {}) => registry()[name]!(ctx, params);
const contactRow = (id: string) => sys.core.prisma.contact.findUniqueOrThrow({ where: { id } });

describe("actions", () => {
  it("mark_verified sets verifiedAt and clears a re-verification; clear_verified and clear_reverify undo them", async () => {
    const ctx = await contactCtx("14155550401");
    await sys.core.prisma.contact.update({ where: { id: ctx.contact.id }, data: { reverifyRequiredAt: new Date() } });
    expect(await run("mark_verified", ctx)).toEqual({ ok: true, data: { verified: true, verifiedAt: ctx.now.toISOString() } });
    let c = await contactRow(ctx.contact.id);
    expect(c.verifiedAt?.toISOString()).toBe(ctx.now.toISOString());
    expect(c.reverifyRequiredAt).toBeNull();
    const ev = await eventOf("contact.verified", (d) => d.contactId === ctx.contact.id);
    expect(ev.data).toEqual({ contactId: ctx.contact.id, to: "+14155550401", verifiedAt: ctx.now.toISOString(), source: "flow:test" });

    expect((await run("clear_verified", ctx)).ok).toBe(true);
    c = await contactRow(ctx.contact.id);
    expect(c.verifiedAt).toBeNull();
    await sys.core.prisma.contact.update({ where: { id: ctx.contact.id }, data: { reverifyRequiredAt: new Date() } });
    expect((await run("clear_reverify", ctx)).ok).toBe(true);
    expect((await contactRow(ctx.contact.id)).reverifyRequiredAt).toBeNull();
  });

  it("list_logins, revoke_login (this contact's only) and revoke_logins", async () => {
    const ctx = await contactCtx("14155550402");
    const other = await contactCtx("14155550403");
    const at = Date.now();
    await sys.core.prisma.login.createMany({
      data: [
        { tenantId: sys.tenantId, contactId: ctx.contact.id, externalId: "s-a1", device: "Chrome on Windows", location: "Lisbon, PT", createdAt: new Date(at - 2 * 3600_000) },
        { tenantId: sys.tenantId, contactId: ctx.contact.id, externalId: "s-a2", device: "iPhone app", createdAt: new Date(at - 26 * 3600_000) },
        { tenantId: sys.tenantId, contactId: ctx.contact.id, externalId: "s-a3", device: "Old", createdAt: new Date(at - 3600_000), revokedAt: new Date(at) },
        { tenantId: sys.tenantId, contactId: other.contact.id, externalId: "s-b1", device: "Firefox" },
      ],
    });
    const listed = await run("list_logins", ctx);
    expect(listed).toEqual({ ok: true, data: { count: 2, text: "1. Chrome on Windows · Lisbon, PT · 2 hours ago\n2. iPhone app · yesterday" } });
    expect((await run("list_logins", { ...ctx, locale: "es" })).ok && ((await run("list_logins", { ...ctx, locale: "es" })) as any).data.text).toContain("hace 2 horas");

    // another contact's login is not this contact's to revoke
    expect(await run("revoke_login", ctx, { id: "s-b1" })).toEqual({ ok: false, error: "login_not_found" });
    expect((await sys.core.prisma.login.findFirstOrThrow({ where: { externalId: "s-b1" } })).revokedAt).toBeNull();
    expect(await run("revoke_login", ctx, { id: "s-a2" })).toEqual({ ok: true, data: { count: 1 } });
    const one = await eventOf("login.revoked", (d) => d.contactId === ctx.contact.id && d.loginIds.includes("s-a2"));
    expect(one.data).toMatchObject({ count: 1, loginIds: ["s-a2"], to: "+14155550402" });

    expect(await run("revoke_logins", ctx)).toEqual({ ok: true, data: { count: 1 } });
    expect(await run("revoke_logins", ctx)).toEqual({ ok: true, data: { count: 0 } });
    expect(await sys.core.prisma.login.count({ where: { contactId: ctx.contact.id, revokedAt: null } })).toBe(0);
    const all = await eventOf("login.revoked", (d) => d.contactId === ctx.contact.id && d.loginIds.includes("s-a1"));
    expect(all.data.count).toBe(1);
    expect(((await run("list_logins", ctx)) as any).data).toEqual({ count: 0, text: "No active logins." });
  });

  it("change_number moves the contact, clears verified, refuses a number another contact has", async () => {
    const ctx = await contactCtx("14155550404");
    await run("mark_verified", ctx);
    // a contact who has written to the bot holds its number; one made only to send it a code would be folded in
    const holder = await contactCtx("14155550405");
    await sys.core.prisma.contact.update({ where: { id: holder.contact.id }, data: { lastInboundAt: new Date() } });
    expect(await run("change_number", ctx, { new_number: "+1 415 555 0405" })).toEqual({ ok: false, error: "number_in_use" });
    expect(await run("change_number", ctx, { new_number: "not a number" })).toEqual({ ok: false, error: "invalid_phone_number" });
    expect(await run("change_number", ctx, { new_number: "+1 (415) 555-0406" })).toEqual({ ok: true, data: { changed: true, from: "+14155550404", to: "+14155550406" } });
    const c = await contactRow(ctx.contact.id);
    expect(c).toMatchObject({ waId: "14155550406", phoneE164: "+14155550406", verifiedAt: null });
    const ev = await eventOf("contact.number_changed", (d) => d.contactId === ctx.contact.id);
    expect(ev.data).toEqual({ contactId: ctx.contact.id, from: "+14155550404", to: "+14155550406", reason: "customer_request", reverifyRequired: false });
  });

  it("notify_business and report_unauthorized tell the business; report cancels the number's pending codes", async () => {
    const ctx = await contactCtx("14155550407");
    expect(await run("notify_business", ctx, { event: "something_else" })).toEqual({ ok: false, error: "unknown_event" });
    expect((await run("notify_business", ctx, { event: "unauthorized_access" })).ok).toBe(true);
    const n = await eventOf("unauthorized_access.reported", (d) => d.contactId === ctx.contact.id);
    expect(n.data).toEqual({ contactId: ctx.contact.id, to: "+14155550407", reason: "customer_report" });

    const created = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550407" });
    expect(created.status).toBe(201);
    expect(await run("report_unauthorized", ctx)).toEqual({ ok: true, data: { reported: true, canceled: 1 } });
    expect((await sys.core.prisma.verification.findUniqueOrThrow({ where: { id: created.body.id } })).status).toBe("canceled");
    const r = await eventOf("unauthorized_access.reported", (d) => d.contactId === ctx.contact.id && d.canceled === 1);
    expect(r.data).toMatchObject({ reason: "unauthorized_access", to: "+14155550407" });
    expect(typeof r.data.blockedUntil).toBe("string");
    for (const e of events()) expect(JSON.stringify(e.data)).not.toMatch(/"(code|pin|otp)"/i);
  });
});

describe("logins API", () => {
  it("creates (idempotent on id), lists, revokes, and shows the contact; tenants are isolated", async () => {
    const v1 = () => request(api);
    const phone = "+14155550410";
    const a = await v1().post(`/v1/contacts/${phone}/logins`).set(admin()).send({ id: "web-1", device: "Safari on Mac", location: "Madrid, ES" });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({ to: phone, id: "web-1", device: "Safari on Mac", location: "Madrid, ES", revokedAt: null });
    const again = await v1().post(`/v1/contacts/${phone}/logins`).set(admin()).send({ id: "web-1", device: "Safari on Mac" });
    expect(again.status).toBe(200);
    expect(again.body.at).toBe(a.body.at);
    const at = new Date(Date.now() - 3600_000).toISOString();
    expect((await v1().post(`/v1/contacts/14155550410/logins`).set(admin()).send({ id: "web-2", at })).status).toBe(201);
    expect((await v1().post(`/v1/contacts/${phone}/logins`).set(admin()).send({ id: "" })).status).toBe(400);
    expect((await v1().post(`/v1/contacts/${phone}/logins`).set(admin()).send({ id: "x", code: "123456" })).status).toBe(400);
    expect((await v1().post(`/v1/contacts/12/logins`).set(admin()).send({ id: "x" })).body.error.code).toBe("invalid_phone_number");
    // the same id for another number of the tenant is a conflict
    expect((await v1().post(`/v1/contacts/+14155550411/logins`).set(admin()).send({ id: "web-1" })).status).toBe(409);

    const list = await v1().get(`/v1/contacts/${phone}/logins`).set(admin());
    expect(list.status).toBe(200);
    expect(list.body.logins.map((l: { id: string }) => l.id)).toEqual(["web-1", "web-2"]);
    expect(list.body.logins[1].at).toBe(at);

    const del = await v1().delete(`/v1/contacts/${phone}/logins/web-2`).set(admin());
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ id: "web-2", revoked: true });
    expect(typeof del.body.revokedAt).toBe("string");
    expect((await v1().delete(`/v1/contacts/${phone}/logins/nope`).set(admin())).status).toBe(404);
    expect((await v1().get(`/v1/contacts/${phone}/logins`).set(admin())).body.logins.map((l: { id: string }) => l.id)).toEqual(["web-1"]);
    const ev = await eventOf("login.revoked", (d) => d.loginIds.includes("web-2"));
    expect(ev.data).toMatchObject({ to: phone, count: 1, reason: "api" });

    const shown = await v1().get(`/v1/contacts/${phone}`).set(admin());
    expect(shown.status).toBe(200);
    expect(shown.body).toEqual({ to: phone, verified: false, hasPin: false, verifiedAt: null, reverifyRequired: false, reverifyRequiredAt: null, name: null });
    expect((await v1().get(`/v1/contacts/+14155550499`).set(admin())).status).toBe(404);

    const re = await v1().post(`/v1/contacts/${phone}/reverify`).set(admin()).send({ reason: "suspicious_activity" });
    expect(re.status).toBe(202);
    expect(re.body).toMatchObject({ to: phone, reverifyRequired: true, flowStarted: false });
    expect((await v1().get(`/v1/contacts/${phone}`).set(admin())).body.reverifyRequired).toBe(true);
    const rv = await eventOf("reverification.requested", (d) => d.to === phone);
    expect(rv.data).toMatchObject({ reason: "suspicious_activity" });

    // a second business sees none of it, and cannot touch it
    const t2 = await request(sys.http.url).post("/admin/tenants").set(admin()).send({ name: "Other", phoneNumberId: "990000000001", displayPhoneNumber: "+1 555 000 0001", accessToken: "other-token" });
    expect(t2.status).toBe(201);
    const k2 = await request(sys.http.url).post(`/admin/tenants/${t2.body.id}/api-keys`).set(admin()).send({ scopes: ["verify"] });
    expect(k2.status).toBe(201);
    const other = { Authorization: `Bearer ${k2.body.key}` };
    expect((await v1().get(`/v1/contacts/${phone}`).set(other)).status).toBe(404);
    expect((await v1().get(`/v1/contacts/${phone}/logins`).set(other)).status).toBe(404);
    expect((await v1().delete(`/v1/contacts/${phone}/logins/web-1`).set(other)).status).toBe(404);
    // its own login with the same id is its own
    expect((await v1().post(`/v1/contacts/${phone}/logins`).set(other).send({ id: "web-1", device: "Edge" })).status).toBe(201);
    expect((await v1().get(`/v1/contacts/${phone}/logins`).set(other)).body.logins.map((l: { device: string }) => l.device)).toEqual(["Edge"]);
    expect((await v1().get(`/v1/contacts/${phone}/logins`).set(admin())).body.logins.map((l: { device: string }) => l.device)).toEqual(["Safari on Mac"]);
    // a key without the verify scope is refused
    const rk = await request(sys.http.url).post(`/admin/tenants/${t2.body.id}/api-keys`).set(admin()).send({ scopes: ["read"] });
    expect((await v1().get(`/v1/contacts/${phone}/logins`).set({ Authorization: `Bearer ${rk.body.key}` })).status).toBe(403);
  });
});

describe("in the chat", () => {
  const botTexts = (digits: string) => sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound").map((m) => m.text);
  const nextBotText = async (digits: string, count: number) => (await waitFor(() => botTexts(digits).length >= count && botTexts(digits)))[count - 1]!;

  it("a flow marks the contact verified, lists its logins and logs out of all", async () => {
    const who = "14155550420";
    await request(api).post(`/v1/contacts/+${who}/logins`).set(admin()).send({ id: "c-1", device: "Chrome on Linux", location: "Porto, PT" }).expect(201);
    await request(api).post(`/v1/contacts/+${who}/logins`).set(admin()).send({ id: "c-2", device: "Android app", at: new Date(Date.now() - 3 * 86_400_000).toISOString() }).expect(201);
    const flow = {
      name: "my-account",
      triggers: [{ type: "keyword", keywords: ["my account"] }],
      steps: [
        { id: "verified", type: "action", action: "mark_verified", next: "list" },
        { id: "list", type: "action", action: "list_logins", save: "logins", next: "show" },
        {
          id: "show",
          type: "send",
          text: "Active logins ({{logins.count}}):\n{{logins.text}}",
          buttons: [
            { id: "out", title: "Log out all", next: "revoke" },
            { id: "keep", title: "Keep", next: "bye" },
          ],
        },
        { id: "revoke", type: "action", action: "revoke_logins", save: "revoked", next: "done" },
        { id: "done", type: "end", text: "Logged out of {{revoked.count}} sessions." },
        { id: "bye", type: "end", text: "OK." },
      ],
    };
    expect((await request(sys.http.url).put(`/admin/flows/${flow.name}`).set(admin()).send(flow)).status).toBe(201);
    await sys.sandbox.injectInbound({ from: who, text: "my account" });
    expect(await nextBotText(who, 1)).toBe("Active logins (2):\n1. Chrome on Linux · Porto, PT · now\n2. Android app · 3 days ago");
    const contact = await sys.core.prisma.contact.findFirstOrThrow({ where: { tenantId: sys.tenantId, waId: who } });
    // the contact row is the message's while it is handled: the write lands right after it commits
    await waitFor(async () => (await contactRow(contact.id)).verifiedAt);
    await eventOf("contact.verified", (d) => d.contactId === contact.id);

    await sys.sandbox.injectInbound({ from: who, message: { type: "interactive", interactive: { type: "button_reply", button_reply: { id: "out", title: "Log out all" } } } });
    expect(await nextBotText(who, 2)).toBe("Logged out of 2 sessions.");
    expect(await sys.core.prisma.login.count({ where: { contactId: contact.id, revokedAt: null } })).toBe(0);
    const ev = await eventOf("login.revoked", (d) => d.contactId === contact.id);
    expect(ev.data).toMatchObject({ count: 2, reason: "customer_request" });
    expect([...ev.data.loginIds].sort()).toEqual(["c-1", "c-2"]);
  });

  it("a user_changed_number notice moves the contact, clears its verified state, and the bot answers the new number", async () => {
    const oldNo = "14155550430";
    const newNo = "14155550431";
    await sys.sandbox.injectInbound({ from: oldNo, text: "hello" });
    await nextBotText(oldNo, 1);
    const contact = await sys.core.prisma.contact.findFirstOrThrow({ where: { tenantId: sys.tenantId, waId: oldNo } });
    await sys.core.prisma.contact.update({ where: { id: contact.id }, data: { verifiedAt: new Date() } });

    const notice = messages.system(oldNo) as Record<string, any>;
    notice.system = { body: `User A changed from +1 415-555-0430 to +1 415-555-0431`, wa_id: newNo, type: "user_changed_number" };
    expect(await sys.sandbox.postWebhook(envelope({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, messages: [notice] }))).toBe(200);
    const moved = await waitFor(async () => {
      const c = await contactRow(contact.id);
      return c.waId === newNo && c;
    });
    expect(moved).toMatchObject({ phoneE164: `+${newNo}`, verifiedAt: null });
    expect(moved.reverifyRequiredAt).toBeInstanceOf(Date);
    const ev = await eventOf("contact.number_changed", (d) => d.contactId === contact.id);
    expect(ev.data).toEqual({ contactId: contact.id, from: `+${oldNo}`, to: `+${newNo}`, reason: "user_changed_number", reverifyRequired: true });
    // no answer to the notice
    expect(botTexts(oldNo)).toHaveLength(1);

    await sys.sandbox.injectInbound({ from: newNo, text: "hi again" });
    // a changed number requires a fresh verification before anything else: the reverify journey starts
    expect(await nextBotText(newNo, 1)).toMatch(/confirm that this number is still yours/);
    const session = await waitFor(async () => (await sys.core.prisma.session.findFirst({ where: { contactId: contact.id } }))?.flow);
    expect(session).toBe("reverify");
    expect(await sys.core.prisma.contact.count({ where: { tenantId: sys.tenantId, waId: newNo } })).toBe(1);
    const msgs = await sys.core.prisma.message.count({ where: { contactId: contact.id, direction: "inbound" } });
    expect(msgs).toBe(3); // hello, the notice, hi again: one contact
  });

  it("user_changed_user_id moves the business-scoped id", async () => {
    const no = "14155550440";
    await sys.sandbox.injectInbound({ from: no, text: "hello" });
    await nextBotText(no, 1);
    const contact = await sys.core.prisma.contact.findFirstOrThrow({ where: { tenantId: sys.tenantId, waId: no } });
    const notice = { ...(messages.system(no) as Record<string, any>), system: { body: "User changed", user_id: "US.13491208655302741918", type: "user_changed_user_id" } };
    expect(await sys.sandbox.postWebhook(envelope({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, messages: [notice] }))).toBe(200);
    await waitFor(async () => (await contactRow(contact.id)).userId === "US.13491208655302741918");
    const ev = await eventOf("contact.number_changed", (d) => d.contactId === contact.id);
    expect(ev.data).toMatchObject({ userId: "US.13491208655302741918", reason: "user_changed_user_id", reverifyRequired: true, to: `+${no}` });
  });
});

it("loginsText is short and localized", () => {
  const now = new Date("2026-01-10T12:00:00Z");
  expect(loginsText([], "pt_BR", now)).toBe("Nenhuma sessão ativa.");
  const many = Array.from({ length: 12 }, (_, i) => ({ device: `D${i}`, location: null, createdAt: new Date(now.getTime() - 60 * 86_400_000) }));
  const t = loginsText(many, "en_US", now);
  expect(t.split("\n")).toHaveLength(11);
  expect(t).toContain("…and 2 more");
  expect(t).toContain("Nov");
});

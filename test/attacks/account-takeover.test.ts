import request from "supertest";
import { ManualClock } from "../../src/shared/clock";
import { latestCode, waitFor, type TestSystem } from "../helpers/system";
import { Chat, startJourneys } from "../journeys/harness";

/**
 * Account takeover through the customer's own chat (issue 15, items 7–10): whoever holds the number (a SIM swap, a
 * phished code) must not get past the two-step PIN, and the owner must not be locked out by their own "not me".
 * Each test drives the attack through the Cloud API sandbox and the real journeys (flows/*.yaml), on PostgreSQL and
 * Redis, and fails on the code before the fix.
 */
let sys: TestSystem;
const clock = new ManualClock(Date.now());
const DAY = 86_400_000;
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);

beforeAll(async () => {
  ({ sys } = await startJourneys({ clock }));
});
afterAll(async () => {
  await sys.close();
});

const contact = (digits: string) => sys.core.prisma.contact.findFirstOrThrow({ where: { waId: digits } });
const pinRow = (contactId: string) => sys.core.prisma.contactPin.findUniqueOrThrow({ where: { contactId } });

/** A customer who wrote before (the 24-hour window is open) and set a PIN `days` ago (and has not typed it since). */
async function ownerWithPin(digits: string, pin: string, days = 8): Promise<{ chat: Chat; contactId: string }> {
  const chat = new Chat(sys, digits);
  await chat.say("hi");
  await chat.expectBot(/./);
  const c = await contact(digits);
  expect(await sys.core.pins.set(sys.core.prisma, { tenantId: sys.tenantId, contactId: c.id, pin })).toEqual({ ok: true });
  await sys.core.prisma.$executeRaw`
    UPDATE contact_pins SET created_at = created_at - interval '1 day' * ${days}::int, updated_at = updated_at - interval '1 day' * ${days}::int,
           verified_at = verified_at - interval '1 day' * ${days}::int
     WHERE contact_id = ${c.id}::uuid`;
  return { chat, contactId: c.id };
}

/** The code the bot just sent to the chat (a new one: different from `before`). */
const codeIn = (chat: Chat, before: string | null = null) => chat.code(before);

describe("item 7: a forgotten-PIN reset waits from the request (the SIM-swap case)", () => {
  it("a PIN set 8 days ago is not removed at once by whoever gets the codes: the wait runs from the request, the owner is told, and the right PIN cancels it", async () => {
    const { chat, contactId } = await ownerWithPin("14155550801", "730518");
    // the attacker holds the SIM: the code reaches them
    await chat.say("forgot pin");
    await chat.expectBot(/Two-step verification is on/);
    await chat.tap("pin_forgot");
    const code = await codeIn(chat);
    await chat.say(code);
    const told = await chat.expectBot(/waiting period, counted from the request\. You can reset it from (\S+) \(UTC\)/);
    // the notice says what is happening and how to stop it
    expect(told.text).toMatch(/If you didn't ask for this, tap \*That wasn't me\*/);
    expect(Chat.ids(told)).toEqual(["pin_reset_cancel", "pin_reset_ok"]);
    const availableAt = new Date(/from (\S+) \(UTC\)/.exec(told.text)![1]!).getTime();
    expect(Math.abs(availableAt - (clock.now().getTime() + 7 * DAY))).toBeLessThan(60_000);
    expect(await sys.core.pins.has(sys.core.prisma, contactId)).toBe(true);
    expect((await pinRow(contactId)).resetRequestedAt).not.toBeNull();

    // asking again does not remove it either, nor move the start of the wait
    await chat.tap("pin_reset_ok");
    await chat.expectBot(/Until then your PIN stays on/);
    await chat.say("forgot pin");
    await chat.expectBot(/someone asked to reset the PIN: the reset can go ahead from/);
    await chat.tap("pin_keep_reset");
    const again = await codeIn(chat, code);
    await chat.say(again);
    const second = await chat.expectBot(/You can reset it from (\S+) \(UTC\)/);
    expect(new Date(/from (\S+) \(UTC\)/.exec(second.text)![1]!).getTime()).toBe(availableAt);
    expect(await sys.core.pins.has(sys.core.prisma, contactId)).toBe(true);

    // the owner, who knows the PIN, types it: the pending reset is cancelled
    await chat.tap("pin_reset_ok");
    await chat.expectBot(/Until then/);
    await chat.say("pin");
    await chat.expectBot(/someone asked to reset the PIN/);
    await chat.tap("pin_remember");
    await chat.expectBot(/^Type your PIN\.$/);
    await chat.say("730518");
    await chat.expectBot(/The PIN reset is cancelled and your PIN stays as it is/);
    expect((await pinRow(contactId)).resetRequestedAt).toBeNull();
    // and a later request starts a new full wait instead of removing the PIN
    expect(await sys.core.pins.requestReset(sys.core.prisma, contactId)).toMatchObject({ state: "requested" });
  });

  it("'That wasn't me' under the notice cancels the pending reset", async () => {
    const { chat, contactId } = await ownerWithPin("14155550802", "602817");
    await chat.say("forgot pin");
    await chat.expectBot(/Two-step verification is on/);
    await chat.tap("pin_forgot");
    await chat.say(await codeIn(chat));
    await chat.expectBot(/You can reset it from/);
    expect((await pinRow(contactId)).resetRequestedAt).not.toBeNull();
    await chat.tap("pin_reset_cancel");
    await chat.expectBot(/The PIN reset is cancelled/);
    expect((await pinRow(contactId)).resetRequestedAt).toBeNull();
    expect(await sys.core.prisma.auditEvent.count({ where: { subject: contactId, type: "pin.reset_canceled" } })).toBe(1);
  });
});

describe("item 8: codes to the old and the new number do not move an account that has a PIN", () => {
  it("change-number asks for the PIN before anything goes to the new number; wrong PINs lock it and the account stays", async () => {
    const oldDigits = "14155550811";
    const newDigits = "5511912340811";
    const { chat } = await ownerWithPin(oldDigits, "402913");
    await chat.say("change my number");
    await chat.expectBot(/takes two codes/);
    await chat.tap("cn_continue");
    await chat.expectBot(/international format/);
    await chat.say(`+${newDigits}`);
    await chat.expectBot(/New number/);
    await chat.tap("cn_yes");
    const code = await codeIn(chat);
    await chat.expectBot(/Step 1 of 2/);
    await chat.say(code);
    await chat.expectBot(/a number change also needs your PIN/);
    expect(latestCode(sys.sandbox, newDigits)).toBeNull();
    for (let left = 4; left >= 1; left--) {
      await chat.say("555555");
      await chat.expectBot(new RegExp(`Wrong PIN\\. ${left} left`));
    }
    await chat.say("555555");
    await chat.expectBot(/the PIN is locked for a while and the number change is stopped/);
    expect((await contact(oldDigits)).phoneE164).toBe(`+${oldDigits}`);
    expect(latestCode(sys.sandbox, newDigits)).toBeNull();
  });

  it("the change_number action itself refuses a contact whose PIN was not proven (a flow that skips the PIN step)", async () => {
    const flow = {
      name: "quick-move",
      triggers: [{ type: "keyword", keywords: ["quick-move-817"] }],
      steps: [
        { id: "send", type: "otp_request", purpose: "change_number", next: "check" },
        { id: "check", type: "otp_verify", purpose: "change_number", text: "Type the code.", approved: "apply" },
        { id: "apply", type: "action", action: "change_number", params: { new_number: "+5511912340817" }, onError: "why", next: "moved" },
        { id: "why", type: "branch", cases: [{ when: { var: "action_error", equals: "pin_required" }, next: "refused" }], default: "failed" },
        { id: "refused", type: "end", text: "REFUSED: PIN required" },
        { id: "failed", type: "end", text: "FAILED" },
        { id: "moved", type: "end", text: "MOVED" },
      ],
    };
    const put = await api().put("/admin/flows/quick-move").set(admin()).send(flow);
    expect([200, 201]).toContain(put.status);
    const { chat } = await ownerWithPin("14155550817", "519302");
    await chat.say("quick-move-817");
    const code = await codeIn(chat);
    await chat.say(code);
    await chat.expectBot("REFUSED: PIN required");
    expect((await contact("14155550817")).phoneE164).toBe("+14155550817");
    expect(await sys.core.prisma.contact.count({ where: { phoneE164: "+5511912340817", lastInboundAt: { not: null } } })).toBe(0);
  });
});

describe("siblings: the other account-changing actions need the PIN too", () => {
  it("a flow that skips the PIN can neither point the recovery email elsewhere nor sign out every session", async () => {
    const flow = {
      name: "quick-recover",
      triggers: [{ type: "keyword", keywords: ["quick-recover-818"] }],
      steps: [
        { id: "send", type: "otp_request", purpose: "account_recovery", next: "check" },
        { id: "check", type: "otp_verify", purpose: "account_recovery", text: "Type the code.", approved: "email" },
        { id: "email", type: "action", action: "set_recovery_email", params: { email: "attacker@example.net" }, onError: "email_why", next: "email_set" },
        { id: "email_why", type: "branch", cases: [{ when: { var: "action_error", equals: "pin_required" }, next: "email_refused" }], default: "failed" },
        { id: "email_refused", type: "send", text: "EMAIL: PIN required", next: "signout" },
        { id: "email_set", type: "send", text: "EMAIL SET", next: "signout" },
        { id: "signout", type: "action", action: "revoke_logins", onError: "out_why", next: "out_done" },
        { id: "out_why", type: "branch", cases: [{ when: { var: "action_error", equals: "pin_required" }, next: "out_refused" }], default: "failed" },
        { id: "out_refused", type: "end", text: "SIGNOUT: PIN required" },
        { id: "out_done", type: "end", text: "SIGNED OUT" },
        { id: "failed", type: "end", text: "FAILED" },
      ],
    };
    const put = await api().put("/admin/flows/quick-recover").set(admin()).send(flow);
    expect([200, 201]).toContain(put.status);
    const { chat, contactId } = await ownerWithPin("14155550818", "640285");
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId, externalId: "owner-818", device: "Owner's laptop" } });
    await chat.say("quick-recover-818");
    await chat.say(await codeIn(chat));
    await chat.expectBot("EMAIL: PIN required");
    await chat.expectBot("SIGNOUT: PIN required");
    expect((await pinRow(contactId)).recoveryEmail).toBeNull();
    expect((await sys.core.prisma.login.findFirstOrThrow({ where: { externalId: "owner-818" } })).revokedAt).toBeNull();
  });
});

describe("item 9: a PIN protects logins (pin.requireFor), in the API and in the chat", () => {
  it("POST /v1/verifications/check: the right code alone answers pinRequired; {id, pin} approves; GET /v1/contacts shows hasPin", async () => {
    const { chat } = await ownerWithPin("14155550821", "580314");
    const created = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550821", channel: "whatsapp" });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const code = await codeIn(chat);

    const first = await api().post("/v1/verifications/check").set(admin()).send({ id, code });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id, status: "pending", valid: false, pinRequired: true });
    expect((await api().get(`/v1/verifications/${id}`).set(admin())).body).toMatchObject({ status: "pending", pinRequired: true });
    // the code again does not approve either
    expect((await api().post("/v1/verifications/check").set(admin()).send({ to: "+14155550821", code })).body).toMatchObject({ status: "pending", valid: false, pinRequired: true });

    const wrong = await api().post("/v1/verifications/check").set(admin()).send({ id, pin: "271903" });
    expect(wrong.status).toBe(200);
    expect(wrong.body).toMatchObject({ status: "pending", valid: false, pinRequired: true, pinAttemptsRemaining: 4 });
    const right = await api().post("/v1/verifications/check").set(admin()).send({ id, pin: "580314" });
    expect(right.status).toBe(200);
    expect(right.body).toMatchObject({ status: "approved", valid: true });
    expect(right.body.pinRequired).toBeUndefined();
    expect((await api().post("/v1/verifications/check").set(admin()).send({ id, pin: "580314" })).status).toBe(404);

    const shown = await api().get("/v1/contacts/+14155550821").set(admin());
    expect(shown.body).toMatchObject({ hasPin: true });
  });

  it("wrong PINs count on the contact's PIN and lock it like the chat: the verification ends as max_attempts_reached", async () => {
    const { chat, contactId } = await ownerWithPin("14155550822", "640917");
    const created = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550822" });
    const id = created.body.id as string;
    await api().post("/v1/verifications/check").set(admin()).send({ id, code: await codeIn(chat) });
    for (let left = 4; left >= 1; left--) {
      const r = await api().post("/v1/verifications/check").set(admin()).send({ id, pin: "808080" });
      expect(r.body).toMatchObject({ status: "pending", valid: false, pinAttemptsRemaining: left });
    }
    const locked = await api().post("/v1/verifications/check").set(admin()).send({ id, pin: "808080" });
    expect(locked.body).toMatchObject({ status: "max_attempts_reached", valid: false, pinLocked: true });
    expect((await pinRow(contactId)).lockedUntil).not.toBeNull();
    // the PIN is locked everywhere: even the right one is refused now
    expect(await sys.core.pins.verify(sys.core.prisma, { tenantId: sys.tenantId, contactId, pin: "640917" })).toMatchObject({ status: "locked" });
  });

  it("a PIN without a right code first is 409 pin_not_expected; purposes outside pin.requireFor (and requireFor: []) approve on the code", async () => {
    const { chat } = await ownerWithPin("14155550823", "730265");
    const login = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550823" });
    const early = await api().post("/v1/verifications/check").set(admin()).send({ id: login.body.id, pin: "730265" });
    expect(early.status).toBe(409);
    expect(early.body.error.code).toBe("pin_not_expected");
    const loginCode = await codeIn(chat);

    const payment = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550823", purpose: "payment" });
    const payCode = await codeIn(chat, loginCode);
    const paid = await api().post("/v1/verifications/check").set(admin()).send({ id: payment.body.id, code: payCode });
    expect(paid.body).toMatchObject({ status: "approved", valid: true });

    const tenant = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
    const before = tenant.settings as Record<string, unknown>;
    await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { settings: { ...before, pin: { requireFor: [] } } } });
    try {
      const again = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550824" });
      expect(again.status).toBe(201);
      const plain = new Chat(sys, "14155550824");
      const code = await codeIn(plain);
      expect((await api().post("/v1/verifications/check").set(admin()).send({ id: again.body.id, code })).body).toMatchObject({ status: "approved", valid: true });
    } finally {
      await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { settings: before as object } });
    }
  });

  it("the verify journey asks for the PIN after the code: the code alone does not mark the contact verified", async () => {
    const { chat } = await ownerWithPin("14155550825", "318604");
    await chat.say("verify my number");
    await chat.expectBot(/Let's confirm that/);
    await chat.tap("verify_send");
    const code = await codeIn(chat);
    await chat.say(code);
    await chat.expectBot(/Two-step verification is on\. Type your 6-digit PIN to finish/);
    expect((await contact("14155550825")).verifiedAt).toBeNull();
    await chat.say("999000");
    await chat.expectBot(/Wrong PIN\. 4 left/);
    await chat.say("318604");
    await chat.expectBot(/is verified/);
    await waitFor(async () => ((await contact("14155550825")).verifiedAt ? true : null));
  });

  it("a code typed in the chat for an API verification asks for the PIN next, and only the PIN approves it", async () => {
    const { chat } = await ownerWithPin("14155550826", "507193");
    const created = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550826" });
    const id = created.body.id as string;
    const code = await codeIn(chat);
    chat.skipAll();
    await chat.say(code);
    await chat.expectBot(/Code confirmed\. Two-step verification is on: now type your 6-digit PIN/);
    expect((await api().get(`/v1/verifications/${id}`).set(admin())).body).toMatchObject({ status: "pending", pinRequired: true });
    await chat.say("220011");
    await chat.expectBot(/Wrong PIN\. 4 tries left/);
    await chat.say("507193");
    await chat.expectBot(/You're verified/);
    expect((await api().get(`/v1/verifications/${id}`).set(admin())).body).toMatchObject({ status: "approved" });
    // neither the code nor the PIN is kept in the chat history
    const inbound = await sys.core.prisma.message.findMany({ where: { direction: "inbound", contact: { waId: "14155550826" } } });
    expect(JSON.stringify(inbound.map((m) => m.payload))).not.toMatch(/507193|220011/);
  });
});

describe("item 10: 'not me' is read against what the bot last asked", () => {
  it("typed to a login notice, it ends that login and offers recover; nothing is blocked", async () => {
    const chat = new Chat(sys, "14155550831");
    await chat.say("hi");
    await chat.expectBot(/./);
    const c = await contact(chat.digits);
    await sys.core.prisma.login.create({ data: { tenantId: sys.tenantId, contactId: c.id, externalId: "sess-831", device: "Firefox on Linux", location: "Porto, PT" } });
    const started = await api().post("/v1/flows/login-notice/start").set(admin()).send({ to: "+14155550831", variables: { device: "Firefox on Linux", location: "Porto, PT", login_id: "sess-831" } });
    expect(started.status).toBe(202);
    await chat.expectBot(/New login to your account from/);
    await chat.say("not me");
    const advice = await chat.expectBot(/We've signed out that login and told our team/);
    expect(Chat.ids(advice)).toContain("login_secure");
    expect((await sys.core.prisma.login.findFirstOrThrow({ where: { externalId: "sess-831" } })).revokedAt).not.toBeNull();
    expect((await api().get("/v1/contacts/+14155550831/block").set(admin())).body).toMatchObject({ blocked: false });
    // the owner can still get codes (and so recover)
    expect((await api().post("/v1/verifications").set(admin()).send({ to: "+14155550831" })).status).toBe(201);
  });

  it("typed after the notice's session is over, it starts recover (and still blocks nothing)", async () => {
    const chat = new Chat(sys, "14155550834");
    await chat.say("hi");
    await chat.expectBot(/./);
    await api().post("/v1/flows/login-notice/start").set(admin()).send({ to: "+14155550834", variables: { device: "Edge", location: "Lima, PE", login_id: "sess-834" } });
    await chat.expectBot(/New login to your account from/);
    clock.advance(31 * 60_000);
    await chat.say("não fui eu");
    await chat.expectBot(/Let's secure your account/);
    expect((await api().get("/v1/contacts/+14155550834/block").set(admin())).body).toMatchObject({ blocked: false });
  });

  it("with nothing pending ('no fui yo' out of the blue) it blocks nothing and points to recover", async () => {
    const chat = new Chat(sys, "34612340832");
    await chat.say("hola");
    await chat.expectBot(/./);
    await chat.say("no fui yo");
    await chat.expectBot(/así que no se bloqueó nada/);
    expect((await api().get("/v1/contacts/+34612340832/block").set(admin())).body).toMatchObject({ blocked: false });
    expect((await api().post("/v1/verifications").set(admin()).send({ to: "+34612340832" })).status).toBe(201);
  });

  it("after a code it blocks new codes (GET shows it, DELETE lifts it), and the owner with a PIN can still recover in the chat", async () => {
    const digits = "14155550833";
    const { chat } = await ownerWithPin(digits, "461729");
    await api().post("/v1/verifications").set(admin()).send({ to: `+${digits}` });
    const phished = await codeIn(chat);
    await chat.say("not me");
    await chat.expectBot(/blocked new codes to your number for a while/);
    const block = await api().get(`/v1/contacts/+${digits}/block`).set(admin());
    expect(block.status).toBe(200);
    expect(block.body).toMatchObject({ to: `+${digits}`, blocked: true, reason: "reported" });
    expect((await api().post("/v1/verifications").set(admin()).send({ to: `+${digits}` })).body.error.code).toBe("number_blocked");

    // the owner recovers: the recovery code goes out despite the block, and the PIN is asked
    await chat.say("recover my account");
    await chat.expectBot(/Let's secure your account/);
    await chat.tap("rc_go");
    const code = await codeIn(chat, phished);
    await chat.expectBot(/Type the code I just sent/);
    await chat.say(code);
    await chat.expectBot(/Two-step verification is on\. Type your 6-digit PIN/);
    await chat.say("461729");
    await chat.expectBot(/No other device or web session is signed in/);
    await chat.expectBot(/Your account is back in your hands/);

    const lifted = await api().delete(`/v1/contacts/+${digits}/block`).set(admin());
    expect(lifted.status).toBe(200);
    expect(lifted.body).toMatchObject({ blocked: false, lifted: true });
    expect((await api().get(`/v1/contacts/+${digits}/block`).set(admin())).body).toMatchObject({ blocked: false });
    expect((await api().post("/v1/verifications").set(admin()).send({ to: `+${digits}` })).status).toBe(201);
    expect(await sys.core.prisma.auditEvent.count({ where: { type: "number.block_lifted" } })).toBe(1);
  });
});

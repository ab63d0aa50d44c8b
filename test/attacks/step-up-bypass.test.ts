import request from "supertest";
import { listVerifications } from "../../src/web/console/queries";
import { STEP_UP_MAX_ATTEMPTS, STEP_UP_SENDS } from "../../src/tenants/step-up";
import { contact, envelope, messages } from "../helpers/payloads";
import { postSigned } from "../helpers/signed";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Attacks on step-up (the code that confirms a tenant admin's security-sensitive change), each tried with a tenant's
 * own admin key (what a leaked key gives), on real PostgreSQL and Redis with the sandbox as Meta:
 * 1. test numbers / attempts / limits from the tenant's OTP settings used to confirm or brute-force a held change;
 * 3. the step-up code's verification reached through the Verify API;
 * 4. another tenant's WABA claimed, and its account-level webhooks signed with the claimant's own app secret;
 * 5. flows with sensitive actions published without step-up and started from the API on any customer;
 * 6. held changes that could never apply (a bad callback URL), and admin numbers that cannot receive codes.
 */
let sys: TestSystem;
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const TEST_CODE = "135792";

interface Tenant {
  id: string;
  key: string;
  adminNumber: string;
  digits: string;
  auth: () => Record<string, string>;
}

let seq = 0;
/** a tenant with an admin number and its own admin key (made with the break-glass key, applied at once) */
async function tenant(extra: Record<string, unknown> = {}, adminDigits?: string): Promise<Tenant> {
  seq++;
  const digits = adminDigits ?? `4479111${String(20000 + seq).padStart(5, "0")}`;
  const t = await api()
    .post("/admin/tenants")
    .set(root())
    .send({ phoneNumberId: String(40000 + seq), displayPhoneNumber: `+1 555 004 ${String(1000 + seq)}`, accessToken: `EAAG-step-up-attack-${seq}`, adminNumber: `+${digits}`, ...extra });
  expect(t.status).toBe(201);
  const k = await api().post(`/admin/tenants/${t.body.id}/api-keys`).set(root()).send({ scopes: ["admin", "verify", "read"] });
  expect(k.status).toBe(201);
  return { id: t.body.id, key: k.body.key, adminNumber: `+${digits}`, digits, auth: () => ({ Authorization: `Bearer ${k.body.key}` }) };
}

/** the newest code the sandbox delivered to this admin number, once it differs from `previous` */
const codeTo = (t: Tenant, previous?: string | null) =>
  waitFor(() => {
    const c = latestCode(sys.sandbox, t.digits);
    return c && c !== previous ? c : null;
  });
const sendsTo = (t: Tenant) => sys.sandbox.conversation(t.digits).filter((m) => m.direction === "outbound" && m.type === "template").length;
const settingsOf = async (t: Tenant) => (await api().get(`/admin/tenants/${t.id}`).set(root())).body.settings;

/** holds a new API key for `t` (the held action used to probe step-up) and returns the held change and the code sent */
async function holdKey(t: Tenant) {
  const previous = latestCode(sys.sandbox, t.digits);
  const held = await api().post(`/admin/tenants/${t.id}/api-keys`).set(t.auth()).send({ scopes: ["admin"] });
  expect(held.status).toBe(202);
  const code = await codeTo(t, previous);
  return { id: held.body.stepUp.id as string, code };
}
const confirm = (t: Tenant, id: string, code: string) => api().post(`/admin/step-ups/${id}/confirm`).set(t.auth()).send({ code });

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
});
afterAll(async () => {
  await sys.close();
});

describe("1. step-up codes do not come from the tenant's OTP settings", () => {
  it("a tenant key adding a test number (here: the admin number itself) is held, not applied", async () => {
    // a fictitious number (test numbers must be) that is also a valid mobile-capable number, so it can be the admin's
    const t = await tenant({}, "12025550123");
    const res = await api().patch(`/admin/tenants/${t.id}/settings`).set(t.auth()).send({ otp: { testNumbers: [{ number: t.adminNumber, code: TEST_CODE }] } });
    expect(res.status).toBe(202);
    expect(res.body.stepUp.action).toBe("settings.security");
    expect((await settingsOf(t)).otp.testNumbers).toEqual([]);
  });

  it("raising attempts, send limits or rate limits with a tenant key is held too; tightening a code's length is not", async () => {
    const t = await tenant();
    for (const patch of [{ otp: { maxAttempts: 10 } }, { otp: { maxSendsPerNumber: 50 } }, { limits: { checksPerNumberPer10Minutes: 100000 } }, { limits: { fallbackBudgetPerDay: 1e9 } }, { otp: { channelCosts: { sms: 0 } } }, { flows: { httpAllowedHosts: ["*.example.com"] } }, { otp: { templates: { en_US: { name: "promo_with_link", language: "en_US" } } } }]) {
      const res = await api().patch(`/admin/tenants/${t.id}/settings`).set(t.auth()).send(patch);
      expect({ patch, status: res.status }).toEqual({ patch, status: 202 });
    }
    const s = await settingsOf(t);
    expect([s.otp.maxAttempts, s.otp.maxSendsPerNumber, s.limits.checksPerNumberPer10Minutes, s.flows.httpAllowedHosts]).toEqual([5, 5, 30, []]);
    expect((await api().patch(`/admin/tenants/${t.id}/settings`).set(t.auth()).send({ otp: { codeLength: 8 } })).status).toBe(200);
    expect((await api().patch(`/admin/tenants/${t.id}/settings`).set(t.auth()).send({ otp: { codeLength: 6 } })).status).toBe(202);
  });

  it("a test number with a fixed code for the admin number (even applied by the operator) never confirms a held change", async () => {
    const t = await tenant({}, "12025550124");
    // the operator's break-glass key applies it at once: step-up must not care
    const set = await api().patch(`/admin/tenants/${t.id}/settings`).set(root()).send({ otp: { testNumbers: [{ number: t.adminNumber, code: TEST_CODE }] } });
    expect(set.status).toBe(200);
    const held = await holdKey(t);
    expect(held.code).not.toBe(TEST_CODE);
    const forged = await confirm(t, held.id, TEST_CODE);
    expect(forged.status).toBe(422);
    expect(forged.body.error.code).toBe("invalid_code");
    const ok = await confirm(t, held.id, held.code);
    expect(ok.status).toBe(201);
    expect(ok.body.result.key).toMatch(/^wbk_/);
  });

  it("step-up allows 5 attempts whatever otp.maxAttempts says; then even the right code is refused", async () => {
    const t = await tenant({ settings: { otp: { maxAttempts: 10 } } });
    const held = await holdKey(t);
    const wrong = held.code === "000000" ? "111111" : "000000";
    for (let i = 1; i <= STEP_UP_MAX_ATTEMPTS; i++) {
      const r = await confirm(t, held.id, wrong);
      expect(r.status).toBe(422);
      expect(r.body.error.details.attemptsLeft).toBe(STEP_UP_MAX_ATTEMPTS - i);
    }
    const late = await confirm(t, held.id, held.code);
    expect(late.status).toBe(409);
    expect((await api().get(`/admin/step-ups/${held.id}`).set(t.auth())).body.status).toBe("failed");
    expect((await api().get(`/admin/tenants/${t.id}/api-keys`).set(root())).body.apiKeys).toHaveLength(1);
  });

  it("step-up codes to one admin number are capped whatever otp.maxSendsPerNumber says", async () => {
    const t = await tenant({ settings: { otp: { maxSendsPerNumber: 50, testNumbers: [] } } });
    for (let i = 0; i < STEP_UP_SENDS.per10Minutes; i++) {
      expect((await api().post(`/admin/tenants/${t.id}/events/rotate-secret`).set(t.auth())).status).toBe(202);
    }
    const over = await api().post(`/admin/tenants/${t.id}/events/rotate-secret`).set(t.auth());
    expect(over.status).toBe(429);
    expect(over.headers["retry-after"]).toEqual(expect.any(String));
    expect((await api().get("/admin/step-ups").query({ status: "pending" }).set(t.auth())).body.stepUps).toHaveLength(STEP_UP_SENDS.per10Minutes);
  });

  it("a code sent for one held change does not confirm another", async () => {
    const t = await tenant();
    const a = await holdKey(t);
    const b = await holdKey(t);
    expect((await confirm(t, b.id, a.code)).status).toBe(a.code === b.code ? 201 : 422);
  });
});

describe("3. the step-up code's verification is invisible to the Verify API and the console", () => {
  it("check, get and cancel by its id answer 404, and the console list leaves it out", async () => {
    const t = await tenant();
    const held = await holdKey(t);
    const row = await sys.core.prisma.heldChange.findUniqueOrThrow({ where: { id: held.id } });
    const vid = row.verificationId!;
    const check = await api().post("/v1/verifications/check").set(t.auth()).send({ id: vid, code: "000000" });
    expect(check.status).toBe(404);
    expect(JSON.stringify(check.body)).not.toContain(t.digits);
    expect((await api().get(`/v1/verifications/${vid}`).set(t.auth())).status).toBe(404);
    const cancel = await api().post(`/v1/verifications/${vid}/cancel`).set(t.auth());
    expect(cancel.status).toBe(404);
    expect((await sys.core.prisma.verification.findUniqueOrThrow({ where: { id: vid } })).status).toBe("pending");
    expect((await listVerifications(sys.core.prisma, t.id, { limit: 100 })).map((v) => v.id)).not.toContain(vid);
    // the held change still confirms with its code
    expect((await confirm(t, held.id, held.code)).status).toBe(201);
  });
});

describe("4. a WABA id belongs to one tenant", () => {
  const template = (wabaId: string, name: string) => ({
    object: "whatsapp_business_account",
    entry: [{ id: wabaId, time: 1, changes: [{ field: "message_template_status_update", value: { event: "PAUSED", message_template_id: 7, message_template_name: name, message_template_language: "en_US", reason: "NONE" } }] }],
  });
  const statusesOf = (tenantId: string) => sys.core.prisma.templateStatus.findMany({ where: { tenantId } }).then((rows) => rows.map((r) => r.name));

  it("a tenant key cannot claim another tenant's WABA, and its own WABA change is held", async () => {
    const victim = await tenant({ wabaId: "880000000000001" });
    const attacker = await tenant({ appSecret: "a".repeat(32) });
    const claim = await api().patch(`/admin/tenants/${attacker.id}`).set(attacker.auth()).send({ wabaId: "880000000000001" });
    expect(claim.status).toBe(409);
    expect(claim.body.error.code).toBe("waba_id_taken");
    const own = await api().patch(`/admin/tenants/${attacker.id}`).set(attacker.auth()).send({ wabaId: "880000000000002" });
    expect(own.status).toBe(202);
    expect(own.body.stepUp.action).toBe("tenant.set_waba_id");
    expect((await api().get(`/admin/tenants/${attacker.id}`).set(root())).body.wabaId).toBeNull();
    // the name is no security setting: it applies at once
    expect((await api().patch(`/admin/tenants/${attacker.id}`).set(attacker.auth()).send({ name: "Renamed" })).status).toBe(200);
    expect(victim.id).not.toBe(attacker.id);
  });

  it("an own app secret does not sign account updates for a WABA another secret's tenant shares", async () => {
    const secret = "b".repeat(32);
    const victim = await tenant({ wabaId: "880000000000011" });
    // the WABA id got onto the attacker's tenant another way (the operator, or learnt from its own signed webhook)
    const attacker = await tenant({ appSecret: secret, wabaId: "880000000000011" });
    expect((await postSigned(sys.http.url, template("880000000000011", "forged_pause"), secret)).status).toBe(200);
    // the same update signed by the victim's app (the deployment's secret) is applied: the positive control
    expect((await postSigned(sys.http.url, template("880000000000011", "real_pause"), sys.config.WHATSAPP_APP_SECRET)).status).toBe(200);
    await waitFor(async () => (await statusesOf(victim.id)).includes("real_pause"));
    expect(await statusesOf(victim.id)).not.toContain("forged_pause");
    expect(await statusesOf(attacker.id)).not.toContain("forged_pause");
  });
});

describe("4b. a WABA id is never learnt from a tenant's own signature when another tenant has it", () => {
  const inboundNaming = (wabaId: string, phoneNumberId: string) => {
    const body = envelope({ phoneNumberId, contacts: [contact("447911100001")], messages: [messages.text("447911100001", "hello")] });
    body.entry[0]!.id = wabaId;
    return body;
  };
  const wabaOf = async (id: string) => (await api().get(`/admin/tenants/${id}`).set(root())).body as { wabaId: string | null; phoneNumberId: string };

  it("a tenant signing its own webhooks does not join a WABA another tenant has; one signed by Meta's app does", async () => {
    const secret = "c".repeat(32);
    await tenant({ wabaId: "880000000000021" });
    const attacker = await tenant({ appSecret: secret });
    const attackerNumber = (await wabaOf(attacker.id)).phoneNumberId;
    expect((await postSigned(sys.http.url, inboundNaming("880000000000021", attackerNumber), secret)).status).toBe(200);
    // the message is handled (the tenant's row is read and its WABA id considered) ...
    await waitFor(async () => (await sys.core.prisma.message.count({ where: { tenantId: attacker.id, direction: "inbound" } })) > 0);
    // ... and the other business's WABA id is not taken
    expect((await wabaOf(attacker.id)).wabaId).toBeNull();

    // the positive control: a second number of that business, on the deployment's app (signed by Meta), joins it
    const sibling = await tenant();
    const siblingNumber = (await wabaOf(sibling.id)).phoneNumberId;
    expect((await postSigned(sys.http.url, inboundNaming("880000000000021", siblingNumber), sys.config.WHATSAPP_APP_SECRET)).status).toBe(200);
    await waitFor(async () => (await wabaOf(sibling.id)).wabaId === "880000000000021");
    // and an own-secret tenant whose WABA nobody else has still learns it
    const loner = await tenant({ appSecret: "d".repeat(32) });
    const lonerNumber = (await wabaOf(loner.id)).phoneNumberId;
    expect((await postSigned(sys.http.url, inboundNaming("880000000000031", lonerNumber), "d".repeat(32))).status).toBe(200);
    await waitFor(async () => (await wabaOf(loner.id)).wabaId === "880000000000031");
  });
});

describe("3b. the step-up code's carrier sends no business event", () => {
  it("a held change's code, confirmed, leaves no verification.* event for the tenant's callback; a Verify API code does", async () => {
    const t = await tenant();
    expect((await api().put(`/admin/tenants/${t.id}/events`).set(root()).send({ url: "https://hooks.example.invalid/verify" })).status).toBe(200);
    const { id, code } = await holdKey(t);
    expect((await confirm(t, id, code!)).status).toBe(201);
    // the positive control: an ordinary code for a customer is told to the callback
    const v = await api().post("/v1/verifications").set(t.auth()).send({ to: "+447911100002" });
    expect(v.status).toBe(201);
    await waitFor(async () => (await sys.core.prisma.eventDelivery.count({ where: { tenantId: t.id, type: "verification.requested" } })) > 0);
    const events = await sys.core.prisma.eventDelivery.findMany({ where: { tenantId: t.id } });
    expect(events.length).toBeGreaterThan(0);
    expect(JSON.stringify(events.map((e) => e.payload))).not.toContain("step_up");
    expect(JSON.stringify(events.map((e) => e.payload))).not.toContain(t.digits);
  });
});

describe("5. flows with sensitive actions", () => {
  const sensitive = (name: string) => ({
    name,
    triggers: [{ type: "api" }],
    steps: [{ id: "grant", type: "action", action: "mark_verified" }, { id: "done", type: "end", text: "done" }],
  });
  const ordinary = (name: string) => ({ name, triggers: [{ type: "keyword", keywords: [`${name}-kw`] }], steps: [{ id: "a", type: "send", text: "hi" }] });

  it("a tenant key's publish of a sensitive flow, or of a built-in's name, is held; an ordinary flow publishes at once", async () => {
    const t = await tenant();
    const held = await api().put("/admin/flows/grant-a").set(t.auth()).send(sensitive("grant-a"));
    expect(held.status).toBe(202);
    expect(held.body.stepUp.action).toBe("flow.publish");
    expect((await api().get("/admin/flows/grant-a").set(t.auth())).status).toBe(404);
    const builtin = await api().put("/admin/flows/verify").set(t.auth()).send(ordinary("verify"));
    expect(builtin.status).toBe(202);
    expect((await api().put("/admin/flows/plain-a").set(t.auth()).send(ordinary("plain-a"))).status).toBe(201);
    // both held publishes sent their code; an invalid definition is refused before any code
    await waitFor(() => sendsTo(t) >= 2);
    expect((await api().put("/admin/flows/broken").set(t.auth()).send({ name: "broken", steps: [] })).status).toBe(422);
    const pending = (await api().get("/admin/step-ups").query({ status: "pending" }).set(t.auth())).body.stepUps as { id: string; action: string }[];
    expect(pending.map((p) => p.action)).toEqual(["flow.publish", "flow.publish"]);
    // confirming publishes it (version 1)
    const code = latestCode(sys.sandbox, t.digits)!;
    const target = pending.find((p) => p.id === held.body.stepUp.id)!;
    const sent = await confirm(t, target.id, code);
    if (sent.status === 422) {
      // the newest code belongs to the other held publish (the built-in's): it does not confirm this one
      expect(sent.body.error.code).toBe("invalid_code");
    } else {
      expect(sent.status).toBe(201);
      expect((await api().get("/admin/flows/grant-a").set(t.auth())).body.version).toBe(1);
    }
    expect(sendsTo(t)).toBe(2);
  });

  it("the break-glass key still publishes a sensitive flow at once (version + 1)", async () => {
    const a = await api().put("/admin/flows/grant-b").set(root()).send(sensitive("grant-b"));
    expect(a.status).toBe(201);
    const b = await api().put("/admin/flows/grant-b").set(root()).send(sensitive("grant-b"));
    expect([b.status, b.body.version]).toEqual([200, a.body.version + 1]);
  });

  it("a tenant key's rollback to a sensitive version is held", async () => {
    const t = await tenant();
    const v1 = await api().put("/admin/flows/roll").query({ tenantId: t.id }).set(root()).send(sensitive("roll"));
    expect(v1.status).toBe(201);
    expect((await api().put("/admin/flows/roll").set(t.auth()).send({ ...ordinary("roll"), triggers: [{ type: "api" }] })).status).toBe(200);
    const back = await api().post("/admin/flows/roll/rollback").set(t.auth()).send({ version: 1 });
    expect(back.status).toBe(202);
    expect(back.body.stepUp.action).toBe("flow.rollback");
    expect((await api().get("/admin/flows/roll").set(t.auth())).body.version).toBe(2);
  });

  it("an API start never runs a sensitive action on a customer who has not verified in the chat", async () => {
    expect((await api().put("/admin/flows/grant-c").set(root()).send(sensitive("grant-c"))).status).toBe(201);
    const res = await api().post("/v1/flows/grant-c/start").set(root()).send({ to: "+14155550199" });
    expect(res.status).toBe(202);
    // the action is decided in the start request; a contact write it makes may land just after (a deferred write)
    await waitFor(() => sys.core.prisma.auditEvent.findFirst({ where: { type: { in: ["flow.action_refused", "contact.verified"] }, tenantId: sys.tenantId } }));
    await new Promise((r) => setTimeout(r, 300));
    const contact = await sys.core.prisma.contact.findFirst({ where: { tenantId: sys.tenantId, phoneE164: "+14155550199" } });
    expect(contact).not.toBeNull();
    expect(contact!.verifiedAt).toBeNull();
    expect(await sys.core.prisma.auditEvent.count({ where: { type: "contact.verified", tenantId: sys.tenantId } })).toBe(0);
    const refused = await sys.core.prisma.auditEvent.findFirst({ where: { type: "flow.action_refused", tenantId: sys.tenantId } });
    expect(refused?.data).toMatchObject({ flow: "grant-c", action: "mark_verified", reason: "api_start_unverified" });
  });
  it("after the customer verifies in the chat (a code to their own number), the API-started flow's sensitive action runs", async () => {
    const flow = {
      name: "grant-v",
      triggers: [{ type: "api" }],
      steps: [
        // the customer answers first (a code request inside the API's own start transaction is another matter)
        { id: "hello", type: "ask", text: "Reply OK to continue", input: { type: "text" }, save: "ok", next: "req" },
        { id: "req", type: "otp_request", purpose: "grant", next: "check" },
        { id: "check", type: "otp_verify", purpose: "grant", text: "Type the code", approved: "grant" },
        { id: "grant", type: "action", action: "mark_verified" },
        { id: "done", type: "end", text: "done" },
      ],
    };
    expect((await api().put("/admin/flows/grant-v").set(root()).send(flow)).status).toBe(201);
    expect((await api().post("/v1/flows/grant-v/start").set(root()).send({ to: "+14155550198" })).status).toBe(202);
    await sys.sandbox.injectInbound({ from: "14155550198", text: "OK" });
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550198"));
    const contactOf = () => sys.core.prisma.contact.findFirst({ where: { tenantId: sys.tenantId, phoneE164: "+14155550198" } });
    expect((await contactOf())!.verifiedAt).toBeNull();
    await sys.sandbox.injectInbound({ from: "14155550198", text: code });
    await waitFor(async () => (await contactOf())?.verifiedAt);
    // the audit names the key that started the flow, not the customer (who did not ask for it)
    const entry = await sys.core.prisma.auditEvent.findFirst({ where: { tenantId: sys.tenantId, type: "contact.verified" }, orderBy: { createdAt: "desc" } });
    expect(entry?.actor).toBe("flow:grant-v (started by admin-key)");
  });
  it("an API-started flow may ask for the customer's code in its first step (a new contact: no wait on the start's own transaction)", async () => {
    const flow = {
      name: "grant-w",
      triggers: [{ type: "api" }],
      steps: [
        { id: "req", type: "otp_request", purpose: "grant", next: "check" },
        { id: "check", type: "otp_verify", purpose: "grant", text: "Type the code", approved: "grant" },
        { id: "grant", type: "action", action: "mark_verified" },
        { id: "done", type: "end", text: "done" },
      ],
    };
    expect((await api().put("/admin/flows/grant-w").set(root()).send(flow)).status).toBe(201);
    const t0 = Date.now();
    expect((await api().post("/v1/flows/grant-w/start").set(root()).send({ to: "+14155550197" })).status).toBe(202);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550197"));
    await sys.sandbox.injectInbound({ from: "14155550197", text: code });
    await waitFor(async () => (await sys.core.prisma.contact.findFirst({ where: { tenantId: sys.tenantId, phoneE164: "+14155550197" } }))?.verifiedAt);
  });
});

describe("6. a held change is validated in full before its code is sent", () => {
  it("a callback URL that could not be set is 400 and sends no code", async () => {
    const t = await tenant();
    const before = sendsTo(t);
    for (const url of ["ftp://hooks.example.com/x", "https://10.0.0.1/hook", "not a url"]) {
      const res = await api().put(`/admin/tenants/${t.id}/events`).set(t.auth()).send({ url });
      expect({ url, status: res.status, code: res.body.error?.code }).toEqual({ url, status: 400, code: "invalid_callback_url" });
    }
    expect((await api().get("/admin/step-ups").query({ status: "pending" }).set(t.auth())).body.stepUps).toEqual([]);
    await new Promise((r) => setTimeout(r, 200));
    expect(sendsTo(t)).toBe(before);
  });

  it("an admin number must be a real mobile number, at creation and when changed", async () => {
    for (const adminNumber of ["+442079460000", "+10000000000", "+999123456789"]) {
      const res = await api().post("/admin/tenants").set(root()).send({ phoneNumberId: "49999", displayPhoneNumber: "15550049999", accessToken: "EAAG-bad-admin-number", adminNumber });
      expect({ adminNumber, status: res.status }).toEqual({ adminNumber, status: 400 });
    }
    const t = await tenant();
    const landline = await api().put(`/admin/tenants/${t.id}/admin-number`).set(root()).send({ number: "+442079460000" });
    expect(landline.status).toBe(400);
    const ok = await api().put(`/admin/tenants/${t.id}/admin-number`).set(root()).send({ number: "+447911123457" });
    expect(ok.status).toBe(200);
  });
});

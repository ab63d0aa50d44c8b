import request from "supertest";
import { ManualClock } from "../../src/shared/clock";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** The Verify API as a business backend uses it, with the sandbox as Meta and an injected clock. */
let sys: TestSystem;
const clock = new ManualClock(Date.now());
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);

beforeAll(async () => {
  sys = await startTestSystem({ clock, env: { SMS_PROVIDER: "sandbox", VOICE_PROVIDER: "sandbox", OUTBOUND_RECIPIENT_GAP_MS: "5" } });
});
afterAll(async () => {
  await sys.close();
});

const create = (body: Record<string, unknown>, headers: Record<string, string> = {}) => api().post("/v1/verifications").set(admin()).set(headers).send(body);
const check = (body: Record<string, unknown>) => api().post("/v1/verifications/check").set(admin()).send(body);
const codeFor = (digits: string) => waitFor(() => latestCode(sys.sandbox, digits));

describe("create and check", () => {
  it("sends the code as the authentication template and approves it once", async () => {
    const res = await create({ to: "+14155550123", channel: "whatsapp" });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ to: "+14155550123", channel: "whatsapp", status: "pending", purpose: "login", attemptsRemaining: 5 });
    expect(new Date(res.body.expiresAt).getTime() - clock.now().getTime()).toBe(10 * 60_000);
    const code = await codeFor("14155550123");
    expect(code).toMatch(/^\d{6}$/);
    // the code is in the body and in the copy-code button, as the contract shows
    const sent = sys.sandbox.requests().filter((r) => (r.body as { type?: string }).type === "template").pop()!;
    expect(sent.body).toMatchObject({
      to: "+14155550123",
      template: {
        name: sys.config.WHATSAPP_OTP_TEMPLATE,
        language: { code: sys.config.WHATSAPP_OTP_TEMPLATE_LANGUAGE },
        components: [
          { type: "body", parameters: [{ type: "text", text: code }] },
          { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: code }] },
        ],
      },
    });

    const ok = await check({ to: "+14155550123", code });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: res.body.id, status: "approved", valid: true });
    const again = await check({ to: "+14155550123", code });
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe("verification_not_found");
    const got = await api().get(`/v1/verifications/${res.body.id}`).set(admin());
    expect(got.body.status).toBe("approved");
  });

  it("locks after five wrong codes; then even the right code fails", async () => {
    const res = await create({ to: "+34612345678" });
    const code = await codeFor("34612345678");
    const wrong = code === "000000" ? "111111" : "000000";
    for (let i = 1; i <= 4; i++) {
      const r = await check({ id: res.body.id, code: wrong });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ status: "pending", valid: false, attemptsRemaining: 5 - i });
    }
    const fifth = await check({ id: res.body.id, code: wrong });
    expect(fifth.body).toMatchObject({ status: "max_attempts_reached", valid: false });
    expect((await check({ id: res.body.id, code })).status).toBe(404);
    expect((await api().get(`/v1/verifications/${res.body.id}`).set(admin())).body.status).toBe("max_attempts_reached");
  });

  it("keeps purposes apart", async () => {
    const reg = await create({ to: "+5511987654321", purpose: "registration" });
    expect(reg.status).toBe(201);
    const code = await codeFor("5511987654321");
    expect((await check({ to: "+5511987654321", code })).status).toBe(404); // default purpose: login
    expect((await check({ to: "+5511987654321", code, purpose: "change_number" })).status).toBe(404);
    const ok = await check({ to: "+5511987654321", code, purpose: "registration" });
    expect(ok.body.status).toBe("approved");
  });

  it("expires after the tenant's expiry (injected clock)", async () => {
    const res = await create({ to: "+919876543210" });
    const code = await codeFor("919876543210");
    clock.advance(10 * 60_000 + 1);
    const r = await check({ to: "+919876543210", code });
    expect(r.status).toBe(404);
    const got = await api().get(`/v1/verifications/${res.body.id}`).set(admin());
    expect(got.body.status).toBe("expired");
    const row = await sys.core.prisma.verification.findUniqueOrThrow({ where: { id: res.body.id } });
    expect(row.codeEnc).toBeNull(); // the encrypted copy is erased when the verification ends
  });

  it("cancels", async () => {
    const res = await create({ to: "+12025550123" });
    const c = await api().post(`/v1/verifications/${res.body.id}/cancel`).set(admin());
    expect(c.status).toBe(200);
    expect(c.body.status).toBe("canceled");
    expect((await check({ to: "+12025550123", code: "123456" })).status).toBe(404);
  });
});

describe("re-send", () => {
  it("re-sends the same code after the cool-down, refuses inside it, and caps sends per number", async () => {
    const to = "+16505551234";
    const first = await create({ to });
    const code = await codeFor("16505551234");
    const early = await create({ to });
    expect(early.status).toBe(429);
    expect(early.body.error.code).toBe("resend_cooldown");
    expect(Number(early.headers["retry-after"])).toBeGreaterThan(0);

    const cooldowns = [30, 60, 120, 120];
    for (const [i, wait] of cooldowns.entries()) {
      clock.advance(wait * 1000);
      const again = await create({ to });
      expect(again.status).toBe(201);
      expect(again.body.id).toBe(first.body.id);
      expect(again.body.sendCount).toBe(i + 2);
    }
    await waitFor(() => sys.sandbox.conversation("16505551234").filter((m) => m.type === "template").length === 5);
    expect(sys.sandbox.conversation("16505551234").filter((m) => m.type === "template").every((m) => JSON.stringify(m.payload).includes(code))).toBe(true);
    clock.advance(120_000);
    const capped = await create({ to });
    expect(capped.status).toBe(429);
    expect(capped.body.error.code).toBe("send_limit_reached");
  });

  it("replays an Idempotency-Key without sending again", async () => {
    const h = { "Idempotency-Key": "order-42-login" };
    const a = await create({ to: "+12125550199" }, h);
    const b = await create({ to: "+12125550199" }, h);
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body.id).toBe(a.body.id);
    expect(b.headers["idempotent-replayed"]).toBe("true");
    const other = await create({ to: "+12125550198" }, h);
    expect(other.status).toBe(422);
    await new Promise((r) => setTimeout(r, 200));
    expect(sys.sandbox.conversation("12125550199").filter((m) => m.type === "template")).toHaveLength(1);
  });
});

describe("numbers", () => {
  it("rejects invalid numbers, refused types and countries with clear 400s", async () => {
    const cases: [string, string][] = [
      ["12345", "invalid_phone_number"],
      ["+1415555", "invalid_phone_number"],
      ["+449090123456", "unsupported_number_type"], // UK premium rate
      ["+18005550100", "unsupported_number_type"], // US toll-free
    ];
    for (const [to, code] of cases) {
      const r = await create({ to });
      expect([to, r.status, r.body.error?.code]).toEqual([to, 400, code]);
    }
    const patch = await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ phonePolicy: { deniedCountries: ["IN"] } });
    expect(patch.status).toBe(200);
    const denied = await create({ to: "+919812345678" });
    expect(denied.status).toBe(400);
    expect(denied.body.error.code).toBe("country_not_allowed");
    await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ phonePolicy: { deniedCountries: [] } });
  });

  it("normalises spaced international numbers", async () => {
    const r = await create({ to: "+44 7911 123456" });
    expect(r.status).toBe(201);
    expect(r.body.to).toBe("+447911123456");
  });

  it("rejects bad bodies with JSON errors", async () => {
    const r = await create({ to: "+14155550123", channel: "pigeon" });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe("invalid_request");
    const noAuth = await api().post("/v1/verifications").send({ to: "+14155550123" });
    expect(noAuth.status).toBe(401);
    const badJson = await api().post("/v1/verifications").set(admin()).set("content-type", "application/json").send("{nope");
    expect(badJson.status).toBe(400);
    expect(badJson.body.error.code).toBe("invalid_json");
  });
});

describe("abuse limits", () => {
  it("throttles a burst to one number prefix and per client IP", async () => {
    await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ limits: { prefixPer10Minutes: 3, ipPerHour: 2 } });
    const prefixed = ["+13105550101", "+13105550102", "+13105550103", "+13105550104"];
    const statuses = [];
    for (const to of prefixed) statuses.push((await create({ to })).status);
    expect(statuses).toEqual([201, 201, 201, 429]);
    const ip = "203.0.113.7";
    const byIp = [];
    for (const to of ["+13125550101", "+13135550101", "+13145550101"]) byIp.push((await create({ to, clientIp: ip })).status);
    expect(byIp).toEqual([201, 201, 429]);
    await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ limits: { prefixPer10Minutes: 20, ipPerHour: 30 } });
  });
});

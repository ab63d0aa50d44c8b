import request from "supertest";
import { transaction } from "../../src/db/prisma";
import { emptyPostCommit } from "../../src/otp/delivery";
import { OtpError } from "../../src/otp/errors";
import type { RecordingCodeSender } from "../../src/providers/sandbox/recording-sender";
import { ManualClock } from "../../src/shared/clock";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * SMS pumping and allowance burning through the create path (issue 15, items 2 and 12):
 * - test numbers: only fictitious numbers may be one (a premium-rate number is refused on write, ignored on read
 *   when stored before), at most 20; a test number keeps the number-type policy, the cool-down, every send limit
 *   and the daily cap, and its code never goes out by SMS or voice;
 * - parallel creates for one number (a double click, a retry storm): one code goes out, and only that code is
 *   counted against the number's, the prefix's, the IP's and the daily allowance.
 * Real PostgreSQL and Redis; sandbox SMS and voice recorders; an injected clock for cool-downs.
 */
let sys: TestSystem;
let sms: RecordingCodeSender;
let voice: RecordingCodeSender;
const clock = new ManualClock(Date.UTC(2026, 11, 8, 12));
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);
const create = (body: Record<string, unknown>, headers: Record<string, string> = {}) => api().post("/v1/verifications").set(admin()).set(headers).send(body);
const patchOtp = (otp: Record<string, unknown>) => api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ otp });
const templatesTo = (e164: string) =>
  sys.sandbox.requests().filter((r) => r.method === "POST" && (r.body as { type?: string }).type === "template" && String((r.body as { to?: string }).to).replace(/\D/g, "") === e164.slice(1));
const numberSendsLeft = (to: string) => sys.core.limits.remaining("number_sends", `${sys.tenantId}:${to}`, 5, 600).then((r) => r.remaining);
const prefixLeft = (to: string) => sys.core.limits.remaining("prefix", `${sys.tenantId}:${to.slice(0, -4)}`, 20, 600).then((r) => r.remaining);
const storeSettings = async (otp: Record<string, unknown>) => {
  const t = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
  const settings = (t.settings ?? {}) as Record<string, Record<string, unknown>>;
  await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { settings: JSON.parse(JSON.stringify({ ...settings, otp: { ...(settings.otp ?? {}), ...otp } })) } });
};
const settle = () => new Promise((r) => setTimeout(r, 400));

// a valid US premium-rate number (+1 900): what a pumping attacker earns from
const PREMIUM = "+19002345678";
// a fictitious number (555-0150) in the premium-rate area code: a test number may be it, the type policy still refuses it
const PREMIUM_FICTITIOUS = "+19005550150";
// fictitious numbers (NANP 555-0100…0199) in an ordinary area code
const TEST_NUMBER = "+14155550177";

beforeAll(async () => {
  sys = await startTestSystem({ clock, env: { SMS_PROVIDER: "sandbox", VOICE_PROVIDER: "sandbox", OUTBOUND_RECIPIENT_GAP_MS: "0" } });
  sms = sys.core.senders.sms as RecordingCodeSender;
  voice = sys.core.senders.voice as RecordingCodeSender;
});
afterAll(async () => {
  await sys.close();
});

describe("test numbers (SMS pumping)", () => {
  it("refuses a premium-rate number as a test number on write, and 40 SMS requests to it send nothing", async () => {
    const patched = await patchOtp({ testNumbers: [{ number: PREMIUM, code: "123456" }] });
    expect(patched.status).toBe(422);
    expect(patched.body.error).toMatchObject({ code: "invalid_settings" });
    expect(JSON.stringify(patched.body.error.details)).toMatch(/fictitious/);
    // the tenant-creation path validates the same way
    const tenant = await api().post("/admin/tenants").set(admin()).send({
      phoneNumberId: "900900900900", displayPhoneNumber: "15550900900", accessToken: "token-of-another-tenant",
      settings: { otp: { testNumbers: [{ number: PREMIUM }] } },
    });
    expect(tenant.status).toBe(422);

    const answers = await Promise.all(Array.from({ length: 40 }, () => create({ to: PREMIUM, channel: "sms" })));
    expect(answers.map((a) => a.status)).toEqual(Array(40).fill(400));
    expect(answers.every((a) => a.body.error.code === "unsupported_number_type")).toBe(true);
    await settle();
    expect(sms.sent(PREMIUM)).toEqual([]);
    expect(await sys.core.prisma.verification.count({ where: { to: PREMIUM } })).toBe(0);
  });

  it("ignores a non-fictitious test number stored before the rule: no crash, no exemption, no fixed code", async () => {
    await storeSettings({ testNumbers: [{ number: PREMIUM, code: "123456" }, { number: "+14155551234", code: "111111" }] });
    const view = await api().get(`/admin/tenants/${sys.tenantId}`).set(admin());
    expect(view.status).toBe(200);
    expect(view.body.settings.otp.testNumbers).toEqual([]);

    // the premium number gets no exemption from the number-type policy
    const premium = await create({ to: PREMIUM, channel: "sms" });
    expect(premium.status).toBe(400);
    expect(premium.body.error.code).toBe("unsupported_number_type");
    // the ordinary one is an ordinary number: a random code, and the cool-down applies
    const first = await create({ to: "+14155551234" });
    expect(first.status).toBe(201);
    expect(await waitFor(() => latestCode(sys.sandbox, "14155551234"))).not.toBe("111111");
    const again = await create({ to: "+14155551234" });
    expect(again.status).toBe(429);
    expect(again.body.error.code).toBe("resend_cooldown");
    await settle();
    expect(sms.sent(PREMIUM)).toEqual([]);
    await storeSettings({ testNumbers: [] });
  });

  it("a fictitious test number in a premium-rate area code is still refused by the number-type policy", async () => {
    expect((await patchOtp({ testNumbers: [{ number: PREMIUM_FICTITIOUS, code: "123456" }] })).status).toBe(200);
    const answers = await Promise.all(Array.from({ length: 40 }, () => create({ to: PREMIUM_FICTITIOUS, channel: "sms" })));
    expect(answers.every((a) => a.status === 400 && a.body.error.code === "unsupported_number_type")).toBe(true);
    await settle();
    expect(sms.sent(PREMIUM_FICTITIOUS)).toEqual([]);
    expect(voice.sent(PREMIUM_FICTITIOUS)).toEqual([]);
  });

  it("caps the list at 20 and accepts only documented fictitious ranges", async () => {
    const many = Array.from({ length: 21 }, (_, i) => ({ number: `+1415555${String(100 + i).padStart(4, "0")}` }));
    expect((await patchOtp({ testNumbers: many })).status).toBe(422);
    expect((await patchOtp({ testNumbers: many.slice(0, 20) })).status).toBe(200);
    expect((await patchOtp({ testNumbers: [{ number: "+442079460123" }, { number: "+12125550199" }] })).status).toBe(200);
    // just outside the ranges: 555-0200, 555-0099, a real London number
    for (const number of ["+14155550200", "+14155550099", "+442079461234"]) expect((await patchOtp({ testNumbers: [{ number }] })).status).toBe(422);
  });

  it("a test number's code never goes out by SMS or voice: asked for, defaulted to, or as a fallback", async () => {
    expect((await patchOtp({ testNumbers: [{ number: TEST_NUMBER, code: "246810" }] })).status).toBe(200);
    const bySms = await create({ to: TEST_NUMBER, channel: "sms" });
    expect(bySms.status).toBe(400);
    expect(bySms.body.error.code).toBe("channel_unavailable");
    expect((await create({ to: TEST_NUMBER, channel: "voice" })).status).toBe(400);

    // WhatsApp cannot deliver (131026): a real number would fall back to SMS, a test number does not
    sys.sandbox.addFault({ type: "undeliverable", to: TEST_NUMBER });
    const v = await create({ to: TEST_NUMBER });
    expect(v.status).toBe(201);
    await waitFor(async () => (await sys.core.prisma.otpDelivery.findFirst({ where: { verificationId: v.body.id, status: "failed" } })) !== null);
    await settle();
    const deliveries = await sys.core.prisma.otpDelivery.findMany({ where: { verificationId: v.body.id } });
    expect(deliveries.map((d) => d.channel)).toEqual(["whatsapp"]);
    expect(sms.sent(TEST_NUMBER)).toEqual([]);
    expect(voice.sent(TEST_NUMBER)).toEqual([]);
    await api().post(`/v1/verifications/${v.body.id}/cancel`).set(admin());

    // SMS first in the tenant's order: the default channel of a test number is refused too
    expect((await patchOtp({ channels: ["sms", "voice", "whatsapp"] })).status).toBe(200);
    expect((await create({ to: TEST_NUMBER })).status).toBe(400);
    expect((await patchOtp({ channels: ["whatsapp", "sms", "voice"] })).status).toBe(200);
    await settle();
    expect(sms.sent(TEST_NUMBER)).toEqual([]);
  });

  it("a test number keeps the cool-down and the per-number send cap (it only fixes the code)", async () => {
    const to = "+14155550178";
    expect((await patchOtp({ testNumbers: [{ number: to, code: "135790" }] })).status).toBe(200);
    const first = await create({ to });
    expect(first.status).toBe(201);
    expect(await waitFor(() => latestCode(sys.sandbox, to.slice(1)))).toBe("135790");
    const early = await create({ to });
    expect(early.status).toBe(429);
    expect(early.body.error.code).toBe("resend_cooldown");
    for (const wait of [30, 60, 120, 120]) {
      clock.advance(wait * 1000);
      expect((await create({ to })).status).toBe(201);
    }
    clock.advance(120_000);
    const capped = await create({ to });
    expect(capped.status).toBe(429);
    expect(capped.body.error.code).toBe("send_limit_reached");
    await waitFor(() => templatesTo(to).length === 5);
  });
});

describe("parallel creates for one number", () => {
  it("15 parallel requests send one code and spend one place of each allowance; a re-send after the cool-down still goes", async () => {
    const to = "+13035550101";
    const ip = "198.51.100.23";
    const dailyBefore = await sys.core.dailyCodes.count(sys.tenantId);
    const answers = await Promise.all(Array.from({ length: 15 }, () => create({ to, clientIp: ip })));
    const created = answers.filter((a) => a.status === 201);
    expect(created.length).toBeGreaterThanOrEqual(1);
    expect(new Set(created.map((a) => a.body.id)).size).toBe(1);
    for (const a of answers.filter((x) => x.status !== 201)) {
      expect(a.status).toBe(429);
      expect(a.body.error.code).toBe("resend_cooldown");
      expect(Number(a.headers["retry-after"])).toBeGreaterThan(0);
    }
    expect(await sys.core.prisma.verification.count({ where: { to } })).toBe(1);
    await waitFor(() => templatesTo(to).length === 1);
    await settle();
    expect(templatesTo(to)).toHaveLength(1);

    expect(await numberSendsLeft(to)).toBe(4);
    expect(await prefixLeft(to)).toBe(19);
    expect((await sys.core.limits.remaining("ip", `${sys.tenantId}:${ip}`, 30, 3600)).remaining).toBe(29);
    expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(dailyBefore + 1);

    clock.advance(31_000);
    const resent = await create({ to, clientIp: ip });
    expect(resent.status).toBe(201);
    expect(resent.body.id).toBe(created[0]!.body.id);
    expect(resent.body.sendCount).toBe(2);
    expect(await numberSendsLeft(to)).toBe(3);
  });

  it("parallel re-sends after the cool-down send once and spend once", async () => {
    const to = "+13125550102";
    expect((await create({ to })).status).toBe(201);
    clock.advance(31_000);
    const answers = await Promise.all(Array.from({ length: 15 }, () => create({ to })));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    expect(answers.filter((a) => a.status === 429).every((a) => a.body.error.code === "resend_cooldown")).toBe(true);
    await waitFor(() => templatesTo(to).length === 2);
    await settle();
    expect(templatesTo(to)).toHaveLength(2);
    expect(await numberSendsLeft(to)).toBe(3);
    expect(await prefixLeft(to)).toBe(18);
  });

  it("with a different Idempotency-Key on each retry: still one code and one place", async () => {
    const to = "+13135550103";
    const answers = await Promise.all(Array.from({ length: 15 }, (_, i) => create({ to }, { "Idempotency-Key": `retry-${i}` })));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(1);
    await waitFor(() => templatesTo(to).length === 1);
    expect(await numberSendsLeft(to)).toBe(4);
    // a failed request does not keep its key: the same key again is a fresh request, refused by the cool-down
    const loser = answers.findIndex((a) => a.status === 429);
    const again = await create({ to }, { "Idempotency-Key": `retry-${loser}` });
    expect(again.status).toBe(429);
    expect(await numberSendsLeft(to)).toBe(4);
  });

  it("in the chat's transaction (a \"new code\" request): one code, one place", async () => {
    const to = "+13145550104";
    const who = { tenantId: sys.tenantId, actor: "chat:test" };
    const results = await Promise.allSettled(
      Array.from({ length: 15 }, () => {
        const post = emptyPostCommit();
        return transaction(sys.core.prisma, (tx) => sys.core.verifications.create(who, { to }, { tx, post })).then(async (v) => {
          await sys.core.planner.afterCommit(post);
          return v;
        });
      }),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect((r.reason as OtpError).code).toBe("resend_cooldown");
    expect(await sys.core.prisma.verification.count({ where: { to } })).toBe(1);
    expect(await numberSendsLeft(to)).toBe(4);
    expect(await prefixLeft(to)).toBe(19);
  });

  it("a refused code gives back what it took: the prefix and IP are not spent by a number at its cap", async () => {
    const to = "+13155550105";
    const ip = "198.51.100.24";
    expect((await patchOtp({ maxSendsPerNumber: 1 })).status).toBe(200);
    try {
      expect((await create({ to, clientIp: ip })).status).toBe(201);
      clock.advance(9 * 60_000 + 5_000); // under a minute of life left: a new code is needed, over the number's cap
      for (let i = 0; i < 5; i++) {
        const refused = await create({ to, clientIp: ip });
        expect(refused.status).toBe(429);
        expect(refused.body.error.code).toBe("send_limit_reached");
      }
      expect(await prefixLeft(to)).toBe(19);
      expect((await sys.core.limits.remaining("ip", `${sys.tenantId}:${ip}`, 30, 3600)).remaining).toBe(29);
    } finally {
      expect((await patchOtp({ maxSendsPerNumber: 5 })).status).toBe(200);
    }
  });
});

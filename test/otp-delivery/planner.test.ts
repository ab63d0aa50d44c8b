import { chooseTemplate, fillPlaceholder, nextChannel, OTP_PLACEHOLDER } from "../../src/otp/delivery.planner";
import { VerificationEndedError } from "../../src/queues/outbound.worker";
import { readSettings } from "../../src/tenants/settings";
import { waitFor } from "../helpers/system";
import { startOtpSystem, type OtpSystem } from "./harness";

describe("pure parts", () => {
  const env = { WHATSAPP_OTP_TEMPLATE: "env_code", WHATSAPP_OTP_TEMPLATE_LANGUAGE: "en_GB" };

  it("chooses the tenant's template for the locale, then for its default locale, then the environment's", () => {
    const s = readSettings({ otp: { defaultLocale: "en_US", templates: { es: { name: "codigo", language: "es" }, en_US: { name: "code_en", language: "en_US" } } } });
    expect(chooseTemplate(s, "es", env)).toEqual({ name: "codigo", language: "es" });
    expect(chooseTemplate(s, "pt_BR", env)).toEqual({ name: "code_en", language: "en_US" });
    expect(chooseTemplate(readSettings({}), "pt_BR", env)).toEqual({ name: "env_code", language: "en_GB" });
  });

  it("picks the next available channel in the tenant's order", () => {
    const all = () => true;
    expect(nextChannel(["whatsapp", "sms", "voice"], "whatsapp", all)).toBe("sms");
    expect(nextChannel(["whatsapp", "sms", "voice"], "whatsapp", (c) => c !== "sms")).toBe("voice");
    expect(nextChannel(["whatsapp", "sms", "voice"], "voice", all)).toBeNull();
    expect(nextChannel(["whatsapp", "voice"], "sms", all)).toBe("whatsapp"); // asked for a channel outside the order
    expect(nextChannel(["whatsapp"], "whatsapp", all)).toBeNull();
  });

  it("fills the placeholder everywhere and leaves the stored object untouched", () => {
    const stored = { a: [{ text: OTP_PLACEHOLDER }, { text: "x{{otp}}" }], b: OTP_PLACEHOLDER, n: 1 };
    expect(fillPlaceholder(stored, "123456")).toEqual({ a: [{ text: "123456" }, { text: "x{{otp}}" }], b: "123456", n: 1 });
    expect(stored.b).toBe(OTP_PLACEHOLDER);
  });
});

describe("with the system", () => {
  let o: OtpSystem;
  beforeAll(async () => {
    o = await startOtpSystem({ statusHookFailures: 2, sweepEveryMs: 200 });
  });
  afterAll(async () => {
    await o.close();
  });
  const prisma = () => o.sys.core.prisma;

  it("a failing status hook loses no status: the retried job tells the planner again", async () => {
    // the hook throws on its first `delivered` and `read` calls (statusHookFailures: 2): both jobs are retried
    const v = await o.verifications.create(o.who, { to: "+447911123450" });
    const d = await waitFor(async () => {
      const row = await prisma().otpDelivery.findFirst({ where: { verificationId: v.id } });
      return row?.status === "delivered" ? row : null;
    });
    await waitFor(() => o.statusHookCalls.filter((c) => c === `${d.messageId}:read`).length >= 2);
    const calls = o.statusHookCalls.filter((c) => c.startsWith(d.messageId!));
    expect(calls.filter((c) => !c.endsWith(":sent")).length).toBeGreaterThanOrEqual(3);
    const msg = await prisma().message.findUniqueOrThrow({ where: { id: d.messageId! } });
    // `sent` may still be held (it can reach us before the wamid is stored) and lands after `read`: wait for it
    await waitFor(async () => (await prisma().statusEvent.count({ where: { wamid: msg.wamid! } })) === 3, 15_000);
    const types = (await prisma().auditEvent.findMany({ where: { verificationId: v.id } })).map((a) => a.type).sort();
    expect(types).toEqual(["verification.delivered", "verification.requested", "verification.sent"]);
  });

  it("sends the tenant's template for the customer's locale", async () => {
    await o.setOtpSettings({ templates: { es: { name: "verification_code", language: "es" } } });
    const v = await o.verifications.create(o.who, { to: "+34612345678" }); // Spain → es
    expect(v.locale).toBe("es");
    const req = await waitFor(() => o.sys.sandbox.requests().find((r) => (r.body as { to?: string }).to === "+34612345678"));
    expect(req.responseStatus).toBe(200);
    expect((req.body as { template: { language: { code: string } } }).template.language.code).toBe("es");
  });

  it("resolveContent refuses a message of a verification that ended, and fills the code of a pending one", async () => {
    const v = await o.verifications.create(o.who, { to: "+447911123451", channel: "sms" });
    const msg = { id: "m", tenantId: o.who.tenantId, contactId: "c", type: "template", payload: { type: "template", t: OTP_PLACEHOLDER }, verificationId: v.id };
    const code = o.sys.core.keyring.decryptString("otp-code", (await prisma().verification.findUniqueOrThrow({ where: { id: v.id } })).codeEnc!);
    expect(await o.planner.resolveContent(msg)).toEqual({ type: "template", t: code });
    expect(await o.planner.resolveContent({ ...msg, verificationId: null })).toBe(msg.payload);
    await o.verifications.cancel(o.who, v.id);
    await expect(o.planner.resolveContent(msg)).rejects.toThrow(VerificationEndedError);
    await expect(o.planner.resolveContent(msg)).rejects.toThrow("not sent: the verification is canceled");
  });

  it("the repeatable expire-sweep expires pending verifications past their expiry", async () => {
    const v = await o.verifications.create(o.who, { to: "+447911123452", channel: "sms" });
    await prisma().verification.update({ where: { id: v.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const ended = await waitFor(async () => {
      const row = await prisma().verification.findUniqueOrThrow({ where: { id: v.id } });
      return row.status === "expired" ? row : null;
    }, 5_000);
    expect(ended.codeEnc).toBeNull();
  });

  it("available: whatsapp always, sms/voice when a sender exists", () => {
    expect(o.planner.available("whatsapp")).toBe(true);
    expect(o.planner.available("sms")).toBe(true);
    expect(o.planner.available("voice")).toBe(true);
  });
});

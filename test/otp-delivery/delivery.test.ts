import { OTP_PLACEHOLDER } from "../../src/otp/delivery.planner";
import { NOT_ME_BUTTON_ID } from "../../src/otp/texts";
import { jobIds } from "../../src/queues/jobs";
import { waitFor } from "../helpers/system";
import { startOtpSystem, type OtpSystem } from "./harness";

/** OTP delivery end to end: sandbox as Meta, recording SMS/voice senders, real PostgreSQL and Redis. */
let o: OtpSystem;

beforeAll(async () => {
  o = await startOtpSystem();
});
afterAll(async () => {
  await o.close();
});

const prisma = () => o.sys.core.prisma;
const outboundTo = (digits: string) => o.sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound");
const codeOf = async (verificationId: string) => {
  const v = await prisma().verification.findUniqueOrThrow({ where: { id: verificationId } });
  return o.sys.core.keyring.decryptString("otp-code", v.codeEnc!);
};
const deliveries = (verificationId: string) => prisma().otpDelivery.findMany({ where: { verificationId }, orderBy: { createdAt: "asc" } });
const deliveriesAre = (verificationId: string, want: string[]) =>
  waitFor(async () => {
    const rows = await deliveries(verificationId);
    return rows.map((d) => `${d.channel}:${d.status}`).join(",") === want.join(",") ? rows : null;
  }, 10_000);

describe("WhatsApp code message", () => {
  it("sends the authentication template with the real code in both parameters and stores only the placeholder", async () => {
    const v = await o.verifications.create(o.who, { to: "+447911123400" });
    const code = await codeOf(v.id);
    expect(code).toMatch(/^\d{6}$/);

    const [sent] = await waitFor(() => outboundTo("447911123400").length > 0 && outboundTo("447911123400"));
    const req = o.sys.sandbox.requests().find((r) => r.wamid === sent!.wamid)!;
    expect(req.responseStatus).toBe(200);
    expect(req.body).toEqual({
      messaging_product: "whatsapp",
      recipient_type: "individual",
      to: "+447911123400",
      type: "template",
      template: {
        name: "verification_code",
        language: { code: "en_US" },
        components: [
          { type: "body", parameters: [{ type: "text", text: code }] },
          { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: code }] },
        ],
      },
    });

    const [d] = await deliveriesAre(v.id, ["whatsapp:delivered"]);
    const row = await prisma().message.findUniqueOrThrow({ where: { id: d!.messageId! } });
    expect(row.verificationId).toBe(v.id);
    expect(row.wamid).toBe(sent!.wamid);
    expect(JSON.stringify(row.payload)).not.toContain(code);
    expect(JSON.stringify(row.payload).split(OTP_PLACEHOLDER)).toHaveLength(3);
    // nowhere in the database in clear: messages, audit rows, deliveries
    const dump = JSON.stringify([
      await prisma().message.findMany(),
      await prisma().auditEvent.findMany(),
      await prisma().otpDelivery.findMany(),
    ], (_k, val) => (typeof val === "bigint" ? String(val) : val));
    expect(dump).not.toContain(code);
    // the contact was created for the number and linked
    const contact = await prisma().contact.findFirstOrThrow({ where: { tenantId: o.who.tenantId, waId: "447911123400" } });
    expect(contact.phoneE164).toBe("+447911123400");
    expect((await prisma().verification.findUniqueOrThrow({ where: { id: v.id } })).contactId).toBe(contact.id);
    // the audit trail has sent and delivered once each
    const audit = await prisma().auditEvent.findMany({ where: { verificationId: v.id }, orderBy: { createdAt: "asc" } });
    expect(audit.map((a) => a.type)).toEqual(["verification.requested", "verification.sent", "verification.delivered"]);
    // closed window (the customer never wrote): no warning after the code
    await new Promise((r) => setTimeout(r, 200));
    expect(outboundTo("447911123400")).toHaveLength(1);
  });

  it("follows the code with the warning inside the 24-hour window, in order", async () => {
    await o.sys.sandbox.injectInbound({ from: "+447911123401", profileName: "Ada", text: "hello" });
    await waitFor(() => outboundTo("447911123401").length === 1); // the greeting
    await waitFor(() => prisma().contact.findFirst({ where: { waId: "447911123401", lastInboundAt: { not: null } } }));

    const v = await o.verifications.create(o.who, { to: "+447911123401" });
    const code = await codeOf(v.id);
    const out = await waitFor(() => outboundTo("447911123401").length === 3 && outboundTo("447911123401"));
    expect(out[1]!.type).toBe("template");
    expect(out[1]!.text).toContain(code);
    expect(out[2]!.type).toBe("interactive");
    expect(out[2]!.text).toMatch(/Never share this code/);
    expect(out[2]!.buttons).toEqual([expect.objectContaining({ replyId: NOT_ME_BUTTON_ID, title: "I didn't request it" })]);
    const warning = await waitFor(() => prisma().message.findFirst({ where: { wamid: out[2]!.wamid } }));
    expect(warning.verificationId).toBeNull();
    await deliveriesAre(v.id, ["whatsapp:delivered"]);
  });

  it("sends no warning when the customer last wrote more than 24 hours ago", async () => {
    await o.sys.sandbox.injectInbound({ from: "+447911123403", text: "hello" });
    await waitFor(() => outboundTo("447911123403").length === 1);
    const c = await waitFor(() => prisma().contact.findFirst({ where: { waId: "447911123403", lastInboundAt: { not: null } } }));
    await prisma().contact.update({ where: { id: c.id }, data: { lastInboundAt: new Date(Date.now() - 25 * 3600_000) } });
    const v = await o.verifications.create(o.who, { to: "+447911123403" });
    await deliveriesAre(v.id, ["whatsapp:delivered"]);
    await new Promise((r) => setTimeout(r, 200));
    expect(outboundTo("447911123403").map((m) => m.type)).toEqual(["text", "template"]);
  });

  it("does not send a code message whose verification was approved before it left", async () => {
    const v = await o.holdDispatch(async () => {
      const created = await o.verifications.create(o.who, { to: "+447911123404" });
      const r = await o.verifications.check(o.who, { id: created.id, code: await codeOf(created.id) });
      expect(r.valid).toBe(true);
      return created;
    });
    const [d] = await deliveriesAre(v.id, ["whatsapp:failed"]);
    const row = await prisma().message.findUniqueOrThrow({ where: { id: d!.messageId! } });
    expect(row).toMatchObject({ status: "failed", wamid: null, errorTitle: "not sent: the verification is approved" });
    expect(outboundTo("447911123404")).toHaveLength(0);
    expect(o.sys.sandbox.requests().filter((r) => (r.body as { to?: string })?.to === "+447911123404")).toHaveLength(0);
    expect(await prisma().sendAttempt.count({ where: { messageId: row.id } })).toBe(0);
    // an ended verification does not fall back
    await new Promise((r) => setTimeout(r, 300));
    expect(await deliveries(v.id)).toHaveLength(1);
    expect(o.sms.sent("+447911123404")).toHaveLength(0);
  });
});

describe("fallback", () => {
  it("undeliverable on WhatsApp (131026) → SMS with the same code → SMS fails → voice call; every attempt recorded", async () => {
    const to = "+447911123410";
    o.sys.sandbox.addFault({ type: "undeliverable", to });
    o.sms.failNext(1, { transient: false, errorCode: "30006" });
    const v = await o.verifications.create(o.who, { to });
    const code = await codeOf(v.id);
    const rows = await deliveriesAre(v.id, ["whatsapp:failed", "sms:failed", "voice:sent"]);
    expect(rows[0]).toMatchObject({ provider: "whatsapp", errorCode: "131026", reason: "failed" });
    expect(rows[1]).toMatchObject({ provider: "sandbox", errorCode: "30006", reason: "failed", providerRef: null });
    expect(rows[2]).toMatchObject({ provider: "sandbox", reason: "fallback", errorCode: null });
    expect(rows[2]!.providerRef).toMatch(/^SBCA/);
    const call = o.voice.last(to)!;
    expect(call.reference).toBe(rows[2]!.id);
    expect(call.text.replace(/\D/g, "")).toContain(code);
    expect(o.sms.sent(to)).toHaveLength(0); // the failed SMS was never recorded as sent
    const audit = await prisma().auditEvent.findMany({ where: { verificationId: v.id }, orderBy: { createdAt: "asc" } });
    // WhatsApp accepted the message (sent), then reported it undeliverable: fallback to SMS, then to voice
    expect(audit.map((a) => a.type)).toEqual(["verification.requested", "verification.sent", "verification.fallback", "verification.fallback", "verification.sent"]);
    expect(audit[2]!.data).toMatchObject({ channel: "sms", errorCode: "131026" });
    expect(audit[3]!.data).toMatchObject({ channel: "voice", errorCode: "30006" });
  });

  it("the SMS after an undeliverable WhatsApp code carries the same code", async () => {
    const to = "+447911123411";
    o.sys.sandbox.addFault({ type: "undeliverable", to });
    const v = await o.verifications.create(o.who, { to });
    const code = await codeOf(v.id);
    const rows = await deliveriesAre(v.id, ["whatsapp:failed", "sms:sent"]);
    const sms = o.sms.last(to)!;
    expect(sms.text.startsWith(code)).toBe(true);
    expect(sms.reference).toBe(rows[1]!.id);
    expect(rows[1]!.providerRef).toBe(sms.providerRef);
    // the code is in no job: the otp queue's jobs carry the delivery id only
    const jobs = await o.otpQueue.getJobs(["delayed", "waiting", "completed", "failed"]);
    expect(jobs.length).toBeGreaterThan(0);
    for (const j of jobs) expect(JSON.stringify(j.data)).not.toContain(code);
  });

  it("a transient SMS failure is retried, then sent", async () => {
    const to = "+447911123412";
    o.sms.failNext(1, { transient: true, errorCode: "20429" });
    const v = await o.verifications.create(o.who, { to, channel: "sms" });
    await deliveriesAre(v.id, ["sms:sent"]);
    expect(o.sms.sent(to)).toHaveLength(1);
  });

  it("falls back when nothing is delivered within the tenant's timeout (timeout job)", async () => {
    const to = "+447911123413";
    const v = await o.verifications.create(o.who, { to, channel: "sms" });
    const [d] = await deliveriesAre(v.id, ["sms:sent"]); // reports delivery, but never says delivered
    const job = await o.otpQueue.getJob(jobIds.otpTimeout(d!.id));
    expect(job).toBeTruthy();
    expect(await job!.isDelayed()).toBe(true);
    expect(job!.opts.delay).toBe(60_000); // default deliveryTimeoutSeconds
    await job!.promote();
    const rows = await deliveriesAre(v.id, ["sms:timed_out", "voice:sent"]);
    expect(rows[0]!.reason).toBe("no_delivery");
    expect(o.voice.sent(to)).toHaveLength(1);
    // the voice sender reports no delivery: no timeout is armed after it
    const [, voice] = await deliveries(v.id);
    expect(await o.otpQueue.getJob(jobIds.otpTimeout(voice!.id))).toBeUndefined();
  });

  it("a delivered WhatsApp code does not fall back at its timeout; the timeout follows tenant settings", async () => {
    await o.setOtpSettings({ deliveryTimeoutSeconds: 5 });
    try {
      const to = "+447911123414";
      const v = await o.verifications.create(o.who, { to });
      const [d] = await deliveriesAre(v.id, ["whatsapp:delivered"]);
      const job = await o.otpQueue.getJob(jobIds.otpTimeout(d!.id));
      expect(job!.opts.delay).toBe(5_000);
      await job!.promote();
      await waitFor(async () => (await o.otpQueue.getJob(jobIds.otpTimeout(d!.id))) === undefined);
      expect((await deliveries(v.id)).map((r) => `${r.channel}:${r.status}`)).toEqual(["whatsapp:delivered"]);
      expect(o.sms.sent(to)).toHaveLength(0);
    } finally {
      await o.setOtpSettings({ deliveryTimeoutSeconds: 60 });
    }
  });

  it("a fallback triggered several times at once (failed callback, failure, timeout) happens once", async () => {
    const to = "+447911123415";
    const v = await o.verifications.create(o.who, { to, channel: "sms" });
    const [d] = await deliveriesAre(v.id, ["sms:sent"]);
    const results = await Promise.all([
      o.planner.fallBack(d!.id, "failed", "30003"),
      o.planner.fallBack(d!.id, "no_delivery"),
      o.planner.onProviderStatus({ provider: "sandbox", providerRef: d!.providerRef!, status: "failed", errorCode: "30005" }).then(() => false),
      o.planner.fallBack(d!.id, "failed", "30008"),
    ]);
    expect(results.filter(Boolean).length).toBeLessThanOrEqual(1);
    const rows = await deliveriesAre(v.id, ["sms:" + (await deliveries(v.id))[0]!.status, "voice:sent"]);
    expect(["failed", "timed_out"]).toContain(rows[0]!.status);
    await new Promise((r) => setTimeout(r, 300));
    expect(await deliveries(v.id)).toHaveLength(2);
    expect(o.voice.sent(to)).toHaveLength(1);
    expect(await prisma().auditEvent.count({ where: { verificationId: v.id, type: "verification.fallback" } })).toBe(1);
  });

  it("when the last channel fails too, the business is told delivery failed", async () => {
    const to = "+447911123416";
    o.voice.failNext(1, { transient: false, errorCode: "13224" });
    const v = await o.verifications.create(o.who, { to, channel: "voice" });
    const rows = await deliveriesAre(v.id, ["voice:failed"]);
    expect(rows[0]!.errorCode).toBe("13224");
    const failed = await waitFor(() => prisma().auditEvent.findFirst({ where: { verificationId: v.id, type: "verification.failed" } }));
    expect(failed.data).toMatchObject({ channel: "voice", errorCode: "13224", reason: "delivery_failed" });
    // still pending: the customer may ask again
    expect((await prisma().verification.findUniqueOrThrow({ where: { id: v.id } })).status).toBe("pending");
  });

  it("an SMS delivery whose verification was canceled before it left is dropped", async () => {
    const v = await o.holdDispatch(async () => {
      const created = await o.verifications.create(o.who, { to: "+447911123417", channel: "sms" });
      await o.verifications.cancel(o.who, created.id);
      return created;
    });
    await deliveriesAre(v.id, ["sms:superseded"]);
    expect(o.sms.sent("+447911123417")).toHaveLength(0);
  });

  it("a provider's delivered callback marks the SMS delivered once", async () => {
    const to = "+447911123418";
    const v = await o.verifications.create(o.who, { to, channel: "sms" });
    const [d] = await deliveriesAre(v.id, ["sms:sent"]);
    await Promise.all([1, 2].map(() => o.planner.onProviderStatus({ provider: "sandbox", providerRef: d!.providerRef!, status: "delivered" })));
    await deliveriesAre(v.id, ["sms:delivered"]);
    expect(await prisma().auditEvent.count({ where: { verificationId: v.id, type: "verification.delivered" } })).toBe(1);
  });
});

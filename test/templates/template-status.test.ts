import request from "supertest";
import { metaJson } from "../../src/sandbox/meta-json";
import { wabaIdOf } from "../../src/sandbox/envelope";
import { latestCode, waitFor } from "../helpers/system";
import { startTemplatesSystem, type TemplatesSystem } from "./harness";

/**
 * Template statuses end to end: the sandbox plays Meta (signed message_template_status_update webhooks, sends of a
 * paused template refused with 132015), the bot keeps the statuses, alerts the business once per change, and sends
 * codes by SMS while the code template is paused.
 */
let t: TemplatesSystem;
const api = () => request(t.sys.http.url);
const catalogue = async () => {
  const res = await api().get(`/admin/tenants/${t.sys.tenantId}/templates`).set(t.admin);
  expect(res.status).toBe(200);
  return res.body as { defaultLocale: string; locales: { locale: string; codeTemplate: { name: string; language: string; status: string; sendable: boolean; updatedAt: string | null } | null; flowTemplates: Record<string, { status: string }> }[]; others: { name: string; language: string; status: string }[] };
};
const codeStatus = async () => (await catalogue()).locales.find((l) => l.locale === "en_US")?.codeTemplate?.status;

beforeAll(async () => {
  t = await startTemplatesSystem();
});
afterAll(async () => {
  await t.close();
});

describe("template status webhooks", () => {
  it("drops an update for a WABA no tenant belongs to: the job completes, nothing is stored", async () => {
    const status = await t.sys.sandbox.postWebhook({
      object: "whatsapp_business_account",
      entry: [{ id: "999000111222333", time: 1, changes: [{ field: "message_template_status_update", value: { event: "PAUSED", message_template_id: 1, message_template_name: "verification_code", message_template_language: "en_US", reason: "NONE" } }] }],
    });
    expect(status).toBe(200);
    await waitFor(() => t.accountJobs.includes("unknown_tenant"));
    expect(t.accountJobs.filter((r) => r.startsWith("failed"))).toEqual([]);
    expect(await t.sys.core.prisma.templateStatus.count()).toBe(0);
  });

  it("a signed webhook from the sandbox updates the catalogue; templates not in use are listed apart", async () => {
    // before any update: the code template (from the environment) is listed with an unknown status
    const before = await catalogue();
    expect(before.defaultLocale).toBe("en_US");
    expect(before.locales).toEqual([expect.objectContaining({ locale: "en_US", codeTemplate: expect.objectContaining({ name: "verification_code", language: "en_US", status: "unknown", sendable: true, updatedAt: null }) })]);

    const waba = await t.learnWaba("+14155550100");
    expect(waba).toBe(wabaIdOf({ phoneNumberId: t.sys.config.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: "", accessToken: "" }));
    const set = await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "APPROVED" });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ wabaId: waba, status: "APPROVED", webhookStatus: 200 });
    // the bot checked the signature over the exact bytes: a webhook signed with another secret is refused
    // (the bot's reply to learnWaba's "hello" brings status webhooks of its own, in any order: pick the template one)
    const last = t.sys.sandbox.webhooks().filter((w) => JSON.parse(w.body).entry[0].changes[0].field === "message_template_status_update").at(-1)!;
    expect(JSON.parse(last.body).entry[0].changes[0].value).toMatchObject({ event: "APPROVED", message_template_name: "verification_code" });
    const forged = await fetch(`${t.sys.http.url}/webhook`, { method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": "sha256=" + "0".repeat(64) }, body: last.body });
    expect(forged.status).toBe(401);

    await waitFor(async () => (await codeStatus()) === "APPROVED");
    const after = await catalogue();
    expect(after.locales[0]!.codeTemplate!.updatedAt).toEqual(expect.any(String));
    // a template the tenant does not use is kept and listed apart, without an alert
    await t.setTemplateStatus({ name: "spring_sale", language: "en_US", status: "PAUSED" });
    await waitFor(async () => (await catalogue()).others.some((o) => o.name === "spring_sale" && o.status === "PAUSED"));
    expect(t.events("template.paused")).toEqual([]);
    // a utility template configured for a flow shows its status under its locale
    await t.setSettings("flows", { templates: { login_notice: { en_US: { name: "login_notice", language: "en_US" } } } });
    await t.setTemplateStatus({ name: "login_notice", language: "en_US", status: "APPROVED" });
    await waitFor(async () => (await catalogue()).locales[0]!.flowTemplates.login_notice?.status === "APPROVED");
    expect((await catalogue()).others.map((o) => o.name)).toEqual(["spring_sale"]);
  });

  it("PAUSED on the code template: one alert even when delivered twice, codes go by SMS; APPROVED again: WhatsApp again", async () => {
    const set = await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "PAUSED" });
    expect(set.body.webhookStatus).toBe(200);
    await waitFor(async () => (await codeStatus()) === "PAUSED");
    const paused = await waitFor(() => t.events("template.paused").length > 0 && t.events("template.paused"));
    // Meta redelivers the same webhook (same bytes, same signature), and a job is retried: no second alert
    const body = t.sys.sandbox.webhooks().filter((w) => w.body.includes('"PAUSED"') && w.body.includes("verification_code")).at(-1)!.body;
    const done = t.accountJobs.length;
    expect(await t.sys.sandbox.postWebhook(JSON.parse(body))).toBe(200);
    expect(metaJson(JSON.parse(body))).toBe(body);
    await waitFor(() => t.accountJobs.length > done);
    expect(t.accountJobs.at(-1)).toBe("unchanged");
    const item = { kind: "account" as const, wabaId: JSON.parse(body).entry[0].id, field: "message_template_status_update" as const, value: JSON.parse(body).entry[0].changes[0].value, receivedAt: Date.now() };
    expect(await t.sys.core.accountUpdates.handle(item)).toBe("unchanged");
    await new Promise((r) => setTimeout(r, 300));
    expect(t.events("template.paused")).toHaveLength(1);
    expect(paused[0].data).toMatchObject({ name: "verification_code", language: "en_US", status: "PAUSED", previousStatus: "APPROVED", verificationLocales: ["en_US"], flowTemplates: [], verificationDelivery: "fallback:sms" });
    expect(paused[0].data.reason).toContain("FIRST_PAUSE");
    const audit = await t.sys.core.prisma.auditEvent.findMany({ where: { tenantId: t.sys.tenantId, type: "template.status_changed", subject: "verification_code/en_US" } });
    expect(audit.map((a) => (a.data as { status: string }).status)).toEqual(["APPROVED", "PAUSED"]);

    // a new code skips WhatsApp: it goes by SMS, and the verification says so
    const created = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550111" });
    expect(created.status).toBe(201);
    expect(created.body.channel).toBe("sms");
    const sms = await waitFor(() => t.sms.sent("+14155550111")[0]);
    expect(sms.text).toMatch(/\d{6}/);
    const got = await api().get(`/v1/verifications/${created.body.id}`).set(t.admin);
    expect(got.body.channel).toBe("sms");
    expect(got.body.sendCodeAttempts).toEqual([expect.objectContaining({ channel: "sms", reason: "template_paused" })]);
    expect(t.sys.sandbox.conversation("14155550111").filter((m) => m.direction === "outbound")).toEqual([]);
    expect(t.sys.sandbox.requests().filter((r) => JSON.stringify(r.body ?? "").includes("+14155550111"))).toEqual([]);
    const fb = await waitFor(() => t.events("verification.fallback").find((e) => e.data.verificationId === created.body.id));
    expect(fb.data).toMatchObject({ to: "+14155550111", purpose: "login", channel: "sms", fromChannel: "whatsapp", reason: "template_paused", status: "pending" });
    // the SMS code is the verification's code
    const code = /(\d{6})/.exec(sms.text)![1]!;
    const check = await api().post("/v1/verifications/check").set(t.admin).send({ id: created.body.id, code });
    expect(check.body.status).toBe("approved");

    // Meta lifts the pause: one reinstated alert, and codes go by WhatsApp again
    await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "APPROVED" });
    const back = await waitFor(() => t.events("template.reinstated")[0]);
    expect(back.data).toMatchObject({ status: "APPROVED", previousStatus: "PAUSED", verificationDelivery: "whatsapp" });
    const again = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550112" });
    expect(again.body.channel).toBe("whatsapp");
    await waitFor(() => latestCode(t.sys.sandbox, "14155550112"));
    expect(t.sms.sent("+14155550112")).toEqual([]);
    expect(t.events("template.reinstated")).toHaveLength(1);
  });

  it("a send of a template Meta paused without telling us yet is refused with 132015 and falls back to SMS", async () => {
    // the sandbox pauses it but sends no webhook: the bot still believes it approved
    await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "PAUSED", webhook: false });
    const created = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550113" });
    expect(created.body.channel).toBe("whatsapp");
    const refused = await waitFor(() => t.sys.sandbox.requests().find((r) => JSON.stringify(r.body ?? "").includes("+14155550113")));
    expect(refused.responseStatus).toBe(400);
    expect(refused.errorCode).toBe(132015);
    await waitFor(() => t.sms.sent("+14155550113")[0]);
    const rows = await waitFor(async () => {
      const r = await t.sys.core.prisma.otpDelivery.findMany({ where: { verificationId: created.body.id }, orderBy: { createdAt: "asc" } });
      return r.at(-1)?.status === "sent" && r;
    });
    expect(rows.map((d) => `${d.channel}:${d.status}:${d.errorCode ?? ""}`)).toEqual(["whatsapp:failed:132015", "sms:sent:"]);

    // disabled is 132016, also permanent
    await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "DISABLED", webhook: false });
    const other = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550114" });
    const r2 = await waitFor(() => t.sys.sandbox.requests().find((r) => JSON.stringify(r.body ?? "").includes("+14155550114")));
    expect(r2.errorCode).toBe(132016);
    await waitFor(() => t.sms.sent("+14155550114")[0]);
    const attempts = t.sys.sandbox.requests().filter((r) => JSON.stringify(r.body ?? "").includes("+14155550114"));
    expect(attempts).toHaveLength(1); // permanent: never retried
    expect(other.body.id).toEqual(expect.any(String));
    await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "APPROVED", webhook: false });
  });

  it("keeps WhatsApp when the code template is paused and no other channel is configured, and says so", async () => {
    await t.setSettings("otp", { channels: ["whatsapp"] });
    try {
      await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "PAUSED" });
      await waitFor(() => t.events("template.paused").length === 2);
      expect(t.events("template.paused")[1].data.verificationDelivery).toBe("whatsapp_only");
      const created = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550115" });
      expect(created.body.channel).toBe("whatsapp");
      // Meta refuses it and the business hears the code could not be delivered
      const failed = await waitFor(() => t.events("verification.failed").find((e) => e.data.verificationId === created.body.id));
      expect(failed.data.errorCode).toBe("132015");
      expect(t.sms.sent("+14155550115")).toEqual([]);
    } finally {
      await t.setSettings("otp", { channels: ["whatsapp", "sms", "voice"] });
      await t.setTemplateStatus({ name: "verification_code", language: "en_US", status: "APPROVED" });
    }
  });
});

describe("GET /admin/tenants/{id}/templates and /usage: tenant isolation", () => {
  it("a tenant key sees its own tenant only; other ids are 404 tenant_not_found", async () => {
    const prisma = t.sys.core.prisma;
    const other = await prisma.tenant.create({
      data: { name: "Other", phoneNumberId: "990000000001", displayPhoneNumber: "15550009999", accessTokenEnc: t.sys.core.keyring.encrypt("tenant-token", "EAAG-other-token"), wabaId: "555000555000555" },
    });
    const ownKey = (await t.sys.core.apiKeys.create(t.sys.tenantId, ["read"])).key;
    const otherKey = (await t.sys.core.apiKeys.create(other.id, ["read"])).key;
    const verifyOnly = (await t.sys.core.apiKeys.create(t.sys.tenantId, ["verify"])).key;
    // a status for the other tenant's WABA lands in its catalogue only
    await t.sys.core.accountUpdates.handle({
      kind: "account", wabaId: "555000555000555", field: "message_template_status_update", receivedAt: Date.now(),
      value: { event: "REJECTED", message_template_id: "77", message_template_name: "other_only", message_template_language: "de", reason: "INCORRECT_CATEGORY" },
    });

    for (const path of ["templates", "usage"]) {
      const own = await api().get(`/admin/tenants/${t.sys.tenantId}/${path}`).set({ Authorization: `Bearer ${ownKey}` });
      expect(own.status).toBe(200);
      const cross = await api().get(`/admin/tenants/${t.sys.tenantId}/${path}`).set({ Authorization: `Bearer ${otherKey}` });
      expect(cross.status).toBe(404);
      expect(cross.body).toEqual({ error: { code: "tenant_not_found", message: expect.any(String) } });
      const notUuid = await api().get(`/admin/tenants/not-a-uuid/${path}`).set(t.admin);
      expect(notUuid.body.error.code).toBe("tenant_not_found");
      expect((await api().get(`/admin/tenants/${t.sys.tenantId}/${path}`)).status).toBe(401);
      expect((await api().get(`/admin/tenants/${t.sys.tenantId}/${path}`).set({ Authorization: `Bearer ${verifyOnly}` })).status).toBe(403);
    }
    const mine = await api().get(`/admin/tenants/${t.sys.tenantId}/templates`).set({ Authorization: `Bearer ${ownKey}` });
    expect(JSON.stringify(mine.body)).not.toContain("other_only");
    const theirs = await api().get(`/admin/tenants/${other.id}/templates`).set({ Authorization: `Bearer ${otherKey}` });
    expect(theirs.body.others).toEqual([expect.objectContaining({ name: "other_only", language: "de", status: "REJECTED", sendable: false, reason: "INCORRECT_CATEGORY" })]);
    // the super-admin key reaches both
    expect((await api().get(`/admin/tenants/${other.id}/templates`).set(t.admin)).status).toBe(200);
  });
});

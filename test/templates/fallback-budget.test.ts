import request from "supertest";
import { FallbackBudget } from "../../src/otp/fallback-budget";
import { waitFor } from "../helpers/system";
import { startTemplatesSystem, type TemplatesSystem } from "./harness";

/**
 * The daily spend cap on paid code channels: with a budget that fits one SMS, the first WhatsApp failure falls back
 * to SMS, the second one's SMS (and voice) are refused, the business hears `limit.fallback_budget_reached` once and
 * `verification.failed` for the code that could not go out.
 */
let t: TemplatesSystem;
const api = () => request(t.sys.http.url);
const deliveries = (verificationId: string) =>
  t.sys.core.prisma.otpDelivery.findMany({ where: { verificationId }, orderBy: { createdAt: "asc" } }).then((rows) => rows.map((d) => `${d.channel}:${d.status}:${d.errorCode ?? d.reason ?? ""}`));

beforeAll(async () => {
  t = await startTemplatesSystem();
  await t.setSettings("limits", { fallbackBudgetPerDay: 0.06 });
  await t.setSettings("otp", { channelCosts: { sms: 0.05, voice: 0.1 } });
});
afterAll(async () => {
  await t.close();
});

it("refuses the 2nd SMS fallback of the day, publishes the budget event once, and reports today's spend", async () => {
  // WhatsApp cannot deliver to either number (131026): each code falls back
  t.sys.sandbox.addFault({ type: "undeliverable", to: "+14155550121" });
  t.sys.sandbox.addFault({ type: "undeliverable", to: "+14155550122" });
  t.sys.sandbox.addFault({ type: "undeliverable", to: "+14155550123" });

  const first = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550121" });
  await waitFor(() => t.sms.sent("+14155550121")[0]);
  await waitFor(async () => (await deliveries(first.body.id)).join(",") === "whatsapp:failed:131026,sms:sent:fallback");

  const second = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550122" });
  const failed = await waitFor(() => t.events("verification.failed").find((e) => e.data.verificationId === second.body.id));
  expect(failed.data).toMatchObject({ reason: "fallback_budget_reached", to: "+14155550122" });
  expect(await deliveries(second.body.id)).toEqual(["whatsapp:failed:131026"]);
  expect(t.sms.sent("+14155550122")).toEqual([]);
  expect(t.voice.sent("+14155550122")).toEqual([]);

  const third = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550123" });
  await waitFor(() => t.events("verification.failed").find((e) => e.data.verificationId === third.body.id));
  await new Promise((r) => setTimeout(r, 300));
  // SMS and voice refused for two verifications: one event for the day
  const reached = t.events("limit.fallback_budget_reached");
  expect(reached).toHaveLength(1);
  expect(reached[0].data).toMatchObject({ day: FallbackBudget.day(new Date()), budget: 0.06, spent: 0.05, channel: "sms", cost: 0.05, verificationId: second.body.id });
  const audit = await t.sys.core.prisma.auditEvent.count({ where: { tenantId: t.sys.tenantId, type: "limit.fallback_budget_reached" } });
  expect(audit).toBe(1);

  const usage = await api().get(`/admin/tenants/${t.sys.tenantId}/usage`).set(t.admin);
  expect(usage.status).toBe(200);
  expect(usage.body.fallbackSpend).toMatchObject({ budget: 0.06, spent: 0.05, remaining: 0.01, refused: 4, budgetReached: true, costs: { sms: 0.05, voice: 0.1 } });
});

it("checks the budget in the send worker too: an SMS-first code over the budget is not sent", async () => {
  await t.setSettings("limits", { fallbackBudgetPerDay: 0 });
  const v = await api().post("/v1/verifications").set(t.admin).send({ to: "+14155550124", channel: "sms" });
  expect(v.status).toBe(201);
  expect(v.body.channel).toBe("sms");
  const failed = await waitFor(() => t.events("verification.failed").find((e) => e.data.verificationId === v.body.id));
  // SMS refused in the send worker, then voice refused when the fallback was planned
  expect(failed.data).toMatchObject({ channel: "voice", reason: "fallback_budget_reached" });
  expect(t.sms.sent("+14155550124")).toEqual([]);
  expect(t.voice.sent("+14155550124")).toEqual([]);
  expect((await deliveries(v.body.id))[0]).toBe("sms:failed:fallback_budget");
  // the day's event was already published
  expect(t.events("limit.fallback_budget_reached")).toHaveLength(1);
});

it("a reservation is idempotent per delivery and the counter is atomic across concurrent reservations", async () => {
  const budget = t.sys.core.fallbackBudget;
  const tenantId = (await t.sys.core.prisma.tenant.create({
    data: { name: "Budget", phoneNumberId: "990000000077", displayPhoneNumber: "15550007777", accessTokenEnc: t.sys.core.keyring.encrypt("tenant-token", "EAAG-budget-token") },
  })).id;
  const { readSettings } = await import("../../src/tenants/settings");
  const settings = readSettings({ limits: { fallbackBudgetPerDay: 1 }, otp: { channelCosts: { sms: 0.3, voice: 0.5 } } });
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => budget.reserve({ tenantId, settings, channel: "sms", ref: `d${i}` })));
  expect(results.filter((r) => r.ok)).toHaveLength(3); // 0.9 of 1.0
  expect((await budget.reserve({ tenantId, settings, channel: "sms", ref: "d0" })).ok).toBe(results[0]!.ok); // same delivery: same answer, not charged again
  expect((await budget.usage(tenantId, settings)).spent).toBeCloseTo(0.9, 6);
  const ttl = await t.sys.core.redis.ttl(`${t.sys.config.QUEUE_PREFIX}:fallback-spend:${tenantId}:${FallbackBudget.day(new Date())}`);
  expect(ttl).toBeGreaterThan(24 * 3600);
  expect(ttl).toBeLessThanOrEqual(2 * 24 * 3600);
});

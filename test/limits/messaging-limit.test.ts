import request from "supertest";
import type { AccountUpdateItem } from "../../src/ingest/envelope";
import { wabaIdOf } from "../../src/sandbox/envelope";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** Meta's messaging-limit tier: read from the Graph API (the sandbox), refreshed on demand, pushed by webhook. */
let sys: TestSystem;
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);
const phone = () => ({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: sys.config.WHATSAPP_DISPLAY_PHONE_NUMBER, accessToken: sys.config.WHATSAPP_ACCESS_TOKEN });
const tierRow = () => sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId }, select: { messagingLimitTier: true, messagingLimitCheckedAt: true } });
const graphReads = (phoneNumberId: string) =>
  sys.sandbox.requests().filter((r) => r.method === "GET" && r.path.includes(`/${phoneNumberId}?`) && r.path.includes("whatsapp_business_manager_messaging_limit"));
const setSandboxTier = (body: Record<string, unknown>) => request(sys.sandboxUrl).post("/sandbox/api/messaging-limit").send(body);
const tierAudits = () => sys.core.prisma.auditEvent.findMany({ where: { tenantId: sys.tenantId, type: "messaging_limit.tier_changed" }, orderBy: { createdAt: "asc" } });

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
});
afterAll(async () => {
  await sys.close();
});

it("reads the tier from the Cloud API when first asked and shows it with the 24-hour use", async () => {
  expect((await tierRow()).messagingLimitTier).toBeNull();
  const res = await api().get(`/admin/tenants/${sys.tenantId}/messaging-limit`).set(admin());
  expect(res.status).toBe(200);
  expect(res.body).toEqual({
    tier: "TIER_250",
    limit: 250,
    checkedAt: expect.any(String),
    uniqueUsers24h: 0,
    usedPercent: 0,
    warning: false,
    warnPercent: 80,
  });
  const row = await tierRow();
  expect(row.messagingLimitTier).toBe("TIER_250");
  expect(row.messagingLimitCheckedAt!.toISOString()).toBe(res.body.checkedAt);
  // one Graph call with the tenant's token, answered 200
  const reads = graphReads(phone().phoneNumberId);
  expect(reads).toHaveLength(1);
  expect(reads[0]!.responseStatus).toBe(200);
  // a second look reads the stored tier, without calling Meta again
  await api().get(`/admin/tenants/${sys.tenantId}/messaging-limit`).set(admin()).expect(200);
  expect(graphReads(phone().phoneNumberId)).toHaveLength(1);
});

it("reads a new tenant's tier when the tenant is created", async () => {
  const phoneNumberId = String(300000000000000 + Math.floor(Math.random() * 1e12));
  const created = await api().post("/admin/tenants").set(admin()).send({ phoneNumberId, displayPhoneNumber: "+1 555 000 7777", accessToken: "EAAG-limits-new-tenant" });
  expect(created.status).toBe(201);
  const row = await waitFor(() =>
    sys.core.prisma.tenant.findFirst({ where: { id: created.body.id, messagingLimitTier: { not: null } }, select: { messagingLimitTier: true, messagingLimitCheckedAt: true } }),
  );
  expect(row.messagingLimitTier).toBe("TIER_250");
  expect(row.messagingLimitCheckedAt).toBeInstanceOf(Date);
  expect(graphReads(phoneNumberId).map((r) => r.responseStatus)).toEqual([200]);
});

it("POST …/messaging-limit/refresh reads it again; Meta's errors come back as 502 with Meta's code", async () => {
  // Meta moves the number to TIER_2K without a webhook: the stored tier stays until refreshed
  expect((await setSandboxTier({ phoneNumberId: phone().phoneNumberId, tier: "TIER_2K", webhook: false })).status).toBe(200);
  expect((await api().get(`/admin/tenants/${sys.tenantId}/messaging-limit`).set(admin())).body.tier).toBe("TIER_250");
  const refreshed = await api().post(`/admin/tenants/${sys.tenantId}/messaging-limit/refresh`).set(admin());
  expect(refreshed.status).toBe(200);
  expect(refreshed.body).toMatchObject({ tier: "TIER_2K", limit: 2000, changed: true, usedPercent: 0, warning: false });
  expect((await tierRow()).messagingLimitTier).toBe("TIER_2K");
  const audits = await tierAudits();
  expect(audits.at(-1)).toMatchObject({ actor: "admin-key", data: { from: "TIER_250", to: "TIER_2K", source: "graph_api" } });
  // refreshing again changes nothing and audits nothing
  expect((await api().post(`/admin/tenants/${sys.tenantId}/messaging-limit/refresh`).set(admin())).body.changed).toBe(false);
  expect(await tierAudits()).toHaveLength(audits.length);

  // a token Meta refuses: 190 mapped to 502 messaging_limit_unavailable, the stored tier kept
  const good = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId }, select: { accessTokenEnc: true } });
  await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { accessTokenEnc: sys.core.keyring.encrypt("tenant-token", "EAAG-revoked-token-000") } });
  sys.core.tenants.invalidate();
  try {
    const failed = await api().post(`/admin/tenants/${sys.tenantId}/messaging-limit/refresh`).set(admin());
    expect(failed.status).toBe(502);
    expect(failed.body.error).toMatchObject({ code: "messaging_limit_unavailable", details: { httpStatus: 401, metaCode: 190 } });
    expect((await tierRow()).messagingLimitTier).toBe("TIER_2K");
  } finally {
    await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { accessTokenEnc: good.accessTokenEnc } });
    sys.core.tenants.invalidate();
  }
});

it("takes the tier from Meta's phone_number_quality_update webhook, once, for its own number only", async () => {
  const wabaId = wabaIdOf(phone());
  await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { wabaId } });
  const before = (await tierAudits()).length;

  // the sandbox (as Meta) upgrades the number and posts the signed webhook to /webhook
  const pushed = await setSandboxTier({ phoneNumberId: phone().phoneNumberId, tier: "TIER_10K" });
  expect(pushed.body).toMatchObject({ oldTier: "TIER_2K", event: "UPGRADE", webhookStatus: 200, wabaId });
  await waitFor(async () => (await tierRow()).messagingLimitTier === "TIER_10K");
  const shown = await api().get(`/admin/tenants/${sys.tenantId}/messaging-limit`).set(admin());
  expect(shown.body).toMatchObject({ tier: "TIER_10K", limit: 10000 });
  expect((await tierAudits()).at(-1)).toMatchObject({ actor: "meta", data: { from: "TIER_2K", to: "TIER_10K", source: "webhook", event: "UPGRADE" } });
  expect(await tierAudits()).toHaveLength(before + 1);

  // the handler itself, as the status worker calls it (retries and redeliveries included)
  const item = (value: Record<string, unknown>, receivedAt = Date.now()): AccountUpdateItem => ({ kind: "account", wabaId, field: "phone_number_quality_update", value, receivedAt });
  const display = phone().displayPhoneNumber;
  const down = item({ display_phone_number: display, event: "DOWNGRADE", old_limit: "TIER_10K", current_limit: "TIER_2K" });
  expect(await sys.core.accountUpdates.handle(down)).toBe("tier_changed");
  expect(await sys.core.accountUpdates.handle(down)).toBe("unchanged");
  expect((await tierRow()).messagingLimitTier).toBe("TIER_2K");
  // another number of the same WABA, a quality flag, a throughput change: the tier stays
  expect(await sys.core.accountUpdates.handle(item({ display_phone_number: "15559990000", event: "UPGRADE", current_limit: "TIER_100K" }))).toBe("other_number");
  expect(await sys.core.accountUpdates.handle(item({ display_phone_number: display, event: "FLAGGED" }))).toBe("no_tier");
  expect(await sys.core.accountUpdates.handle(item({ display_phone_number: display, event: "THROUGHPUT_UPGRADE", current_limit: "TIER_UNLIMITED" }))).toBe("no_tier");
  // an update received before the stored reading (processed late) does not undo it
  expect(await sys.core.accountUpdates.handle(item({ display_phone_number: display, event: "UPGRADE", max_daily_conversations_per_business: "TIER_100K" }, Date.now() - 3600_000)))
    .toBe("stale");
  expect((await tierRow()).messagingLimitTier).toBe("TIER_2K");
  // max_daily_conversations_per_business is preferred over the deprecated current_limit
  expect(await sys.core.accountUpdates.handle(item({ display_phone_number: display, event: "UPGRADE", current_limit: "TIER_2K", max_daily_conversations_per_business: "TIER_100K" }))).toBe("tier_changed");
  expect((await api().get(`/admin/tenants/${sys.tenantId}/messaging-limit`).set(admin())).body).toMatchObject({ tier: "TIER_100K", limit: 100000 });
  expect(await tierAudits()).toHaveLength(before + 3);
});

it("keeps tenants apart: another tenant's key gets 404, scopes are enforced", async () => {
  const other = await api().post("/admin/tenants").set(admin()).send({ phoneNumberId: String(400000000000000 + Math.floor(Math.random() * 1e12)), displayPhoneNumber: "+15550008888", accessToken: "EAAG-limits-other" });
  expect(other.status).toBe(201);
  const adminKey = await api().post(`/admin/tenants/${other.body.id}/api-keys`).set(admin()).send({ scopes: ["admin"] });
  const readKey = await api().post(`/admin/tenants/${other.body.id}/api-keys`).set(admin()).send({ scopes: ["read"] });
  const as = (k: { body: { key: string } }) => ({ Authorization: `Bearer ${k.body.key}` });

  const theirs = await api().get(`/admin/tenants/${sys.tenantId}/messaging-limit`).set(as(adminKey));
  expect(theirs.status).toBe(404);
  expect(theirs.body.error.code).toBe("tenant_not_found");
  const refresh = await api().post(`/admin/tenants/${sys.tenantId}/messaging-limit/refresh`).set(as(adminKey));
  expect(refresh.status).toBe(404);
  expect(refresh.body.error.code).toBe("tenant_not_found");

  const own = await api().get(`/admin/tenants/${other.body.id}/messaging-limit`).set(as(readKey));
  expect(own.status).toBe(200);
  expect(own.body).toMatchObject({ tier: "TIER_250", limit: 250, uniqueUsers24h: 0 });
  // a read key may look but not make the bot call Meta
  expect((await api().post(`/admin/tenants/${other.body.id}/messaging-limit/refresh`).set(as(readKey))).status).toBe(403);
  expect((await api().post(`/admin/tenants/${other.body.id}/messaging-limit/refresh`).set(as(adminKey))).status).toBe(200);

  expect((await api().get(`/admin/tenants/not-a-uuid/messaging-limit`).set(admin())).status).toBe(404);
  expect((await api().get(`/admin/tenants/00000000-0000-4000-8000-000000000000/messaging-limit`).set(admin())).status).toBe(404);
  expect((await api().get(`/admin/tenants/${sys.tenantId}/messaging-limit`)).status).toBe(401);
});

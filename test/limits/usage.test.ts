import request from "supertest";
import { startWorkers, type RunningWorkers } from "../../src/main/workers";
import { Receiver } from "../events/receiver";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { parseProm, value } from "../ops/prom-text";

/**
 * The 24-hour use of the messaging limit: unique users reached outside the customer-service window, counted from
 * the messages table; the warning event when it crosses the tenant's percent of the tier (TIER_250 here, so 200
 * users at the default 80 %). Most recipients are seeded as rows (what the outbound worker writes), two codes go
 * through the real pipeline; the worker sweep runs every 100 ms.
 */
let sys: TestSystem;
let workers: RunningWorkers;
let otherTenantId: string;
const receiver = new Receiver();
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);
const HOUR = 3600_000;
const ago = (ms: number) => new Date(Date.now() - ms);
const status = (tenantId = sys.tenantId) => api().get(`/admin/tenants/${tenantId}/messaging-limit`).set(admin());
const warnings = () => receiver.at("/hooks").map((r) => JSON.parse(r.raw)).filter((e) => e.type === "messaging_limit.warning");

let seq = 0;
/**
 * `n` contacts, each with one outbound message sent `sentAgo` ms ago, and inbound messages `inboundAgo` ms ago
 * (contacts.last_inbound_at = the latest of them, as the inbound handler keeps it). Returns the contact ids.
 */
async function seed(
  tenantId: string,
  n: number,
  o: { sentAgo: number | null; type?: string; status?: string; delivered?: boolean; inboundAgo?: number[] },
): Promise<string[]> {
  const ids: string[] = [];
  const inbound = o.inboundAgo ?? [];
  for (let i = 0; i < n; i++) {
    const wa = `4420${String(7_000_000 + ++seq)}`;
    const last = inbound.length ? ago(Math.min(...inbound)) : null;
    const [c] = await sys.core.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO contacts (id, tenant_id, wa_id, phone_e164, last_inbound_at, updated_at)
       VALUES (gen_random_uuid(), $1::uuid, $2::text, $3::text, $4::timestamptz, now()) RETURNING id::text AS id`,
      tenantId, wa, `+${wa}`, last,
    );
    ids.push(c!.id);
    for (const a of inbound) {
      await sys.core.prisma.$executeRawUnsafe(
        `INSERT INTO messages (id, tenant_id, contact_id, direction, wamid, type, payload, status, timestamp, created_at, updated_at)
         VALUES (gen_random_uuid(), $1::uuid, $2::uuid, 'inbound', $3::text, 'text', '{}'::jsonb, 'received', $4::timestamptz, $4::timestamptz, now())`,
        tenantId, c!.id, `wamid.seed-in-${seq}-${a}`, ago(a),
      );
    }
  }
  await send(tenantId, ids, o);
  return ids;
}

/** One more outbound message to each contact (sent_at null when `sentAgo` is null: still queued). */
async function send(tenantId: string, contactIds: string[], o: { sentAgo: number | null; type?: string; status?: string; delivered?: boolean }): Promise<void> {
  for (const id of contactIds) {
    const sentAt = o.sentAgo === null ? null : ago(o.sentAgo);
    const createdAt = ago((o.sentAgo ?? 0) + 1000);
    await sys.core.prisma.$executeRawUnsafe(
      `INSERT INTO messages (id, tenant_id, contact_id, direction, type, payload, status, sent_at, delivered_at, failed_at, timestamp, created_at, updated_at)
       VALUES (gen_random_uuid(), $1::uuid, $2::uuid, 'outbound', $3::text, '{}'::jsonb, $4::text::"MessageStatus", $5::timestamptz,
               $6::timestamptz, $7::timestamptz, $8::timestamptz, $8::timestamptz, now())`,
      tenantId, id, o.type ?? "template", o.status ?? "delivered", sentAt,
      o.delivered === false || sentAt === null ? null : sentAt, o.status === "failed" ? sentAt : null, createdAt,
    );
  }
}

/** The outbound message row of a verification's code, once Meta accepted it. */
async function codeSent(verificationId: string): Promise<void> {
  await waitFor(() => sys.core.prisma.message.findFirst({ where: { verificationId, sentAt: { not: null } } }), 15_000);
}

beforeAll(async () => {
  await receiver.listen();
  // events go to a local receiver over http: development mode, opted into explicitly
  sys = await startTestSystem({ workers: false, env: { OUTBOUND_RECIPIENT_GAP_MS: "5", NODE_ENV: "development" } });
  // the production sweep, every 100 ms instead of 15 s
  workers = await startWorkers(sys.core, { sweepEveryMs: 100, backoff: { baseMs: 20, capMs: 200, pairBaseMs: 20, pairCapMs: 400, maxRetryAfterMs: 1_500 } });
  await api().put(`/admin/tenants/${sys.tenantId}/events`).set(admin()).send({ url: `${receiver.url}/hooks` }).expect(200);
  const other = await api().post("/admin/tenants").set(admin()).send({ phoneNumberId: String(500000000000000 + Math.floor(Math.random() * 1e12)), displayPhoneNumber: "+15550006666", accessToken: "EAAG-usage-other" });
  otherTenantId = other.body.id;
});
afterAll(async () => {
  await workers.close();
  await sys.close();
  await receiver.close();
});

it("the worker sweep reads the tier and exports it as a metric", async () => {
  // nothing asked for it: the sweep found the tenant without a tier and read it from the Cloud API
  const row = await waitFor(() => sys.core.prisma.tenant.findFirst({ where: { id: sys.tenantId, messagingLimitTier: { not: null } } }));
  expect(row.messagingLimitTier).toBe("TIER_250");
  const samples = await waitFor(async () => {
    const s = parseProm((await api().get("/metrics").set(admin())).text);
    return value(s, "wabot_messaging_limit", { tenant: sys.tenantId }) !== undefined && s;
  });
  expect(value(samples, "wabot_messaging_limit", { tenant: sys.tenantId })).toBe(250);
  expect(value(samples, "wabot_messaging_limit_unique_users_24h", { tenant: sys.tenantId })).toBe(0);
});

it("counts unique users reached outside the 24-hour window by templates in the last 24 hours, per tenant", async () => {
  const counted = await seed(sys.tenantId, 196, { sentAgo: HOUR });
  // wrote 30 h before the send and again after it: outside the window at send time, so counted
  await seed(sys.tenantId, 1, { sentAgo: HOUR, inboundAgo: [30 * HOUR, 10 * 60_000] });
  // accepted but not yet delivered; failed after being delivered: both reached someone
  await seed(sys.tenantId, 1, { sentAgo: 2 * HOUR, status: "sent", delivered: false, inboundAgo: [72 * HOUR] });
  await seed(sys.tenantId, 1, { sentAgo: HOUR, status: "failed" });
  // not counted: inside the window, again to a counted user, older than 24 h, not a template, failed undelivered, not sent yet
  await seed(sys.tenantId, 5, { sentAgo: HOUR, inboundAgo: [2 * HOUR] });
  await send(sys.tenantId, counted.slice(0, 3), { sentAgo: HOUR / 2 });
  await seed(sys.tenantId, 4, { sentAgo: 25 * HOUR });
  await seed(sys.tenantId, 2, { sentAgo: HOUR, type: "text" });
  await seed(sys.tenantId, 2, { sentAgo: HOUR, status: "failed", delivered: false });
  await seed(sys.tenantId, 1, { sentAgo: null, status: "queued" });
  // another tenant's recipients are its own
  await seed(otherTenantId, 10, { sentAgo: HOUR });

  const res = await status();
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ tier: "TIER_250", limit: 250, uniqueUsers24h: 199, usedPercent: 79.6, warning: false, warnPercent: 80 });
  expect((await status(otherTenantId)).body).toMatchObject({ uniqueUsers24h: 10, usedPercent: 4, warning: false });
  // below the threshold the sweep raises nothing
  await sys.core.messagingLimits.sweep({ force: true });
  await new Promise((r) => setTimeout(r, 300));
  expect(warnings()).toHaveLength(0);
});

it("counts a real code to a new number, not one to a customer who wrote in the last 24 hours", async () => {
  // the customer writes first: the code goes out inside the window
  await sys.sandbox.injectInbound({ from: "+447911123460", text: "hi" });
  await waitFor(() => sys.core.prisma.contact.findFirst({ where: { tenantId: sys.tenantId, waId: "447911123460", lastInboundAt: { not: null } } }));
  const inWindow = await api().post("/v1/verifications").set(admin()).send({ to: "+447911123460" });
  expect(inWindow.status).toBe(201);
  await codeSent(inWindow.body.id);
  expect((await status()).body.uniqueUsers24h).toBe(199);

  const outside = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550177" });
  expect(outside.status).toBe(201);
  await codeSent(outside.body.id);
  expect((await status()).body).toMatchObject({ uniqueUsers24h: 200, usedPercent: 80, warning: true });
});

it("publishes messaging_limit.warning once when the use crosses the percent, audits and exports it", async () => {
  await sys.core.messagingLimits.sweep({ force: true });
  const [event] = await waitFor(() => warnings().length > 0 && warnings(), 10_000);
  expect(event).toMatchObject({
    type: "messaging_limit.warning",
    tenantId: sys.tenantId,
    data: { tier: "TIER_250", limit: 250, uniqueUsers24h: 200, usedPercent: 80, warnPercent: 80, checkedAt: expect.any(String) },
  });
  // later checks within 24 hours stay quiet
  await sys.core.messagingLimits.sweep({ force: true });
  await sys.core.messagingLimits.sweep({ force: true });
  await new Promise((r) => setTimeout(r, 500));
  expect(warnings()).toHaveLength(1);
  const audits = await sys.core.prisma.auditEvent.findMany({ where: { tenantId: sys.tenantId, type: "messaging_limit.warning" } });
  expect(audits).toHaveLength(1);
  expect(audits[0]).toMatchObject({ actor: "system", data: { uniqueUsers24h: 200, limit: 250 } });
  // the other tenant, far below its tier, got nothing
  expect(await sys.core.prisma.auditEvent.count({ where: { tenantId: otherTenantId, type: "messaging_limit.warning" } })).toBe(0);

  const s = parseProm((await api().get("/metrics").set(admin())).text);
  expect(value(s, "wabot_messaging_limit_unique_users_24h", { tenant: sys.tenantId })).toBe(200);
  expect(value(s, "wabot_messaging_limit_unique_users_24h", { tenant: otherTenantId })).toBe(10);
  expect(value(s, "wabot_messaging_limit", { tenant: otherTenantId })).toBe(250);
});

it("a lower percent in the tenant's settings warns earlier; a higher tier lowers the share", async () => {
  // TIER_2K pushed by Meta: 200 of 2,000 is 10 %
  await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { messagingLimitTier: "TIER_2K" } });
  expect((await status()).body).toMatchObject({ limit: 2000, usedPercent: 10, warning: false });
  const patched = await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ limits: { messagingLimitWarnPercent: 10 } });
  expect(patched.status).toBe(200);
  expect((await status()).body).toMatchObject({ usedPercent: 10, warning: true, warnPercent: 10 });
  const invalid = await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ limits: { messagingLimitWarnPercent: 0 } });
  expect(invalid.status).toBe(422);
  expect(invalid.body.error.code).toBe("invalid_settings");
});

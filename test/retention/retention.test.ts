import { randomBytes, randomUUID } from "node:crypto";
import request from "supertest";
import { purgeExpired } from "../../src/retention/purge";
import { ManualClock } from "../../src/shared/clock";
import { startTestSystem, type TestSystem } from "../helpers/system";

/** Retention (src/retention/purge.ts) and erasure (src/retention/erase.ts, POST /admin/tenants/{id}/contacts/erase). */
let sys: TestSystem;
const DAY = 24 * 3600_000;
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const db = () => sys.core.prisma;

beforeAll(async () => {
  sys = await startTestSystem({ workers: false });
});
afterAll(async () => {
  await sys?.close();
});

async function newTenant(settings: Record<string, unknown> = {}) {
  return db().tenant.create({
    data: {
      name: "t",
      phoneNumberId: String(Date.now()) + String(Math.floor(Math.random() * 1e6)),
      displayPhoneNumber: "15550001111",
      accessTokenEnc: sys.core.keyring.encrypt("tenant-token", "access-token-xyz"),
      settings: settings as object,
    },
  });
}

async function contact(tenantId: string, digits: string, name = "Ana Example") {
  return db().contact.create({ data: { tenantId, waId: digits, phoneE164: `+${digits}`, profileName: name, username: `@user${digits}`, locale: "pt_BR" } });
}

const wamid = () => `wamid.${randomBytes(8).toString("hex")}`;

async function message(tenantId: string, contactId: string, at: Date, opts: { direction?: "inbound" | "outbound"; status?: "received" | "queued" | "sending" | "sent"; text?: string } = {}) {
  const direction = opts.direction ?? "inbound";
  return db().message.create({
    data: {
      tenantId, contactId, direction, wamid: opts.status === "queued" ? null : wamid(), type: "text",
      payload: { text: { body: opts.text ?? "hello" } }, status: opts.status ?? (direction === "inbound" ? "received" : "sent"),
      timestamp: at, createdAt: at,
    },
  });
}

describe("purgeExpired", () => {
  it("removes only what is older than the tenant's windows; keeps recent rows and queued outbound rows", async () => {
    const clock = new ManualClock(Date.parse("2031-06-01T00:00:00Z"));
    const now = clock.now();
    const ago = (days: number) => new Date(now.getTime() - days * DAY);
    const t = await newTenant({ retention: { messagesDays: 30, auditDays: 60, eventDeliveriesDays: 10 } });
    const other = await newTenant(); // defaults: 90 / 365 / 30
    const c = await contact(t.id, "14155550601");
    const oc = await contact(other.id, "14155550602");

    const oldIn = await message(t.id, c.id, ago(31));
    const oldOut = await message(t.id, c.id, ago(31), { direction: "outbound", status: "sent" });
    await db().sendAttempt.create({ data: { messageId: oldOut.id, attempt: 1, outcome: "accepted", startedAt: ago(31) } });
    const oldQueued = await message(t.id, c.id, ago(40), { direction: "outbound", status: "queued" });
    const oldSending = await message(t.id, c.id, ago(40), { direction: "outbound", status: "sending" });
    const recent = await message(t.id, c.id, ago(29));
    const otherOld = await message(other.id, oc.id, ago(31)); // kept: 90 days there

    await db().statusEvent.createMany({
      data: [
        { tenantId: t.id, wamid: "w-old", status: "sent", timestamp: ago(31), createdAt: ago(31) },
        { tenantId: t.id, wamid: "w-new", status: "sent", timestamp: ago(2), createdAt: ago(2) },
      ],
    });
    await db().auditEvent.createMany({
      data: [
        { tenantId: t.id, type: "x.old", actor: "system", createdAt: ago(61) },
        { tenantId: t.id, type: "x.new", actor: "system", createdAt: ago(59) },
        { tenantId: other.id, type: "x.other", actor: "system", createdAt: ago(61) },
      ],
    });
    await db().eventDelivery.createMany({
      data: [
        { tenantId: t.id, type: "e.old", payload: {}, url: "https://x.example", status: "delivered", createdAt: ago(11) },
        { tenantId: t.id, type: "e.pending", payload: {}, url: "https://x.example", status: "pending", createdAt: ago(11) },
        { tenantId: t.id, type: "e.new", payload: {}, url: "https://x.example", status: "failed", createdAt: ago(9) },
      ],
    });
    const ver = (status: "approved" | "pending", createdAt: Date, to: string) =>
      db().verification.create({
        data: {
          tenantId: t.id, to, purpose: "login", channel: "whatsapp", status, codeLength: 6, codeHash: "h", maxAttempts: 5,
          expiresAt: new Date(createdAt.getTime() + 600_000), endedAt: status === "pending" ? null : createdAt, createdAt,
          deliveries: { create: [{ channel: "whatsapp", provider: "meta", status: "delivered", createdAt }] },
        },
      });
    const vOld = await ver("approved", ago(31), "+14155550601");
    const vNew = await ver("approved", ago(5), "+14155550601");
    const vPending = await ver("pending", ago(31), "+14155550603");
    await db().pinResetToken.createMany({
      data: [
        { tenantId: t.id, contactId: c.id, tokenHash: randomUUID(), expiresAt: ago(2) },
        { tenantId: t.id, contactId: c.id, tokenHash: randomUUID(), expiresAt: new Date(now.getTime() + 3600_000), usedAt: ago(2) },
        { tenantId: t.id, contactId: c.id, tokenHash: randomUUID(), expiresAt: new Date(now.getTime() - 3600_000) },
      ],
    });
    await db().idempotencyRecord.createMany({
      data: [
        { tenantId: t.id, key: "old", requestHash: "h", createdAt: new Date(now.getTime() - 25 * 3600_000) },
        { tenantId: t.id, key: "new", requestHash: "h", createdAt: new Date(now.getTime() - 23 * 3600_000) },
      ],
    });

    const { byTenant } = await purgeExpired(db(), now, { batchSize: 1 }); // batches of one: the loop must go on
    expect(byTenant[t.id]).toMatchObject({ messages: 2, statusEvents: 1, auditEvents: 1, eventDeliveries: 1, verifications: 1, contactsErased: 0 });

    const ids = (await db().message.findMany({ where: { tenantId: { in: [t.id, other.id] } }, select: { id: true } })).map((m) => m.id).sort();
    expect(ids).toEqual([oldQueued.id, oldSending.id, recent.id, otherOld.id].sort());
    expect(ids).not.toContain(oldIn.id);
    expect(await db().sendAttempt.count({ where: { messageId: oldOut.id } })).toBe(0);
    expect((await db().statusEvent.findMany({ where: { tenantId: t.id } })).map((s) => s.wamid)).toEqual(["w-new"]);
    expect((await db().auditEvent.findMany({ where: { tenantId: { in: [t.id, other.id] } } })).map((a) => a.type).sort()).toEqual(["x.new", "x.other"]);
    expect((await db().eventDelivery.findMany({ where: { tenantId: t.id } })).map((e) => e.type).sort()).toEqual(["e.new", "e.pending"]);
    const vs = (await db().verification.findMany({ where: { tenantId: t.id } })).map((v) => v.id).sort();
    expect(vs).toEqual([vNew.id, vPending.id].sort());
    expect(await db().otpDelivery.count({ where: { verificationId: vOld.id } })).toBe(0);
    expect(await db().otpDelivery.count({ where: { verificationId: vNew.id } })).toBe(1);
    expect(await db().pinResetToken.count({ where: { contactId: c.id } })).toBe(1); // expired an hour ago: kept for a day
    expect((await db().idempotencyRecord.findMany({ where: { tenantId: t.id } })).map((r) => r.key)).toEqual(["new"]);

    // a second run finds nothing more
    const again = await purgeExpired(db(), now);
    expect(again.byTenant[t.id]).toMatchObject({ messages: 0, statusEvents: 0, auditEvents: 0, eventDeliveries: 0, verifications: 0 });

    // later, the 90-day window of the other tenant passes too
    clock.advance(60 * DAY);
    const later = await purgeExpired(db(), clock.now());
    expect(later.byTenant[other.id]!.messages).toBe(1);
    expect(await db().message.count({ where: { id: otherOld.id } })).toBe(0);
  });

  it("erases contacts inactive for inactiveContactsDays (0 keeps them)", async () => {
    const now = new Date(Date.parse("2031-06-01T00:00:00Z"));
    const ago = (days: number) => new Date(now.getTime() - days * DAY);
    const t = await newTenant({ retention: { inactiveContactsDays: 30 } });
    const keep = await newTenant();
    const stale = await db().contact.create({ data: { tenantId: t.id, waId: "14155550611", phoneE164: "+14155550611", profileName: "Old", lastInboundAt: ago(40), createdAt: ago(100) } });
    const active = await db().contact.create({ data: { tenantId: t.id, waId: "14155550612", phoneE164: "+14155550612", lastInboundAt: ago(40), createdAt: ago(100) } });
    await message(t.id, active.id, ago(3), { direction: "outbound" });
    const kept = await db().contact.create({ data: { tenantId: keep.id, waId: "14155550613", phoneE164: "+14155550613", lastInboundAt: ago(400), createdAt: ago(400) } });

    const { byTenant } = await purgeExpired(db(), now);
    expect(byTenant[t.id]!.contactsErased).toBe(1);
    expect(await db().contact.findUniqueOrThrow({ where: { id: stale.id } })).toMatchObject({ waId: null, phoneE164: null, profileName: "[erased]" });
    expect((await db().contact.findUniqueOrThrow({ where: { id: active.id } })).waId).toBe("14155550612");
    expect((await db().contact.findUniqueOrThrow({ where: { id: kept.id } })).waId).toBe("14155550613");
    expect((await purgeExpired(db(), now)).byTenant[t.id]!.contactsErased).toBe(0);
  });
});

describe("retention settings", () => {
  it("refuses windows below 7 days (422) and accepts and shows valid ones", async () => {
    const bad = await request(sys.http.url).patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ retention: { messagesDays: 6 } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.code).toBe("invalid_settings");
    expect(JSON.stringify(bad.body.error.details)).toContain("retention.messagesDays");
    for (const r of [{ auditDays: 3 }, { eventDeliveriesDays: 1 }, { inactiveContactsDays: 5 }]) {
      expect((await request(sys.http.url).patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ retention: r })).status).toBe(422);
    }
    const ok = await request(sys.http.url).patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ retention: { messagesDays: 7 } });
    expect(ok.status).toBe(200);
    expect(ok.body.settings.retention).toEqual({ messagesDays: 7, auditDays: 365, eventDeliveriesDays: 30, inactiveContactsDays: 0 });
    const reset = await request(sys.http.url).patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ retention: { messagesDays: 90 } });
    expect(reset.status).toBe(200);
  });
});

describe("erasure", () => {
  /** every table of the database as JSON text */
  async function dump(): Promise<string> {
    const tables = await db().$queryRaw<Array<{ tablename: string }>>`SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`;
    const out: string[] = [];
    for (const { tablename } of tables) {
      const rows = await db().$queryRawUnsafe<Array<{ j: string }>>(`SELECT row_to_json(x)::text AS j FROM "${tablename}" x`);
      out.push(`${tablename}: ${rows.map((r) => r.j).join("\n")}`);
    }
    return out.join("\n");
  }

  it("leaves no number, name or message text of the contact in any table; other contacts and counts stay", async () => {
    const t = sys.tenantId;
    const c = await contact(t, "14155550701", "Zelda Erasable");
    const o = await contact(t, "14155550702", "Otto Keeper");
    await message(t, c.id, new Date(), { text: "my secret street 42" });
    await message(t, c.id, new Date(), { direction: "outbound", text: "reply to zelda" });
    await message(t, c.id, new Date(), { direction: "outbound", status: "queued", text: "queued for zelda" });
    await message(t, o.id, new Date(), { text: "otto writes" });
    await db().session.create({ data: { tenantId: t, contactId: c.id, flow: "f", variables: { name: "Zelda Erasable", phone: "+14155550701" } } });
    await db().login.create({ data: { tenantId: t, contactId: c.id, externalId: "zelda-login", device: "Zelda's iPhone", location: "Lisbon" } });
    await db().contactPin.create({ data: { tenantId: t, contactId: c.id, pinHash: "scrypt$x", recoveryEmail: "zelda@example.com" } });
    await db().pinResetToken.create({ data: { tenantId: t, contactId: c.id, tokenHash: randomUUID(), expiresAt: new Date(Date.now() + 3600_000) } });
    await db().numberBlock.create({ data: { tenantId: t, phone: "+14155550701", until: new Date(Date.now() + DAY), reason: "report" } });
    const mk = (to: string, status: "pending" | "approved", contactId: string | null, clientIp = "203.0.113.7") =>
      db().verification.create({
        data: { tenantId: t, to, purpose: "login", channel: "whatsapp", status, codeLength: 6, codeHash: "h", codeEnc: "enc", maxAttempts: 5, expiresAt: new Date(Date.now() + 600_000), clientIp, contactId },
      });
    await mk("+14155550701", "pending", null);
    await mk("+14155550701", "approved", c.id);
    await mk("+14155550702", "pending", o.id, "198.51.100.9");
    await db().eventDelivery.create({ data: { tenantId: t, type: "contact.verified", payload: { data: { contactId: c.id, to: "+14155550701", name: "Zelda Erasable" } }, url: "https://x.example", status: "delivered" } });
    await db().idempotencyRecord.create({ data: { tenantId: t, key: "k-erase-1", requestHash: "h", status: 201, response: { to: "+14155550701", status: "pending" } } });

    const before = await dump();
    expect(before).toContain("14155550701");
    expect(before).toContain("Zelda");
    const counts = async () => ({
      messages: await db().message.count({ where: { tenantId: t } }),
      verifications: await db().verification.count({ where: { tenantId: t } }),
      contacts: await db().contact.count({ where: { tenantId: t } }),
    });
    const countsBefore = await counts();
    const otherBefore = await db().contact.findUniqueOrThrow({ where: { id: o.id } });

    const res = await request(sys.http.url).post(`/admin/tenants/${t}/contacts/erase`).set(admin()).send({ to: "+14155550701" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ erased: true, contactId: c.id });

    const after = await dump();
    for (const needle of ["14155550701", "Zelda", "zelda", "secret street", "Lisbon", "203.0.113.7"]) expect({ needle, found: after.includes(needle) }).toEqual({ needle, found: false });
    expect(after).toContain("Otto Keeper");
    expect(after).toContain("otto writes");
    expect(await counts()).toEqual(countsBefore);
    expect(await db().contact.findUniqueOrThrow({ where: { id: o.id } })).toEqual(otherBefore);
    const msgs = await db().message.findMany({ where: { contactId: c.id }, orderBy: { seq: "asc" } });
    expect(msgs.map((m) => [m.type, m.status, m.payload])).toEqual([
      ["text", "received", { erased: true }],
      ["text", "sent", { erased: true }],
      ["text", "failed", { erased: true }],
    ]);
    const audit = await db().auditEvent.findFirstOrThrow({ where: { tenantId: t, type: "contact.erased" } });
    expect(audit.subject).toMatch(/•/);
    expect(audit.data).toMatchObject({ contactId: c.id });
    // the other contact's pending verification is untouched
    expect(await db().verification.count({ where: { tenantId: t, to: "+14155550702", status: "pending" } })).toBe(1);

    // erased: the number is unknown now
    const again = await request(sys.http.url).post(`/admin/tenants/${t}/contacts/erase`).set(admin()).send({ to: "+14155550701" });
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe("contact_not_found");
  });

  it("404 for an unknown number, 400 for a bad one, and another tenant's admin key gets 404", async () => {
    const unknown = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/contacts/erase`).set(admin()).send({ to: "+14155550799" });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("contact_not_found");
    const bad = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/contacts/erase`).set(admin()).send({ to: "nope" });
    expect(bad.status).toBe(400);
    expect((await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/contacts/erase`).set(admin()).send({})).status).toBe(400);

    const c = await contact(sys.tenantId, "14155550703", "Mine");
    const other = await newTenant();
    const otherKey = await sys.core.apiKeys.create(other.id, ["admin", "read"]);
    const cross = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/contacts/erase`).set({ Authorization: `Bearer ${otherKey.key}` }).send({ to: "+14155550703" });
    expect(cross.status).toBe(404);
    expect(cross.body.error.code).toBe("tenant_not_found");
    // on its own tenant the number is not its contact
    const own = await request(sys.http.url).post(`/admin/tenants/${other.id}/contacts/erase`).set({ Authorization: `Bearer ${otherKey.key}` }).send({ to: "+14155550703" });
    expect(own.status).toBe(404);
    expect(own.body.error.code).toBe("contact_not_found");
    expect((await db().contact.findUniqueOrThrow({ where: { id: c.id } })).phoneE164).toBe("+14155550703");
    // a verify-only key may not erase
    const verifyKey = await sys.core.apiKeys.create(sys.tenantId, ["verify"]);
    const forbidden = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/contacts/erase`).set({ Authorization: `Bearer ${verifyKey.key}` }).send({ to: "+14155550703" });
    expect(forbidden.status).toBe(403);
  });
});

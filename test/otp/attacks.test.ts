import request from "supertest";
import { buildCore } from "../../src/main/core";
import { startHttp } from "../../src/main/http-server";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** What an attacker, a racing client or a nosy tenant would try. */
let sys: TestSystem;
const logLines: string[] = [];
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5", LOG_LEVEL: "debug" }, captureLogs: logLines });
});
afterAll(async () => {
  await sys.close();
});

describe("races", () => {
  it("thirty concurrent checks of the right code across two processes approve exactly once", async () => {
    // a second API process on the same database and Redis
    const second = buildCore(sys.config);
    const secondHttp = await startHttp(second, { port: 0, host: "127.0.0.1" });
    try {
      const created = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550142" });
      expect(created.status).toBe(201);
      const code = await waitFor(() => latestCode(sys.sandbox, "14155550142"));
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          request(i % 2 ? secondHttp.url : sys.http.url).post("/v1/verifications/check").set(admin()).send({ to: "+14155550142", code }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200)).toHaveLength(1);
      expect(statuses.filter((s) => s === 404)).toHaveLength(29);
      expect(results.find((r) => r.status === 200)!.body).toMatchObject({ status: "approved", valid: true });
      const row = await sys.core.prisma.verification.findUniqueOrThrow({ where: { id: created.body.id } });
      expect(row.attempts).toBe(1);
    } finally {
      await secondHttp.close();
      await second.close();
    }
  });

  it("concurrent wrong guesses never exceed the attempt cap", async () => {
    const created = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550143" });
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550143"));
    const wrong = code === "999999" ? "999998" : "999999";
    const results = await Promise.all(
      Array.from({ length: 20 }, () => request(sys.http.url).post("/v1/verifications/check").set(admin()).send({ id: created.body.id, code: wrong })),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(5);
    const row = await sys.core.prisma.verification.findUniqueOrThrow({ where: { id: created.body.id } });
    expect(row.attempts).toBe(5);
    expect(row.status).toBe("max_attempts_reached");
  });

  it("two concurrent creates for one number make one verification", async () => {
    const [a, b] = await Promise.all([
      request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550144" }),
      request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550144" }),
    ]);
    expect([a.status, b.status].sort()).toEqual([201, 429]);
    expect(await sys.core.prisma.verification.count({ where: { to: "+14155550144" } })).toBe(1);
  });
});

describe("tenant isolation", () => {
  it("a tenant's key sees only its own verifications", async () => {
    const tenant = await request(sys.http.url)
      .post("/admin/tenants")
      .set(admin())
      .send({ phoneNumberId: "209876543210987", displayPhoneNumber: "+15550002222", accessToken: "EAAG-second-tenant-token" });
    expect(tenant.status).toBe(201);
    expect(JSON.stringify(tenant.body)).not.toContain("EAAG-second-tenant-token");
    const key = await request(sys.http.url).post(`/admin/tenants/${tenant.body.id}/api-keys`).set(admin()).send({ scopes: ["verify"] });
    expect(key.status).toBe(201);
    const other = { Authorization: `Bearer ${key.body.key}` };

    const mine = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550145" });
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550145"));
    expect((await request(sys.http.url).get(`/v1/verifications/${mine.body.id}`).set(other)).status).toBe(404);
    expect((await request(sys.http.url).post(`/v1/verifications/${mine.body.id}/cancel`).set(other)).status).toBe(404);
    expect((await request(sys.http.url).post("/v1/verifications/check").set(other).send({ to: "+14155550145", code })).status).toBe(404);
    expect((await request(sys.http.url).post("/v1/verifications/check").set(other).send({ id: mine.body.id, code })).status).toBe(404);
    // the verify-scoped key cannot use the admin API, nor see the first tenant
    expect((await request(sys.http.url).get(`/admin/tenants/${sys.tenantId}`).set(other)).status).toBe(403);
    // still pending for its owner
    expect((await request(sys.http.url).get(`/v1/verifications/${mine.body.id}`).set(admin())).body.status).toBe("pending");

    // revoked at once
    const del = await request(sys.http.url).delete(`/admin/api-keys/${key.body.id}`).set(admin());
    expect(del.status).toBe(200);
    expect((await request(sys.http.url).post("/v1/verifications").set(other).send({ to: "+14155550146" })).status).toBe(401);
  });
});

describe("no plain code anywhere", () => {
  it("keeps codes out of the database, the queues and the logs", async () => {
    await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550147" });
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550147"));
    // the customer also types it into the chat (approving it)
    await sys.sandbox.injectInbound({ from: "14155550147", text: code });
    await waitFor(async () => (await sys.core.prisma.verification.findFirst({ where: { to: "+14155550147" } }))?.status === "approved");
    await new Promise((r) => setTimeout(r, 300));

    const tables = await sys.core.prisma.$queryRaw<{ table_name: string }[]>`
      SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`;
    for (const { table_name } of tables) {
      const rows = await sys.core.prisma.$queryRawUnsafe<{ t: string }[]>(`SELECT row_to_json(x)::text AS t FROM "${table_name}" x`);
      for (const r of rows) expect([table_name, r.t.includes(code)]).toEqual([table_name, false]);
    }
    const keys = await sys.core.redis.keys(`${sys.config.QUEUE_PREFIX}:*`);
    for (const k of keys) {
      const type = await sys.core.redis.type(k);
      const dump = type === "hash" ? JSON.stringify(await sys.core.redis.hgetall(k)) : type === "string" ? String(await sys.core.redis.get(k)) : "";
      expect([k, dump.includes(code)]).toEqual([k, false]);
    }
    expect(logLines.length).toBeGreaterThan(10);
    expect(logLines.filter((l) => l.includes(code))).toEqual([]);
    expect(logLines.filter((l) => l.includes(sys.config.WHATSAPP_ACCESS_TOKEN))).toEqual([]);
  });
});

describe("in the chat", () => {
  it("a wrong code gets the tries left, the right code approves, and the stored message is redacted", async () => {
    const created = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550148" });
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550148"));
    const wrong = code === "123456" ? "654321" : "123456";
    await sys.sandbox.injectInbound({ from: "14155550148", text: wrong });
    const reply = await waitFor(() => sys.sandbox.conversation("14155550148").find((m) => m.direction === "outbound" && /4 tries left/.test(m.text)));
    expect(reply).toBeTruthy();
    await sys.sandbox.injectInbound({ from: "14155550148", text: code.slice(0, 3) + " " + code.slice(3) });
    await waitFor(() => sys.sandbox.conversation("14155550148").find((m) => m.direction === "outbound" && /confirmed/i.test(m.text)));
    const v = await request(sys.http.url).get(`/v1/verifications/${created.body.id}`).set(admin());
    expect(v.body).toMatchObject({ status: "approved", attempts: 2 });
    const inbound = await sys.core.prisma.message.findMany({ where: { direction: "inbound", contact: { waId: "14155550148" } } });
    expect(inbound).toHaveLength(2);
    for (const m of inbound) expect(m.payload).toMatchObject({ redacted: true, text: { body: "[redacted]" } });
  });

  it("Meta's \"I didn't request a code\" cancels the code, blocks new ones and advises the customer", async () => {
    const created = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550149" });
    await waitFor(() => latestCode(sys.sandbox, "14155550149"));
    await sys.sandbox.injectInbound({ from: "14155550149", message: { type: "button", button: { payload: "DID_NOT_REQUEST_CODE", text: "I didn't request a code" } } });
    const advice = await waitFor(() => sys.sandbox.conversation("14155550149").find((m) => m.direction === "outbound" && /SIM/.test(m.text)));
    expect(advice.text).toMatch(/never/i);
    expect((await request(sys.http.url).get(`/v1/verifications/${created.body.id}`).set(admin())).body.status).toBe("canceled");
    const blocked = await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550149" });
    expect(blocked.status).toBe(403);
    expect(blocked.body.error.code).toBe("number_blocked");
  });

  it("a flow step waiting for input gets a code-like text instead of the OTP check", async () => {
    await request(sys.http.url).post("/v1/verifications").set(admin()).send({ to: "+14155550150" });
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550150"));
    const contact = await sys.core.prisma.contact.findFirstOrThrow({ where: { waId: "14155550150" } });
    await sys.core.prisma.session.upsert({
      where: { contactId: contact.id },
      create: { tenantId: sys.tenantId, contactId: contact.id, flow: "survey", step: "ask_zip" },
      update: { flow: "survey", step: "ask_zip" },
    });
    await sys.sandbox.injectInbound({ from: "14155550150", text: code });
    await waitFor(async () => (await sys.core.prisma.message.count({ where: { direction: "inbound", contact: { waId: "14155550150" } } })) === 1);
    await new Promise((r) => setTimeout(r, 200));
    const v = await sys.core.prisma.verification.findFirstOrThrow({ where: { to: "+14155550150" } });
    expect(v).toMatchObject({ status: "pending", attempts: 0 });
  });
});

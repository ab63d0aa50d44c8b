import request from "supertest";
import { envelope, messages, contact } from "../helpers/payloads";
import { postSigned } from "../helpers/signed";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Two businesses on one deployment: every admin and Verify route tried with the other tenant's key and ids
 * answers "not found" (never another's data), and a tenant with its own Meta app secret gets webhooks only
 * when that app signs them.
 */
let sys: TestSystem;
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const B_SECRET = "0123456789abcdef0123456789abcdef";

interface Side {
  tenantId: string;
  key: string;
  keyId: string;
  verificationId: string;
  phoneNumberId: string;
}
let a: Side;
let b: Side;

async function side(phoneNumberId: string, extra: Record<string, unknown>, to: string): Promise<Side> {
  const t = await api().post("/admin/tenants").set(root()).send({ phoneNumberId, displayPhoneNumber: `1555${phoneNumberId}`, accessToken: `EAAG-token-${phoneNumberId}`, ...extra });
  expect(t.status).toBe(201);
  const k = await api().post(`/admin/tenants/${t.body.id}/api-keys`).set(root()).send({ scopes: ["admin", "verify"] });
  const v = await api().post("/v1/verifications").set({ Authorization: `Bearer ${k.body.key}` }).send({ to });
  expect(v.status).toBe(201);
  return { tenantId: t.body.id, key: k.body.key, keyId: k.body.id, verificationId: v.body.id, phoneNumberId };
}

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
  a = await side("30001", {}, "+14155550301");
  b = await side("30002", { appSecret: B_SECRET, wabaId: "40002" }, "+14155550302");
});
afterAll(async () => {
  await sys.close();
});

describe("tenant isolation: the remaining API routes and the console", () => {
  const as = (s: Side) => ({ Authorization: `Bearer ${s.key}` });
  const notFound = (res: request.Response, what = /_not_found$/) => {
    const r = res as unknown as { req?: { method?: string; path?: string } };
    expect([r.req?.method, r.req?.path, res.status, res.body?.error?.code]).toEqual([r.req?.method, r.req?.path, 404, expect.stringMatching(what)]);
  };
  let stepUpId: string;
  let deliveryId: string;
  let loginId: string;
  const A_CONTACT = "+14155550301";

  beforeAll(async () => {
    // A's flow (two versions), a held change, an event delivery, a login, a handed-off conversation
    const flow = (text: string) => ({ triggers: [{ type: "keyword", keywords: ["iso"] }], steps: [{ id: "a", type: "end", text }] });
    expect((await api().put("/admin/flows/isoflow").set(as(a)).send(flow("one"))).status).toBe(201);
    expect((await api().put("/admin/flows/isoflow").set(as(a)).send(flow("two"))).status).toBe(200);
    expect((await api().put(`/admin/tenants/${a.tenantId}/admin-number`).set(root()).send({ number: "+447911123601" })).status).toBe(200);
    const held = await api().put(`/admin/tenants/${a.tenantId}/events`).set(as(a)).send({ url: "https://hooks.example.invalid/a-hook" });
    expect(held.status).toBe(202);
    stepUpId = held.body.stepUp.id;
    expect((await api().put(`/admin/tenants/${a.tenantId}/events`).set(root()).send({ url: "https://hooks.example.invalid/a-hook" })).status).toBe(200);
    expect((await api().post("/v1/verifications").set(as(a)).send({ to: "+14155550311" })).status).toBe(201);
    const d = await waitFor(() => sys.core.prisma.eventDelivery.findFirst({ where: { tenantId: a.tenantId } }));
    deliveryId = d.id;
    const login = await api().post(`/v1/contacts/${encodeURIComponent(A_CONTACT)}/logins`).set(as(a)).send({ id: "a-session-1", device: "Firefox" });
    expect(login.status).toBe(201);
    loginId = login.body.id ?? "a-session-1";
    const contactA = await sys.core.prisma.contact.findFirstOrThrow({ where: { tenantId: a.tenantId, phoneE164: A_CONTACT } });
    await sys.core.prisma.session.upsert({
      where: { contactId: contactA.id },
      create: { tenantId: a.tenantId, contactId: contactA.id, handoffAt: new Date() },
      update: { handoffAt: new Date() },
    });
  });

  it("flows by name, versions, rollback and delete: B's key sees its own (empty) tenant, or 404 for A's tenant id", async () => {
    for (const q of ["", `?tenantId=${a.tenantId}`]) {
      notFound(await api().get(`/admin/flows/isoflow${q}`).set(as(b)));
      notFound(await api().get(`/admin/flows/isoflow/versions${q}`).set(as(b)));
      notFound(await api().post(`/admin/flows/isoflow/rollback${q}`).set(as(b)).send({ version: 1 }));
      notFound(await api().delete(`/admin/flows/isoflow${q}`).set(as(b)));
    }
    // publishing into A's tenant (B may publish into its own)
    notFound(await api().put(`/admin/flows/isoflow?tenantId=${a.tenantId}`).set(as(b)).send({ triggers: [], steps: [{ id: "a", type: "end" }] }));
    notFound(await api().get("/admin/flows").query({ tenantId: a.tenantId }).set(as(b)));
    notFound(await api().post("/v1/flows/isoflow/start").set(as(b)).send({ to: A_CONTACT }));
    // A's flow is intact
    expect((await api().get("/admin/flows/isoflow/versions").set(as(a))).body.versions).toHaveLength(2);
  });

  it("templates, usage and the messaging limit of A's tenant are 404", async () => {
    for (const p of ["templates", "usage", "messaging-limit"]) notFound(await api().get(`/admin/tenants/${a.tenantId}/${p}`).set(as(b)));
    notFound(await api().post(`/admin/tenants/${a.tenantId}/messaging-limit/refresh`).set(as(b)));
    expect((await api().get(`/admin/tenants/${a.tenantId}/templates`).set(as(a))).status).toBe(200);
  });

  it("A's step-up: read, confirm and cancel with B's key are 404; B's list does not show it", async () => {
    notFound(await api().get(`/admin/step-ups/${stepUpId}`).set(as(b)));
    notFound(await api().post(`/admin/step-ups/${stepUpId}/confirm`).set(as(b)).send({ code: "123456" }));
    notFound(await api().post(`/admin/step-ups/${stepUpId}/cancel`).set(as(b)));
    const list = await api().get("/admin/step-ups").query({ tenantId: a.tenantId }).set(as(b));
    expect(list.status).toBe(200);
    expect(list.body.stepUps.map((s: { id: string }) => s.id)).not.toContain(stepUpId);
    expect((await api().get(`/admin/step-ups/${stepUpId}`).set(as(a))).body).toMatchObject({ status: "pending" });
  });

  it("A's event delivery cannot be replayed under either tenant's path", async () => {
    notFound(await api().post(`/admin/tenants/${a.tenantId}/event-deliveries/${deliveryId}/replay`).set(as(b)));
    notFound(await api().post(`/admin/tenants/${b.tenantId}/event-deliveries/${deliveryId}/replay`).set(as(b)));
    expect((await api().get(`/admin/tenants/${b.tenantId}/event-deliveries`).set(as(b))).body.deliveries).toEqual([]);
  });

  it("A's contact, logins, re-verification and hand-off are not B's", async () => {
    const phone = encodeURIComponent(A_CONTACT);
    notFound(await api().get(`/v1/contacts/${phone}`).set(as(b)));
    notFound(await api().get(`/v1/contacts/${phone}/logins`).set(as(b)));
    notFound(await api().delete(`/v1/contacts/${phone}/logins/${loginId}`).set(as(b)));
    expect((await api().get("/admin/handoffs").set(as(b))).body.handoffs).toEqual([]);
    notFound(await api().post("/admin/handoffs/release").set(as(b)).send({ to: A_CONTACT }), /^not_handed_off$/);
    // A's login and hand-off are untouched
    expect((await api().get(`/v1/contacts/${phone}/logins`).set(as(a))).body.logins).toHaveLength(1);
    expect((await api().get("/admin/handoffs").set(as(a))).body.handoffs).toHaveLength(1);
    // re-verification names a number in the caller's own tenant (B gets a contact of its own): A's contact is untouched
    expect((await api().post(`/v1/contacts/${phone}/reverify`).set(as(b)).send({})).status).toBe(202);
    const contactA = await sys.core.prisma.contact.findFirstOrThrow({ where: { tenantId: a.tenantId, phoneE164: A_CONTACT } });
    expect(contactA.reverifyRequiredAt).toBeNull();
  });

  it("the console, signed in with B's key through the form: A's data and ids are 404", async () => {
    const agent = request.agent(sys.http.url);
    expect((await agent.post("/console/login").type("form").send({ key: b.key })).status).toBe(303);
    const session = await agent.get("/console/api/session");
    expect(session.body).toMatchObject({ tenantId: b.tenantId, superAdmin: false });
    const csrf = { "x-csrf-token": session.body.csrfToken as string };
    for (const p of ["verifications", "conversations", "stats"]) notFound(await agent.get(`/console/api/${p}?tenantId=${a.tenantId}`));
    expect((await agent.get("/console/api/verifications")).body.verifications.map((v: { id: string }) => v.id)).not.toContain(a.verificationId);
    notFound(await agent.get(`/console/api/admin/tenants/${a.tenantId}`));
    notFound(await agent.patch(`/console/api/admin/tenants/${a.tenantId}/settings`).set(csrf).send({ otp: { codeLength: 8 } }));
    notFound(await agent.get(`/console/api/admin/flows/isoflow?tenantId=${a.tenantId}`));
    notFound(await agent.get(`/console/api/admin/flows/isoflow`));
    notFound(await agent.get(`/console/api/admin/step-ups/${stepUpId}`));
    notFound(await agent.post(`/console/api/admin/step-ups/${stepUpId}/cancel`).set(csrf));
    notFound(await agent.delete(`/console/api/admin/api-keys/${a.keyId}`).set(csrf));
    notFound(await agent.get(`/console/api/admin/tenants/${a.tenantId}/event-deliveries`));
    const tenants = await agent.get("/console/api/admin/tenants");
    expect(tenants.body.tenants.map((t: { id: string }) => t.id)).toEqual([b.tenantId]);
  });

  it("the console's deployment-wide reads (queue depths, bull-board) are the deployment admin's only", async () => {
    const agent = request.agent(sys.http.url);
    expect((await agent.post("/console/login").type("form").send({ key: b.key })).status).toBe(303);
    // every tenant's jobs share the queues: a tenant session gets no deployment-wide figure
    const queues = await agent.get("/console/api/queues");
    expect([queues.status, queues.body.error?.code]).toEqual([403, "forbidden"]);
    expect(JSON.stringify(queues.body)).not.toMatch(/waiting|inbound/);
    expect((await agent.get("/console/queues/api/queues")).status).toBe(403);
    expect((await agent.get("/console/queues/")).status).toBe(403);
    // every other console read is the session's own tenant (same figures as B's own key would get)
    expect((await agent.get("/console/api/stats")).body.conversion.requested).toBe(1);
    const session = (await agent.get("/console/api/session")).body;
    expect(session.tenants.map((t: { id: string }) => t.id)).toEqual([b.tenantId]);
    // the deployment's admin sees them
    const root = request.agent(sys.http.url);
    expect((await root.post("/console/login").type("form").send({ key: sys.config.ADMIN_API_KEY })).status).toBe(303);
    const all = await root.get("/console/api/queues");
    expect(all.status).toBe(200);
    expect(all.body.queues.map((q: { name: string }) => q.name)).toContain("inbound");
    expect((await root.get("/console/queues/api/queues")).status).toBe(200);
  });
});

describe("tenant isolation", () => {
  const routes: { method: string; label: string; path: (s: Side) => string; body: Record<string, unknown> | null }[] = [
    { method: "GET", label: "/admin/tenants/{tenant}", path: (s) => `/admin/tenants/${s.tenantId}`, body: null },
    { method: "PATCH", label: "/admin/tenants/{tenant}", path: (s) => `/admin/tenants/${s.tenantId}`, body: { name: "x" } },
    { method: "PATCH", label: "/admin/tenants/{tenant}/settings", path: (s) => `/admin/tenants/${s.tenantId}/settings`, body: { otp: { codeLength: 7 } } },
    { method: "PUT", label: "/admin/tenants/{tenant}/access-token", path: (s) => `/admin/tenants/${s.tenantId}/access-token`, body: { accessToken: "EAAG-stolen-token" } },
    { method: "PUT", label: "/admin/tenants/{tenant}/app-secret", path: (s) => `/admin/tenants/${s.tenantId}/app-secret`, body: { appSecret: null } },
    { method: "PUT", label: "/admin/tenants/{tenant}/admin-number", path: (s) => `/admin/tenants/${s.tenantId}/admin-number`, body: { number: "+447911123555" } },
    { method: "GET", label: "/admin/tenants/{tenant}/events", path: (s) => `/admin/tenants/${s.tenantId}/events`, body: null },
    { method: "PUT", label: "/admin/tenants/{tenant}/events", path: (s) => `/admin/tenants/${s.tenantId}/events`, body: { url: null } },
    { method: "POST", label: "/admin/tenants/{tenant}/events/rotate-secret", path: (s) => `/admin/tenants/${s.tenantId}/events/rotate-secret`, body: null },
    { method: "GET", label: "/admin/tenants/{tenant}/event-deliveries", path: (s) => `/admin/tenants/${s.tenantId}/event-deliveries`, body: null },
    { method: "POST", label: "/admin/tenants/{tenant}/api-keys", path: (s) => `/admin/tenants/${s.tenantId}/api-keys`, body: { scopes: ["verify"] } },
    { method: "GET", label: "/admin/tenants/{tenant}/api-keys", path: (s) => `/admin/tenants/${s.tenantId}/api-keys`, body: null },
    { method: "POST", label: "/admin/tenants/{tenant}/contacts/erase", path: (s) => `/admin/tenants/${s.tenantId}/contacts/erase`, body: { to: "+14155550301" } },
    { method: "GET", label: "/admin/flows?tenantId={tenant}", path: (s) => `/admin/flows?tenantId=${s.tenantId}`, body: null },
    { method: "GET", label: "/v1/verifications/{verification}", path: (s) => `/v1/verifications/${s.verificationId}`, body: null },
    { method: "POST", label: "/v1/verifications/{verification}/cancel", path: (s) => `/v1/verifications/${s.verificationId}/cancel`, body: null },
    { method: "DELETE", label: "/admin/api-keys/{key}", path: (s) => `/admin/api-keys/${s.keyId}`, body: null }, // last: the owner's call revokes the key,
  ];

  it.each(routes)("$method $label with the other tenant's key is 404", async ({ method, path, body }) => {
    const call = (key: string) => {
      const r = api()[method.toLowerCase() as "get"](path(a)).set({ Authorization: `Bearer ${key}` });
      return body ? r.send(body) : r;
    };
    const res = await call(b.key);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toMatch(/_not_found$/);
    // and the owner still reaches it (the route exists and the id is right)
    expect((await call(a.key)).status).not.toBe(404);
  });

  it("lists only the caller's tenant, audit trail and verifications", async () => {
    const tenants = await api().get("/admin/tenants").set({ Authorization: `Bearer ${b.key}` });
    expect(tenants.body.tenants.map((t: { id: string }) => t.id)).toEqual([b.tenantId]);
    const audit = await api().get("/admin/audit").query({ tenantId: a.tenantId }).set({ Authorization: `Bearer ${b.key}` });
    expect(audit.status).toBe(200);
    expect(audit.body.items.every((e: { tenantId: string }) => e.tenantId === b.tenantId)).toBe(true);
    const check = await api().post("/v1/verifications/check").set({ Authorization: `Bearer ${b.key}` }).send({ id: a.verificationId, code: "123456" });
    expect(check.status).toBe(404);
  });

  it("only the deployment's ADMIN_API_KEY creates tenants", async () => {
    const res = await api().post("/admin/tenants").set({ Authorization: `Bearer ${b.key}` }).send({ phoneNumberId: "30009", displayPhoneNumber: "15550030009", accessToken: "EAAG-token-30009" });
    expect(res.status).toBe(403);
  });
});

describe("a tenant with its own Meta app secret", () => {
  const inbound = (phoneNumberId: string, from: string, text: string) =>
    envelope({ phoneNumberId, messages: [messages.text(from, text)], contacts: [contact(from)] });
  const stored = (tenantId: string, text: string) =>
    sys.core.prisma.message.count({ where: { tenantId, direction: "inbound", payload: { path: ["text", "body"], equals: text } } });

  it("takes webhooks signed by its own app, and not the deployment's, for its number", async () => {
    const own = await postSigned(sys.http.url, inbound(b.phoneNumberId, "14155550388", "signed-by-b"), B_SECRET);
    expect(own.status).toBe(200);
    await waitFor(async () => ((await stored(b.tenantId, "signed-by-b")) === 1 ? true : null));

    const wrongApp = await postSigned(sys.http.url, inbound(b.phoneNumberId, "14155550388", "signed-by-deployment"), sys.config.WHATSAPP_APP_SECRET);
    expect(wrongApp.status).toBe(200); // authentic for the deployment's app, but it does not speak for B: dropped
    expect(wrongApp.body.messages).toBe(0);
    expect(await stored(b.tenantId, "signed-by-deployment")).toBe(0);
  });

  it("cannot speak for another tenant's number", async () => {
    const forged = await postSigned(sys.http.url, inbound(a.phoneNumberId, "14155550399", "b-forging-a"), B_SECRET);
    expect(forged.status).toBe(200);
    expect(forged.body.messages).toBe(0);
    const unknown = await postSigned(sys.http.url, inbound(a.phoneNumberId, "14155550399", "x"), "ffffffffffffffffffffffffffffffff");
    expect(unknown.status).toBe(401);
  });

  it("is changed (held for step-up) and seen by the webhook at once in this process", async () => {
    const res = await api().put(`/admin/tenants/${b.tenantId}/app-secret`).set(root()).send({ appSecret: null });
    expect(res.status).toBe(200);
    expect((await api().get(`/admin/tenants/${b.tenantId}`).set(root())).body.hasOwnAppSecret).toBe(false);
    const now = await postSigned(sys.http.url, inbound(b.phoneNumberId, "14155550388", "after-reset"), sys.config.WHATSAPP_APP_SECRET);
    expect(now.body.messages).toBe(1);
  });
});

import request from "supertest";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Step-up: a tenant's own admin key asking for a security-sensitive change gets 202 and a held change; a code goes
 * over WhatsApp (the sandbox) to the tenant's admin number; only confirming that code applies the change. The
 * deployment's ADMIN_API_KEY is the audited break-glass. Revocations are never held.
 */
let sys: TestSystem;
let tenantId: string;
let tenantKey: string;
let tenantKeyId: string;
const ADMIN_NUMBER = "+447911123456";
const ADMIN_DIGITS = "447911123456";
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const asTenant = () => ({ Authorization: `Bearer ${tenantKey}` });

/** the newest code the sandbox delivered to the admin number, once it differs from `previous` */
const adminCode = (previous?: string | null) =>
  waitFor(() => {
    const c = latestCode(sys.sandbox, ADMIN_DIGITS);
    return c && c !== previous ? c : null;
  });

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
  const t = await api()
    .post("/admin/tenants")
    .set(root())
    .send({
      phoneNumberId: "20001", displayPhoneNumber: "+1 555 000 2001", accessToken: "EAAG-tenant-b-token-1", adminNumber: ADMIN_NUMBER, name: "Bank B",
      // this test asks the admin for many codes in a few seconds
      settings: { otp: { maxSendsPerNumber: 50 } },
    });
  expect(t.status).toBe(201);
  tenantId = t.body.id;
  expect(t.body.adminNumber).toBe(ADMIN_NUMBER);
  // the break-glass key creates the tenant's first admin key at once, and that is audited as a bypass
  const k = await api().post(`/admin/tenants/${tenantId}/api-keys`).set(root()).send({ scopes: ["admin", "verify"] });
  expect(k.status).toBe(201);
  tenantKey = k.body.key;
  tenantKeyId = k.body.id;
});
afterAll(async () => {
  await sys.close();
});

async function audits(type: string) {
  const res = await api().get("/admin/audit").query({ tenantId, type }).set(root());
  expect(res.status).toBe(200);
  return res.body.items as { type: string; actor: string; data: Record<string, unknown> }[];
}

describe("held changes", () => {
  it("holds a new API key until the code sent to the admin number is confirmed", async () => {
    const before = (await api().get(`/admin/tenants/${tenantId}/api-keys`).set(asTenant())).body.apiKeys.length;
    const held = await api().post(`/admin/tenants/${tenantId}/api-keys`).set(asTenant()).send({ scopes: ["verify"], name: "backend" });
    expect(held.status).toBe(202);
    expect(held.body.stepUp).toMatchObject({ action: "api_key.create", status: "pending", tenantId });
    expect(held.body.stepUp.sentTo).not.toContain("911123"); // masked
    expect(held.body.key).toBeUndefined();
    // nothing changed yet
    expect((await api().get(`/admin/tenants/${tenantId}/api-keys`).set(asTenant())).body.apiKeys).toHaveLength(before);

    const code = await adminCode();
    // the code went out as the authentication template, from the tenant's own number
    const sent = sys.sandbox.requests().filter((r) => r.path.includes("/20001/messages")).pop()!;
    expect(sent.body).toMatchObject({ to: ADMIN_NUMBER, type: "template" });

    const wrong = await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(asTenant()).send({ code: code === "000000" ? "111111" : "000000" });
    expect(wrong.status).toBe(422);
    expect(wrong.body.error).toMatchObject({ code: "invalid_code", details: { attemptsLeft: 4 } });

    const ok = await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(asTenant()).send({ code });
    expect(ok.status).toBe(201);
    expect(ok.body.stepUp.status).toBe("applied");
    expect(ok.body.result.key).toMatch(/^wbk_/);
    // the new key works, and is shown once: the held change keeps no secret
    const check = await api().get("/v1/verifications/00000000-0000-4000-8000-000000000000").set({ Authorization: `Bearer ${ok.body.result.key}` });
    expect(check.status).toBe(404);
    const view = await api().get(`/admin/step-ups/${held.body.stepUp.id}`).set(asTenant());
    expect(JSON.stringify(view.body)).not.toContain(ok.body.result.key);
    expect((await api().get(`/admin/tenants/${tenantId}/api-keys`).set(asTenant())).body.apiKeys).toHaveLength(before + 1);

    // confirmed once: a second confirm is refused
    const again = await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(asTenant()).send({ code });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("step_up_not_pending");
    expect((await audits("step_up.confirmed")).some((e) => e.data.action === "api_key.create")).toBe(true);
  });

  it("rotates the access token only after the code; the tenant's sends then carry the new token", async () => {
    const previous = latestCode(sys.sandbox, ADMIN_DIGITS);
    const held = await api().put(`/admin/tenants/${tenantId}/access-token`).set(asTenant()).send({ accessToken: "EAAG-tenant-b-token-2" });
    expect(held.status).toBe(202);
    const code = await adminCode(previous);
    const ok = await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(asTenant()).send({ code });
    expect(ok.status).toBe(200);
    expect(ok.body.result.tokenRotatedAt).toEqual(expect.any(String));
    // a code to a customer of this tenant goes out with the new token (the sandbox refuses a wrong one with 190)
    const v = await api().post("/v1/verifications").set(asTenant()).send({ to: "+14155550177" });
    expect(v.status).toBe(201);
    await waitFor(() => latestCode(sys.sandbox, "14155550177"));
    const sent = sys.sandbox.requests().filter((r) => r.path.includes("/20001/messages")).pop()!;
    expect(sent.responseStatus).toBe(200);
    expect(sent.authorization).toMatch(/^EAAG/);
    expect((await audits("tenant.token_rotated")).length).toBe(1);
  });

  it("holds a country-policy change but applies other settings at once", async () => {
    const otp = await api().patch(`/admin/tenants/${tenantId}/settings`).set(asTenant()).send({ otp: { codeLength: 8 } });
    expect(otp.status).toBe(200);
    expect(otp.body.settings.otp.codeLength).toBe(8);

    const previous = latestCode(sys.sandbox, ADMIN_DIGITS);
    const held = await api().patch(`/admin/tenants/${tenantId}/settings`).set(asTenant()).send({ phonePolicy: { deniedCountries: ["BR"] } });
    expect(held.status).toBe(202);
    expect((await api().get(`/admin/tenants/${tenantId}`).set(asTenant())).body.settings.phonePolicy.deniedCountries).toEqual([]);
    const code = await adminCode(previous);
    const ok = await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(asTenant()).send({ code });
    expect(ok.status).toBe(200);
    expect(ok.body.result.settings.phonePolicy.deniedCountries).toEqual(["BR"]);
    const refused = await api().post("/v1/verifications").set(asTenant()).send({ to: "+5511987654321" });
    expect(refused.body.error.code).toBe("country_not_allowed");
  });

  it("validates a held settings change before sending any code", async () => {
    const bad = await api().patch(`/admin/tenants/${tenantId}/settings`).set(asTenant()).send({ phonePolicy: { deniedCountries: ["Brazil"] } });
    expect(bad.status).toBe(422);
    expect((await api().get("/admin/step-ups").query({ status: "pending" }).set(asTenant())).body.stepUps).toEqual([]);
  });

  it("holds deleting a flow; canceling drops the change and its code", async () => {
    const flow = { name: "promo", triggers: [{ type: "keyword", keywords: ["promo-9"] }], steps: [{ id: "a", type: "send", text: "hi" }] };
    expect((await api().put("/admin/flows/promo").set(asTenant()).send(flow)).status).toBe(201);
    const held = await api().delete("/admin/flows/promo").set(asTenant());
    expect(held.status).toBe(202);
    expect(held.body.stepUp.action).toBe("flow.delete");
    const canceled = await api().post(`/admin/step-ups/${held.body.stepUp.id}/cancel`).set(asTenant());
    expect(canceled.status).toBe(200);
    expect(canceled.body.status).toBe("canceled");
    expect((await api().get("/admin/flows/promo").set(asTenant())).status).toBe(200);
    const code = latestCode(sys.sandbox, ADMIN_DIGITS) ?? "123456";
    const late = await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(asTenant()).send({ code });
    expect(late.status).toBe(409);

    const previous = latestCode(sys.sandbox, ADMIN_DIGITS);
    const again = await api().delete("/admin/flows/promo").set(asTenant());
    const c2 = await adminCode(previous);
    expect((await api().post(`/admin/step-ups/${again.body.stepUp.id}/confirm`).set(asTenant()).send({ code: c2 })).status).toBe(200);
    expect((await api().get("/admin/flows/promo").set(asTenant())).status).toBe(404);
  });

  it("does not let the admin's chat approve a step-up code typed into WhatsApp", async () => {
    const previous = latestCode(sys.sandbox, ADMIN_DIGITS);
    const held = await api().put(`/admin/tenants/${tenantId}/events`).set(asTenant()).send({ url: "https://hooks.example.invalid/hook" });
    expect(held.status).toBe(202);
    const code = await adminCode(previous);
    await sys.sandbox.injectInbound({ phoneNumberId: "20001", from: ADMIN_DIGITS, text: code });
    // give the worker time to handle the message, then the code must still confirm the change
    await waitFor(() => sys.sandbox.conversation(ADMIN_DIGITS).some((m) => m.direction === "inbound" && m.payload && JSON.stringify(m.payload).includes(code)) || null);
    await new Promise((r) => setTimeout(r, 300));
    const ok = await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(asTenant()).send({ code });
    expect(ok.status).toBe(200);
    expect(ok.body.result.url).toBe("https://hooks.example.invalid/hook");
  });

  it("never holds a revocation", async () => {
    const k = await api().post(`/admin/tenants/${tenantId}/api-keys`).set(root()).send({ scopes: ["verify"] });
    const del = await api().delete(`/admin/api-keys/${k.body.id}`).set(asTenant());
    expect(del.status).toBe(200);
    expect(del.body.revoked).toBe(true);
    expect((await api().get("/v1/verifications/00000000-0000-4000-8000-000000000000").set({ Authorization: `Bearer ${k.body.key}` })).status).toBe(401);
  });

  it("lets the break-glass key apply at once, audited as a bypass", async () => {
    const res = await api().put(`/admin/tenants/${tenantId}/access-token`).set(root()).send({ accessToken: "EAAG-tenant-b-token-3" });
    expect(res.status).toBe(200);
    const bypasses = await audits("step_up.bypassed");
    expect(bypasses.some((e) => e.data.action === "tenant.rotate_token" && e.actor === "admin-key" && e.data.breakGlass === true)).toBe(true);
  });

  it("refuses a held change when the tenant has no admin number, pointing at the break-glass key", async () => {
    const other = await api().post("/admin/tenants").set(root()).send({ phoneNumberId: "20002", displayPhoneNumber: "15550002002", accessToken: "EAAG-tenant-c-token" });
    const key = await api().post(`/admin/tenants/${other.body.id}/api-keys`).set(root()).send({ scopes: ["admin"] });
    const res = await api().put(`/admin/tenants/${other.body.id}/access-token`).set({ Authorization: `Bearer ${key.body.key}` }).send({ accessToken: "EAAG-whatever-123" });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("step_up_unavailable");
    // and the admin number itself cannot be set by the tenant's key then
    const set = await api().put(`/admin/tenants/${other.body.id}/admin-number`).set({ Authorization: `Bearer ${key.body.key}` }).send({ number: "+447911123999" });
    expect(set.status).toBe(409);
  });

  it("keeps one tenant's held changes from another tenant's keys", async () => {
    const previous = latestCode(sys.sandbox, ADMIN_DIGITS);
    const held = await api().post(`/admin/tenants/${tenantId}/events/rotate-secret`).set(asTenant());
    expect(held.status).toBe(202);
    const code = await adminCode(previous);
    const other = await api().post("/admin/tenants").set(root()).send({ phoneNumberId: "20003", displayPhoneNumber: "15550002003", accessToken: "EAAG-tenant-d-token" });
    const key = await api().post(`/admin/tenants/${other.body.id}/api-keys`).set(root()).send({ scopes: ["admin"] });
    const stranger = { Authorization: `Bearer ${key.body.key}` };
    expect((await api().get(`/admin/step-ups/${held.body.stepUp.id}`).set(stranger)).status).toBe(404);
    expect((await api().post(`/admin/step-ups/${held.body.stepUp.id}/confirm`).set(stranger).send({ code })).status).toBe(404);
    expect((await api().get("/admin/step-ups").set(stranger)).body.stepUps).toEqual([]);
    // the Verify API does not show the step-up code's verification either
    const list = await api().get(`/admin/step-ups/${held.body.stepUp.id}`).set(asTenant());
    expect(list.body.status).toBe("pending");
    expect(tenantKeyId).toEqual(expect.any(String));
  });
});

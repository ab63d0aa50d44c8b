import request from "supertest";
import { DEFAULT_TEMPLATES } from "../../src/sandbox/templates";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** Flows started by the business's backend, the 24-hour rule, and hand-off to a person. */
let sys: TestSystem;
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);
const outbound = (digits: string) => sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound");

beforeAll(async () => {
  sys = await startTestSystem({
    env: { OUTBOUND_RECIPIENT_GAP_MS: "5" },
    sandbox: {
      templates: [
        ...DEFAULT_TEMPLATES,
        { name: "login_notice", language: "en_US", category: "UTILITY", body: "New login to your account from {{1}}." },
        { name: "aviso_inicio", language: "es", category: "UTILITY", body: "Nuevo inicio de sesión desde {{1}}." },
      ],
    },
  });
  const notice = {
    name: "login-alert",
    triggers: [{ type: "api" }],
    steps: [
      {
        id: "notice",
        type: "send",
        text: "New login from {{device}}.",
        templateOutsideWindow: { name: "login_notice", language: "en_US", parameters: ["{{device}}"] },
        next: "tip",
      },
      { id: "tip", type: "send", text: "If this wasn't you, reply HELP." },
    ],
  };
  expect((await api().put("/admin/flows/login-alert").set(admin()).send(notice)).status).toBe(201);
  const support = {
    name: "support",
    triggers: [{ type: "keyword", keywords: ["agent"] }],
    steps: [{ id: "handoff", type: "handoff", text: "A person will answer you here shortly." }],
  };
  expect((await api().put("/admin/flows/support").set(admin()).send(support)).status).toBe(201);
});
afterAll(async () => {
  await sys.close();
});

it("outside the 24-hour window only the template goes out; the free-text step is skipped", async () => {
  const res = await api().post("/v1/flows/login-alert/start").set(admin()).send({ to: "+14155550180", variables: { device: "Chrome on Mac" } });
  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ flow: "login-alert", version: 1, to: "+14155550180" });
  const sent = await waitFor(() => outbound("14155550180").length >= 1 && outbound("14155550180"));
  await new Promise((r) => setTimeout(r, 300));
  expect(outbound("14155550180")).toHaveLength(1);
  expect(sent[0]!.type).toBe("template");
  expect(sent[0]!.payload).toMatchObject({ name: "login_notice", components: [{ type: "body", parameters: [{ type: "text", text: "Chrome on Mac" }] }] });
  // the skipped free-text step is recorded
  const skipped = await sys.core.prisma.auditEvent.findMany({ where: { type: "flow.message_skipped" } });
  expect(skipped.map((a) => (a.data as { step: string }).step)).toContain("tip");
});

it("a flow's template goes out as the tenant's template for the contact's locale", async () => {
  const patch = await api()
    .patch(`/admin/tenants/${sys.tenantId}/settings`)
    .set(admin())
    .send({ flows: { templates: { login_notice: { es: { name: "aviso_inicio", language: "es" } } } } });
  expect(patch.status).toBe(200);
  const res = await api().post("/v1/flows/login-alert/start").set(admin()).send({ to: "+34612345180", variables: { device: "Chrome" } });
  expect(res.status).toBe(202);
  const [sent] = await waitFor(() => outbound("34612345180").length >= 1 && outbound("34612345180"));
  expect(sent!.payload).toMatchObject({ name: "aviso_inicio", language: { code: "es" }, components: [{ type: "body", parameters: [{ type: "text", text: "Chrome" }] }] });
  expect(sent!.text).toMatch(/Nuevo inicio de sesión desde Chrome/);
});

it("inside the window the flow's texts go out as they are", async () => {
  await sys.sandbox.injectInbound({ from: "14155550181", text: "hi" });
  await waitFor(() => outbound("14155550181").length >= 1); // the greeting
  const res = await api().post("/v1/flows/login-alert/start").set(admin()).send({ to: "+14155550181", variables: { device: "Firefox" } });
  expect(res.status).toBe(202);
  const texts = await waitFor(() => {
    const t = outbound("14155550181").map((m) => m.text);
    return t.length >= 3 && t;
  });
  expect(texts.slice(1)).toEqual(["New login from Firefox.", "If this wasn't you, reply HELP."]);
});

it("refuses an unknown flow and a bad number", async () => {
  expect((await api().post("/v1/flows/nope/start").set(admin()).send({ to: "+14155550182" })).status).toBe(404);
  const bad = await api().post("/v1/flows/login-alert/start").set(admin()).send({ to: "12" });
  expect(bad.status).toBe(400);
  expect(bad.body.error.code).toBe("invalid_phone_number");
});

it("hands a chat to a person: the bot stays quiet until it is released", async () => {
  const who = "14155550183";
  await sys.sandbox.injectInbound({ from: who, text: "agent" });
  await waitFor(() => outbound(who).some((m) => /person will answer/.test(m.text)));
  const before = outbound(who).length;
  await sys.sandbox.injectInbound({ from: who, text: "hello? anyone?" });
  await new Promise((r) => setTimeout(r, 400));
  expect(outbound(who)).toHaveLength(before);
  const list = await api().get("/admin/handoffs").set(admin());
  expect(list.body.handoffs.map((h: { to: string }) => h.to)).toContain("+14155550183");
  const released = await api().post("/admin/handoffs/release").set(admin()).send({ to: "+14155550183" });
  expect(released.status).toBe(200);
  await sys.sandbox.injectInbound({ from: who, text: "hello again" });
  await waitFor(() => outbound(who).length > before);
});

it("a number whose code was locked by wrong guesses is asked to verify again before anything else", async () => {
  const to = "+14155550190";
  const created = await api().post("/v1/verifications").set(admin()).send({ to });
  expect(created.status).toBe(201);
  for (let i = 0; i < 5; i++) await api().post("/v1/verifications/check").set(admin()).send({ id: created.body.id, code: `00000${i}` });
  expect((await api().get(`/v1/verifications/${created.body.id}`).set(admin())).body.status).toBe("max_attempts_reached");
  await sys.sandbox.injectInbound({ from: "14155550190", text: "help" });
  const texts = await waitFor(() => {
    const t = outbound("14155550190").map((m) => m.text);
    return t.some((x) => /still yours/.test(x)) && t;
  });
  expect(texts.some((x) => /still yours/.test(x))).toBe(true);
});

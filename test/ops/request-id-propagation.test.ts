import request from "supertest";
import { contact, envelope, messages } from "../helpers/payloads";
import { postSigned } from "../helpers/signed";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * The request id (X-Request-Id) carried end to end: webhook → inbound job (encrypted data) → the inbound worker's
 * log lines → the reply's outbound job → the send worker's lines and the Cloud API call's X-Request-Id header
 * (recorded by the sandbox). The same for a Verify API call and its code template. Real PostgreSQL and Redis.
 */
let sys: TestSystem;
const lines: string[] = [];
const logs = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });

beforeAll(async () => {
  // debug: the lines of every step are written (inbound handled, message accepted, status applied)
  sys = await startTestSystem({ captureLogs: lines, env: { LOG_LEVEL: "debug", OUTBOUND_RECIPIENT_GAP_MS: "5" } });
});
afterAll(async () => {
  await sys.close();
});

const CUSTOMER = "447700900555";
const SECRET_TEXT = "my secret phrase is kumquat-4242";

describe("a webhook's request id", () => {
  it("reaches the inbound worker's log lines, the send worker's and the Cloud API request of the reply", async () => {
    const reqId = "wh-trace.0001:test";
    const body = envelope({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact(CUSTOMER, "Ada")], messages: [messages.text(CUSTOMER, SECRET_TEXT)] });
    const res = await postSigned(sys.http.url, body, sys.config.WHATSAPP_APP_SECRET).set("X-Request-Id", reqId);
    expect(res.status).toBe(200);
    expect(res.headers["x-request-id"]).toBe(reqId);

    // the reply's Cloud API call carries the webhook's id as a header
    const call = await waitFor(() => sys.sandbox.requests().find((r) => r.requestId === reqId && r.responseStatus === 200));
    expect(call.path).toMatch(new RegExp(`/${sys.config.WHATSAPP_PHONE_NUMBER_ID}/messages$`));
    expect((call.body as { to?: string }).to).toBe(`+${CUSTOMER}`);

    await waitFor(() => logs().some((l) => l.msg === "message accepted by the Cloud API" && l.reqId === reqId));
    const mine = logs().filter((l) => l.reqId === reqId);
    const msgs = mine.map((l) => l.msg);
    // the inbound worker's own line, the conversation layer's (through the request context) and the send worker's
    expect(msgs).toEqual(expect.arrayContaining(["inbound message processed", "message handled", "message accepted by the Cloud API"]));
    expect(mine.find((l) => l.msg === "inbound message processed")).toMatchObject({ outcome: "handled", jobId: expect.stringMatching(/^m-/) });
    // the worker lines are not the HTTP request's: they were written after the 200
    expect(mine.filter((l) => l.msg === "message accepted by the Cloud API")).toHaveLength(1);
  });

  it("is generated when the caller sends none, and the status webhooks' jobs carry their own", async () => {
    const body = envelope({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact(CUSTOMER, "Ada")], messages: [messages.text(CUSTOMER, "again")] });
    const res = await postSigned(sys.http.url, body, sys.config.WHATSAPP_APP_SECRET);
    expect(res.status).toBe(200);
    const generated = res.headers["x-request-id"] as string;
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    await waitFor(() => sys.sandbox.requests().some((r) => r.requestId === generated && r.responseStatus === 200));
    // the sandbox's status webhooks (sent, delivered…) come without an id: each gets one, and the status worker's lines carry it
    const applied = await waitFor(() => logs().filter((l) => l.msg === "status applied" && typeof l.reqId === "string"), 10_000);
    for (const l of applied) expect(l.reqId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("never appears twice on one line (the child logger and the request context agree)", () => {
    const twice = lines.filter((l) => (l.match(/"reqId":/g) ?? []).length > 1);
    expect(twice).toEqual([]);
  });
});

describe("a Verify API call's request id", () => {
  it("goes with the code template to the Cloud API", async () => {
    const reqId = "api-trace-0002";
    const created = await request(sys.http.url).post("/v1/verifications").set(admin()).set("X-Request-Id", reqId).send({ to: "+14155550177" });
    expect(created.status).toBe(201);
    expect(created.headers["x-request-id"]).toBe(reqId);
    const call = await waitFor(() => sys.sandbox.requests().find((r) => r.requestId === reqId && r.responseStatus === 200));
    expect(call.body).toMatchObject({ to: "+14155550177", type: "template" });
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550177"));
    expect(code).toMatch(/^\d{6,10}$/);
    // the send worker's lines for that message carry it
    await waitFor(() => logs().some((l) => l.msg === "message accepted by the Cloud API" && l.reqId === reqId));
  });
});

describe("the logs of the whole conversation (debug level)", () => {
  it("hold no message text, code, access token, app secret or admin key", async () => {
    const code = latestCode(sys.sandbox, "14155550177");
    expect(code).toBeTruthy();
    const all = lines.join("\n");
    expect(lines.length).toBeGreaterThan(5);
    expect(all).not.toContain("kumquat-4242");
    expect(all).not.toContain(sys.config.WHATSAPP_ACCESS_TOKEN);
    expect(all).not.toContain(sys.config.WHATSAPP_APP_SECRET);
    expect(all).not.toContain(sys.config.ADMIN_API_KEY);
    expect(all).not.toContain(sys.config.SECRETS_KEY);
    // the code: not as a value anywhere (a 6+ digit code could collide with a timestamp's digits, so per field)
    for (const l of logs()) {
      for (const v of Object.values(l)) expect(String(v)).not.toBe(code);
    }
    expect(all).not.toContain(`"${code}"`);
  });
});

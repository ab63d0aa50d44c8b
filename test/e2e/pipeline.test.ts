import request from "supertest";
import { buildCore } from "../../src/main/core";
import { startWorkers } from "../../src/main/workers";
import { envelope, contact, messages } from "../helpers/payloads";
import { echoHandler, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/** Webhook in, reply out, on real PostgreSQL and Redis with the sandbox as Meta. */
let sys: TestSystem;

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "10" } });
});
afterAll(async () => {
  await sys.close();
});

const outboundTo = (customer: string) => sys.sandbox.conversation(customer).filter((m) => m.direction === "outbound");

describe("webhook in, reply out", () => {
  it("answers a signed text from a new number through the Cloud API", async () => {
    const { status } = await sys.sandbox.injectInbound({ from: "+447700900100", profileName: "Ada", text: "hello" });
    expect(status).toBe(200);
    const [reply] = await waitFor(() => outboundTo("447700900100").length > 0 && outboundTo("447700900100"), 5_000, 5);
    expect(reply!.text).toMatch(/Hi Ada/);
    // what the bot sent carried `to` with + and country code, and the bearer token was accepted
    const req = sys.sandbox.requests().find((r) => r.wamid === reply!.wamid)!;
    expect(req.responseStatus).toBe(200);
    expect((req.body as { to: string }).to).toBe("+447700900100");
  });

  it("records the reply's status timeline from the sandbox's status webhooks", async () => {
    await sys.sandbox.injectInbound({ from: "447700900101", text: "hi" });
    const row = await waitFor(async () => {
      const m = await sys.core.prisma.message.findFirst({ where: { direction: "outbound", contact: { waId: "447700900101" } } });
      return m?.status === "read" ? m : null;
    });
    expect(row.wamid).toMatch(/^wamid\./);
    expect(row.sentAt && row.deliveredAt && row.readAt).toBeTruthy();
  });

  it("processes the same webhook delivered three times once", async () => {
    const m = messages.text("447700900102", "once please");
    const body = envelope({ phoneNumberId: sys.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact("447700900102")], messages: [m] });
    const statuses = await Promise.all([sys.sandbox.postWebhook(body), sys.sandbox.postWebhook(body)]);
    await waitFor(() => outboundTo("447700900102").length === 1);
    statuses.push(await sys.sandbox.postWebhook(body)); // a late redelivery, after the first was handled
    expect(statuses).toEqual([200, 200, 200]);
    await new Promise((r) => setTimeout(r, 500));
    expect(outboundTo("447700900102")).toHaveLength(1);
    expect(await sys.core.prisma.message.count({ where: { wamid: m.id } })).toBe(1);
  });

  it("answers a username-only sender (no phone number) with `recipient`", async () => {
    const userId = "US.13491208655302741918";
    const { status } = await sys.sandbox.injectInbound({ userId, username: "@ada", profileName: "Ada", text: "hi" });
    expect(status).toBe(200);
    const req = await waitFor(() => sys.sandbox.requests().find((r) => (r.body as { recipient?: string })?.recipient === userId));
    expect(req.body).not.toHaveProperty("to");
    const c = await sys.core.prisma.contact.findFirst({ where: { userId } });
    expect(c).toMatchObject({ waId: null, phoneE164: null, username: "@ada" });
  });

  it("records a reply Meta could not deliver with its error code", async () => {
    sys.sandbox.addFault({ type: "undeliverable", to: "447700900103" });
    await sys.sandbox.injectInbound({ from: "447700900103", text: "hi" });
    const row = await waitFor(async () => {
      const m = await sys.core.prisma.message.findFirst({ where: { direction: "outbound", contact: { waId: "447700900103" } } });
      return m?.status === "failed" ? m : null;
    });
    expect(row.errorCode).toBe(131026);
  });

  it("retries a reply that hit the pair rate limit until it is sent", async () => {
    sys.sandbox.addFault({ type: "pair_rate", to: "447700900104", count: 2 });
    await sys.sandbox.injectInbound({ from: "447700900104", text: "hi" });
    await waitFor(() => outboundTo("447700900104").length === 1);
    const attempts = sys.sandbox.requests().filter((r) => (r.body as { to?: string })?.to === "+447700900104");
    expect(attempts.map((a) => a.errorCode ?? a.responseStatus)).toEqual([131056, 131056, 200]);
  });
});

describe("tenants", () => {
  it("routes a webhook to the tenant of its phone_number_id and replies from that number with its token", async () => {
    const admin = { Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` };
    const created = await request(sys.http.url)
      .post("/admin/tenants")
      .set(admin)
      .send({ name: "Second Shop", phoneNumberId: "300000000000001", displayPhoneNumber: "+1 555 000 3333", accessToken: "EAAG-second-shop-token-123" });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty("accessToken");
    const { status } = await sys.sandbox.injectInbound({ phoneNumberId: "300000000000001", from: "447911123499", text: "hello" });
    expect(status).toBe(200);
    const req = await waitFor(() => sys.sandbox.requests().find((r) => (r.body as { to?: string }).to === "+447911123499"));
    expect(req.path).toBe(`/${sys.config.GRAPH_API_VERSION}/300000000000001/messages`);
    expect(req.responseStatus).toBe(200); // the sandbox accepted the second tenant's token for its number
    const reply = sys.sandbox.conversation("447911123499", "300000000000001").find((m) => m.direction === "outbound");
    expect(reply?.text).toMatch(/Second Shop/);
    const contact = await sys.core.prisma.contact.findFirstOrThrow({ where: { waId: "447911123499" } });
    expect(contact.tenantId).toBe(created.body.id);
  });

  it("accepts, logs and drops an update for an unknown business number", async () => {
    const body = envelope({ phoneNumberId: "999999999999999", contacts: [contact("447911123498")], messages: [messages.text("447911123498")] });
    expect(await sys.sandbox.postWebhook(body)).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(await sys.core.prisma.message.count({ where: { wamid: (body.entry[0]!.changes[0]!.value.messages![0] as { id: string }).id } })).toBe(0);
  });
});

describe("per-contact order", () => {
  let echo: TestSystem;
  beforeAll(async () => {
    echo = await startTestSystem({ handlers: [echoHandler], env: { OUTBOUND_RECIPIENT_GAP_MS: "5", INBOUND_CONCURRENCY: "8" } });
  });
  afterAll(async () => {
    await echo.close();
  });

  it("handles ten messages of one contact in one POST in order, replies in order", async () => {
    const texts = Array.from({ length: 10 }, (_, i) => `m${i}`);
    const { status } = await echo.sandbox.injectBatch(texts.map((text) => ({ from: "447700900200", text })));
    expect(status).toBe(200);
    const out = await waitFor(() => {
      const o = echo.sandbox.conversation("447700900200").filter((m) => m.direction === "outbound");
      return o.length === 10 && o;
    });
    expect(out.map((m) => m.text)).toEqual(texts.map((t) => `echo: ${t}`));
    const rows = await echo.core.prisma.message.findMany({ where: { direction: "inbound", contact: { waId: "447700900200" } }, orderBy: { seq: "asc" } });
    expect(rows.map((r) => (r.payload as { text: { body: string } }).text.body)).toEqual(texts);
  });

  it("keeps every contact's order with two worker processes sharing the queues", async () => {
    // a second, independent set of clients and workers on the same database and queues: another process
    const second = buildCore(echo.config, { handlers: [echoHandler] });
    const secondWorkers = await startWorkers(second);
    try {
      const contacts = Array.from({ length: 6 }, (_, i) => `4477009003${String(i).padStart(2, "0")}`);
      // markers without long digit runs (those are stored as [code]: stored-message.ts)
      const marker = (from: string, i: number) => `c${from.slice(-2)}-m${i}`;
      const batch = contacts.flatMap((from) => Array.from({ length: 8 }, (_, i) => ({ from, text: marker(from, i) })));
      // interleave contacts within the POST, as Meta does
      batch.sort((a, b) => Number(a.text.split("-m")[1]) - Number(b.text.split("-m")[1]));
      const { status } = await echo.sandbox.injectBatch(batch);
      expect(status).toBe(200);
      for (const from of contacts) {
        const rows = await waitFor(async () => {
          const r = await echo.core.prisma.message.findMany({ where: { direction: "inbound", contact: { waId: from } }, orderBy: { seq: "asc" } });
          return r.length === 8 && r;
        }, 15_000);
        expect(rows.map((r) => (r.payload as { text: { body: string } }).text.body)).toEqual(Array.from({ length: 8 }, (_, i) => marker(from, i)));
      }
    } finally {
      await secondWorkers.close();
      await second.close();
    }
  });
});

import { verifySignature } from "../../src/ingest/verify-signature";
import { APP_SECRET, BSUID, CUSTOMER, PHONE, otpTemplate, setup, textMessage } from "./helpers";

const WAMID = /^wamid\.[A-Za-z0-9+/=]{20,}$/;

describe("sandbox sends", () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
  });
  afterEach(async () => {
    await ctx.close();
  });

  it("answers a text send with Meta's shape: contacts input as given, wa_id digits, a fresh wamid", async () => {
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "hi" });
    const a = await ctx.send(textMessage(CUSTOMER, "hello"));
    const b = await ctx.send(textMessage("16505551234", "again"));
    expect(a.status).toBe(200);
    expect(a.headers["content-type"]).toMatch(/application\/json/);
    expect(Object.keys(a.body).sort()).toEqual(["contacts", "messages", "messaging_product"]);
    expect(a.body.messaging_product).toBe("whatsapp");
    expect(a.body.contacts).toEqual([{ input: "+16505551234", wa_id: "16505551234" }]);
    expect(b.body.contacts).toEqual([{ input: "16505551234", wa_id: "16505551234" }]);
    expect(a.body.messages).toHaveLength(1);
    expect(Object.keys(a.body.messages[0])).toEqual(["id"]); // message_status is for templates only
    expect(a.body.messages[0].id).toMatch(WAMID);
    expect(b.body.messages[0].id).not.toBe(a.body.messages[0].id);
  });

  it("accepts the contract's OTP template with message_status accepted and renders it for the chat", async () => {
    const res = await ctx.send(otpTemplate("+14155550123", "123456"));
    expect(res.status).toBe(200);
    expect(res.body.contacts).toEqual([{ input: "+14155550123", wa_id: "14155550123" }]);
    expect(res.body.messages).toEqual([{ id: expect.stringMatching(WAMID), message_status: "accepted" }]);
    const [msg] = ctx.sandbox.conversation("+14155550123");
    expect(msg!.direction).toBe("outbound");
    expect(msg!.text).toBe("123456 is your verification code. For your security, do not share this code.");
    expect(msg!.buttons).toEqual([{ title: "Copy code", copy: "123456" }]);
  });

  it("posts sent → delivered → read, signed, in order, with Meta's status object", async () => {
    const res = await ctx.send({ ...otpTemplate(CUSTOMER, "908172"), biz_opaque_callback_data: "attempt-42" });
    const wamid = res.body.messages[0].id;
    const statuses = await ctx.receiver.waitFor(() => (ctx.receiver.statuses().length === 3 ? ctx.receiver.statuses() : undefined));
    expect(statuses.map((s) => s.status)).toEqual(["sent", "delivered", "read"]);
    for (const hit of ctx.receiver.received) expect(verifySignature(hit.raw, hit.headers["x-hub-signature-256"], APP_SECRET)).toBe(true);
    const [sent, delivered, read] = statuses;
    for (const s of statuses) {
      expect(s.id).toBe(wamid);
      expect(s.recipient_id).toBe("16505551234");
      expect(s.timestamp).toMatch(/^\d{10}$/);
      expect(Math.abs(Number(s.timestamp) - Date.now() / 1000)).toBeLessThan(5);
      expect(s.biz_opaque_callback_data).toBe("attempt-42");
    }
    expect(sent.pricing).toEqual({ billable: true, pricing_model: "PMP", type: "regular", category: "authentication" });
    expect(sent.conversation.id).toMatch(/^[0-9a-f]{32}$/);
    expect(sent.conversation.origin).toEqual({ type: "authentication" });
    expect(Number(sent.conversation.expiration_timestamp)).toBeGreaterThan(Number(sent.timestamp));
    expect(delivered.conversation.id).toBe(sent.conversation.id);
    expect(delivered.conversation.expiration_timestamp).toBeUndefined();
    expect(read.pricing).toBeUndefined();
    const change = ctx.receiver.received[0]!.json.entry[0].changes[0];
    expect(change.field).toBe("messages");
    expect(change.value.metadata.phone_number_id).toBe(PHONE.phoneNumberId);
    expect(ctx.sandbox.conversation(CUSTOMER)[0]!.statuses.map((s) => s.status)).toEqual(["sent", "delivered", "read"]);
  });

  it("prices a service reply inside the window as free_customer_service", async () => {
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "hi" });
    await ctx.send(textMessage(CUSTOMER, "hello back"));
    const sent = await ctx.receiver.waitFor(() => ctx.receiver.statuses().find((s) => s.status === "sent"));
    expect(sent.pricing).toEqual({ billable: false, pricing_model: "PMP", type: "free_customer_service", category: "service" });
  });

  it("stops at delivered when the customer does not read (autoRead false)", async () => {
    await ctx.close();
    ctx = await setup({ autoRead: false });
    await ctx.send(otpTemplate(CUSTOMER));
    await ctx.receiver.waitFor(() => ctx.receiver.statuses().length === 2);
    await new Promise((r) => setTimeout(r, 80));
    expect(ctx.receiver.statuses().map((s) => s.status)).toEqual(["sent", "delivered"]);
  });

  it("sends to a BSUID with `recipient`: contacts carry user_id, statuses recipient_user_id", async () => {
    await ctx.sandbox.injectInbound({ userId: BSUID, username: "@kerry", text: "hi" });
    const res = await ctx.send({ messaging_product: "whatsapp", recipient_type: "individual", recipient: BSUID, type: "text", text: { body: "hello" } });
    expect(res.status).toBe(200);
    expect(res.body.contacts).toEqual([{ input: BSUID, user_id: BSUID }]);
    const sent = await ctx.receiver.waitFor(() => ctx.receiver.statuses().find((s) => s.status === "sent"));
    expect(sent.recipient_user_id).toBe(BSUID);
    expect(sent.recipient_id).toBeUndefined();
    expect(ctx.sandbox.conversation(BSUID).map((m) => m.direction)).toEqual(["inbound", "outbound"]);
  });

  it("refuses an authentication template to a BSUID (131062): OTP needs the phone number", async () => {
    const body = otpTemplate();
    delete body.to;
    const res = await ctx.send({ ...body, recipient: BSUID });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe(131062);
  });

  it("uses `to` when both `to` and `recipient` are given", async () => {
    const res = await ctx.send({ ...otpTemplate(CUSTOMER), recipient: BSUID });
    expect(res.body.contacts).toEqual([{ input: CUSTOMER, wa_id: "16505551234" }]);
  });

  it("marks an inbound message (and the earlier ones) as read", async () => {
    const first = await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "one" });
    const second = await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "two" });
    const res = await ctx.send({ messaging_product: "whatsapp", status: "read", message_id: second.wamid });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ success: true });
    const thread = ctx.sandbox.conversation(CUSTOMER);
    expect(thread.find((m) => m.wamid === first.wamid)!.status).toBe("read");
    expect(thread.find((m) => m.wamid === second.wamid)!.status).toBe("read");
  });

  it("answers mark-as-read of an unknown wamid with Meta's error JSON", async () => {
    const res = await ctx.send({ messaging_product: "whatsapp", status: "read", message_id: "wamid.doesnotexist" });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 100, type: "OAuthException" });
  });

  it("records every Graph call with the token masked", async () => {
    await ctx.send(otpTemplate());
    await ctx.send(textMessage(CUSTOMER, "x"), { token: "wrong-token-abcdef" });
    const log = ctx.sandbox.requests();
    expect(log.map((r) => [r.method, r.path, r.responseStatus, r.errorCode])).toEqual([
      ["POST", `/v23.0/${PHONE.phoneNumberId}/messages`, 200, undefined],
      ["POST", `/v23.0/${PHONE.phoneNumberId}/messages`, 401, 190],
    ]);
    expect(log[0]!.wamid).toMatch(WAMID);
    const dump = JSON.stringify(log);
    expect(dump).not.toContain(PHONE.accessToken);
    expect(dump).not.toContain("wrong-token-abcdef");
  });
});

import { signBody, verifySignature } from "../../src/ingest/verify-signature";
import { APP_SECRET, BSUID, CUSTOMER, PHONE, PHONE2, setup } from "./helpers";

describe("sandbox inbound webhooks", () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
  });
  afterEach(async () => {
    await ctx.close();
  });

  it("signs the exact bytes with the app secret, escaping non-ASCII like Meta", async () => {
    const { status } = await ctx.sandbox.injectInbound({ from: CUSTOMER, profileName: "Jöhn Smïth", text: "äöå 😀 ok" });
    expect(status).toBe(200);
    const [hit] = ctx.receiver.received;
    const raw = hit!.raw;
    expect(verifySignature(raw, hit!.headers["x-hub-signature-256"], APP_SECRET)).toBe(true);
    expect(verifySignature(raw, hit!.headers["x-hub-signature-256"], "another-secret")).toBe(false);
    // Meta's example: äöå → \u00e4\u00f6\u00e5 (lower-case hex); emoji as a surrogate pair
    expect(raw.toString("utf8")).toContain("\\u00e4\\u00f6\\u00e5 \\ud83d\\ude00 ok");
    expect(raw.toString("utf8")).not.toContain("ä");
    expect(hit!.json.entry[0].changes[0].value.messages[0].text.body).toBe("äöå 😀 ok");
    // a bot that hashes JSON.stringify(parsed) instead of the received bytes fails here, as it would with Meta
    expect(verifySignature(Buffer.from(JSON.stringify(hit!.json)), hit!.headers["x-hub-signature-256"], APP_SECRET)).toBe(false);
    expect(hit!.headers["content-type"]).toBe("application/json");
  });

  it("builds Meta's envelope for one customer text", async () => {
    const { wamid } = await ctx.sandbox.injectInbound({ from: CUSTOMER, profileName: "Kerry Fisher", text: "hi", timestamp: 1_750_000_000 });
    const body = ctx.receiver.received[0]!.json;
    expect(body.object).toBe("whatsapp_business_account");
    expect(body.entry).toHaveLength(1);
    const change = body.entry[0].changes[0];
    expect(change.field).toBe("messages");
    expect(change.value.messaging_product).toBe("whatsapp");
    expect(change.value.metadata).toEqual({ display_phone_number: "15550783881", phone_number_id: "106540352242922" });
    expect(change.value.contacts).toEqual([{ profile: { name: "Kerry Fisher" }, wa_id: "16505551234" }]);
    expect(change.value.messages).toEqual([{ from: "16505551234", id: wamid, timestamp: "1750000000", type: "text", text: { body: "hi" } }]);
    expect(wamid).toMatch(/^wamid\.[A-Za-z0-9+/=]+$/);
  });

  it("sends a username-only user with from_user_id and user_id, without from or wa_id", async () => {
    await ctx.sandbox.injectInbound({ userId: BSUID, username: "@kerry", profileName: "Kerry", message: { type: "button", button: { payload: "DID_NOT_REQUEST_CODE", text: "I didn't request a code" } } });
    const value = ctx.receiver.received[0]!.json.entry[0].changes[0].value;
    expect(value.contacts).toEqual([{ profile: { name: "Kerry", username: "@kerry" }, user_id: BSUID }]);
    const msg = value.messages[0];
    expect(msg.from).toBeUndefined();
    expect(msg.from_user_id).toBe(BSUID);
    expect(msg.type).toBe("button");
    expect(msg.button).toEqual({ payload: "DID_NOT_REQUEST_CODE", text: "I didn't request a code" });
  });

  it("batches many messages into one POST: one change per business number, messages in order", async () => {
    const { wamids, status } = await ctx.sandbox.injectBatch([
      { from: CUSTOMER, text: "one" },
      { from: "+14155550123", text: "two", phoneNumberId: PHONE2.phoneNumberId },
      { from: "+14155550124", text: "three" },
    ]);
    expect(status).toBe(200);
    expect(ctx.receiver.received).toHaveLength(1);
    const changes = ctx.receiver.received[0]!.json.entry.flatMap((e: any) => e.changes); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(changes.map((c: any) => c.value.metadata.phone_number_id)).toEqual([PHONE.phoneNumberId, PHONE2.phoneNumberId]); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(changes[0].value.messages.map((m: any) => m.text.body)).toEqual(["one", "three"]); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(changes[0].value.contacts.map((c: any) => c.wa_id)).toEqual(["16505551234", "14155550124"]); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(changes[0].value.messages.map((m: any) => m.id)).toEqual([wamids[0], wamids[2]]); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(new Set(wamids).size).toBe(3);
  });

  it("returns the bot's status of the first delivery and redelivers non-200 answers with backoff", async () => {
    ctx.receiver.respond((n) => (n <= 2 ? 503 : 200));
    const { status } = await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "retry me" });
    expect(status).toBe(503);
    await ctx.receiver.waitFor(() => ctx.sandbox.webhooks().length === 3);
    const [a, b, c] = ctx.receiver.received;
    expect(b!.raw.equals(a!.raw)).toBe(true);
    expect(c!.headers["x-hub-signature-256"]).toBe(a!.headers["x-hub-signature-256"]);
    const log = ctx.sandbox.webhooks();
    expect(log.map((w) => [w.attempt, w.responseStatus])).toEqual([
      [1, 503],
      [2, 503],
      [3, 200],
    ]);
    // exponential backoff (base 20 ms in these tests): each wait is at least twice the one before. Measured gaps add
    // the next POST's own time, so only lower bounds are stable on a loaded machine
    expect(log[1]!.at - log[0]!.at).toBeGreaterThanOrEqual(20 - 2);
    expect(log[2]!.at - log[1]!.at).toBeGreaterThanOrEqual(40 - 2);
  });

  it("treats any answer other than 200 (even 204) as not delivered, and stops after the configured attempts", async () => {
    ctx.receiver.respond(() => 204);
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "x" });
    await ctx.receiver.waitFor(() => ctx.receiver.received.length === 3);
    await new Promise((r) => setTimeout(r, 150));
    expect(ctx.receiver.received).toHaveLength(3);
  });

  it("postWebhook signs and posts a raw envelope once-serialised", async () => {
    const envelope = { object: "whatsapp_business_account", entry: [{ id: "1", changes: [] }], note: "é" };
    const status = await ctx.sandbox.postWebhook(envelope);
    expect(status).toBe(200);
    const hit = ctx.receiver.received[0]!;
    expect(hit.headers["x-hub-signature-256"]).toBe(signBody(hit.raw, APP_SECRET));
    expect(hit.json).toEqual(envelope);
  });

  it("reports 0 when the bot cannot be reached", async () => {
    ctx.sandbox.setWebhookUrl("http://127.0.0.1:1/webhook");
    const { status } = await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "x" });
    expect(status).toBe(0);
  });
});

import { ManualClock } from "../../src/shared/clock";
import { CUSTOMER, PHONE2, otpTemplate, setup, textMessage } from "./helpers";

const DAY = 24 * 60 * 60 * 1000;

/**
 * The customer service window (WA/messages/send-messages): free-form messages only within 24 h of the customer's last
 * message to that business number; templates any time. Meta accepts the send and reports 131047 in a failed status.
 */
describe("sandbox 24-hour window", () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  let clock: ManualClock;
  beforeEach(async () => {
    clock = new ManualClock(Date.now());
    ctx = await setup({ clock });
  });
  afterEach(async () => {
    await ctx.close();
  });

  async function failedOrSent(wamid: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return ctx.receiver.waitFor(() => ctx.receiver.statuses().find((s) => s.id === wamid && (s.status === "failed" || s.status === "sent")));
  }

  it("accepts a text to a customer who never wrote, then fails it with 131047", async () => {
    const res = await ctx.send(textMessage(CUSTOMER, "hello?"));
    expect(res.status).toBe(200);
    const status = await failedOrSent(res.body.messages[0].id);
    expect(status.status).toBe("failed");
    expect(status.errors[0]).toMatchObject({ code: 131047, title: "Re-engagement message" });
    expect(status.errors[0].error_data.details).toMatch(/24 hours/);
  });

  it("always allows templates", async () => {
    const res = await ctx.send(otpTemplate(CUSTOMER));
    expect((await failedOrSent(res.body.messages[0].id)).status).toBe("sent");
  });

  it("opens on an inbound message and closes 24 h later", async () => {
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "hi" });
    clock.advance(DAY - 1000);
    const inside = await ctx.send(textMessage(CUSTOMER, "still open"));
    expect((await failedOrSent(inside.body.messages[0].id)).status).toBe("sent");
    clock.advance(2000);
    const outside = await ctx.send(textMessage(CUSTOMER, "too late"));
    expect((await failedOrSent(outside.body.messages[0].id)).errors[0].code).toBe(131047);
  });

  it("counts from the message's own timestamp", async () => {
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "old", timestamp: Math.floor((clock.now().getTime() - DAY - 60_000) / 1000) });
    const res = await ctx.send(textMessage(CUSTOMER, "reply"));
    expect((await failedOrSent(res.body.messages[0].id)).status).toBe("failed");
  });

  it("is per business number", async () => {
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "hi", phoneNumberId: PHONE2.phoneNumberId });
    const res = await ctx.send(textMessage(CUSTOMER, "from the other number"));
    expect((await failedOrSent(res.body.messages[0].id)).status).toBe("failed");
  });
});

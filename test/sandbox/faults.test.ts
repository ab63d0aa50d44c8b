import axios from "axios";
import { CUSTOMER, PHONE, otpTemplate, setup } from "./helpers";

describe("sandbox faults", () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
  });
  afterEach(async () => {
    await ctx.close();
  });

  it.each([
    ["rate_limit", 400, 130429, "(#130429) Rate limit hit"],
    ["pair_rate", 400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"],
    ["server_error", 500, 131000, "(#131000) Something went wrong"],
    ["service_unavailable", 503, 131016, "(#131016) Service unavailable"],
  ] as const)("%s → HTTP %i with code %i, then the next send succeeds", async (type, http, code, message) => {
    ctx.sandbox.addFault({ type });
    const res = await ctx.send(otpTemplate());
    expect(res.status).toBe(http);
    expect(res.body.error).toMatchObject({ code, message, type: "OAuthException", error_data: { messaging_product: "whatsapp" } });
    expect(res.body.error.error_data.details.length).toBeGreaterThan(10);
    expect(ctx.sandbox.conversation("+14155550123")).toHaveLength(0); // rejected sends are not messages
    expect((await ctx.send(otpTemplate())).status).toBe(200);
  });

  it("service_unavailable sets Retry-After when asked", async () => {
    ctx.sandbox.addFault({ type: "service_unavailable", retryAfterSeconds: 7 });
    const res = await ctx.send(otpTemplate());
    expect(res.status).toBe(503);
    expect(res.headers["retry-after"]).toBe("7");
  });

  it("token_expired → 190 / 401 with Graph's expired-session subcode 463", async () => {
    ctx.sandbox.addFault({ type: "token_expired" });
    const res = await ctx.send(otpTemplate());
    expect(res.status).toBe(401);
    expect(res.body.error).toMatchObject({ code: 190, error_subcode: 463, type: "OAuthException" });
  });

  it("count applies the fault to that many sends; `to` limits it to one customer", async () => {
    ctx.sandbox.addFault({ type: "pair_rate", count: 2, to: "16505551234" });
    expect((await ctx.send(otpTemplate("+14155550123"))).status).toBe(200);
    expect((await ctx.send(otpTemplate(CUSTOMER))).body.error.code).toBe(131056);
    expect((await ctx.send(otpTemplate(CUSTOMER))).body.error.code).toBe(131056);
    expect((await ctx.send(otpTemplate(CUSTOMER))).status).toBe(200);
  });

  it("clearFaults disarms everything", async () => {
    ctx.sandbox.addFault({ type: "rate_limit", count: 5 });
    ctx.sandbox.clearFaults();
    expect((await ctx.send(otpTemplate())).status).toBe(200);
  });

  it("undeliverable → accepted, then a failed status with 131026 and no sent", async () => {
    ctx.sandbox.addFault({ type: "undeliverable" });
    const res = await ctx.send(otpTemplate(CUSTOMER));
    expect(res.status).toBe(200);
    const wamid = res.body.messages[0].id;
    const failed = await ctx.receiver.waitFor(() => ctx.receiver.statuses().find((s) => s.status === "failed"));
    expect(failed.id).toBe(wamid);
    expect(failed.recipient_id).toBe("16505551234");
    expect(failed.errors).toHaveLength(1);
    expect(failed.errors[0]).toMatchObject({ code: 131026, title: expect.any(String), message: expect.any(String), error_data: { details: expect.any(String) } });
    expect(failed.pricing).toBeUndefined();
    await new Promise((r) => setTimeout(r, 60));
    expect(ctx.receiver.statuses().map((s) => s.status)).toEqual(["failed"]);
    expect(ctx.sandbox.conversation(CUSTOMER)[0]!.status).toBe("failed");
  });

  it("timeout holds the answer for timeoutMs, yet the message is accepted and goes out", async () => {
    ctx.sandbox.addFault({ type: "timeout", timeoutMs: 300 });
    const server = await ctx.sandbox.listen(0);
    try {
      const started = Date.now();
      const aborted = await axios
        .post(`${server.url}/v23.0/${PHONE.phoneNumberId}/messages`, otpTemplate(CUSTOMER), {
          headers: { authorization: `Bearer ${PHONE.accessToken}` },
          timeout: 100,
        })
        .then(
          () => "answered",
          (e: { code?: string }) => e.code,
        );
      expect(aborted).toBe("ECONNABORTED");
      expect(Date.now() - started).toBeLessThan(300);
      // outcome unknown to the bot, but the message exists and its statuses flow
      const delivered = await ctx.receiver.waitFor(() => ctx.receiver.statuses().find((s) => s.status === "delivered"));
      expect(ctx.sandbox.conversation(CUSTOMER).map((m) => m.wamid)).toEqual([delivered.id]);
      // a client that waits gets the normal answer after timeoutMs
      ctx.sandbox.addFault({ type: "timeout", timeoutMs: 150 });
      const t0 = Date.now();
      const res = await axios.post(`${server.url}/v23.0/${PHONE.phoneNumberId}/messages`, otpTemplate(CUSTOMER), {
        headers: { authorization: `Bearer ${PHONE.accessToken}` },
      });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
      expect(res.status).toBe(200);
      expect(res.data.messages[0].message_status).toBe("accepted");
    } finally {
      await server.close();
    }
  });

  it("close() drops a held response instead of hanging", async () => {
    ctx.sandbox.addFault({ type: "timeout", timeoutMs: 60_000 });
    const server = await ctx.sandbox.listen(0);
    const pending = axios
      .post(`${server.url}/v23.0/${PHONE.phoneNumberId}/messages`, otpTemplate(CUSTOMER), { headers: { authorization: `Bearer ${PHONE.accessToken}` } })
      .then(
        () => "answered",
        () => "dropped",
      );
    await ctx.receiver.waitFor(() => ctx.sandbox.requests().length === 1);
    await ctx.sandbox.close();
    expect(await pending).toBe("dropped");
  });

  it("rejects an unknown fault type", () => {
    expect(() => ctx.sandbox.addFault({ type: "meltdown" as never })).toThrow();
  });
});

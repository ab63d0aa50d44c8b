import { get } from "node:http";
import request from "supertest";
import { CUSTOMER, otpTemplate, setup } from "./helpers";

describe("sandbox control API and chat page", () => {
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    ctx = await setup();
  });
  afterEach(async () => {
    await ctx.close();
  });

  it("POST /sandbox/api/inbound injects a message and returns the bot's status", async () => {
    ctx.receiver.respond(() => 200);
    const res = await request(ctx.sandbox.app).post("/sandbox/api/inbound").send({ from: CUSTOMER, text: "hi from the API" });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ wamid: expect.stringMatching(/^wamid\./), status: 200 });
    expect(ctx.receiver.received[0]!.json.entry[0].changes[0].value.messages[0].text.body).toBe("hi from the API");
  });

  it("validates the inbound body and answers JSON errors", async () => {
    const none = await request(ctx.sandbox.app).post("/sandbox/api/inbound").send({ text: "who am I" });
    expect(none.status).toBe(400);
    expect(none.body.error.code).toBe("invalid_request");
    const badPhone = await request(ctx.sandbox.app).post("/sandbox/api/inbound").send({ from: "not-a-number", text: "x" });
    expect(badPhone.status).toBe(400);
    const unknown = await request(ctx.sandbox.app).post("/sandbox/api/inbound").send({ from: CUSTOMER, phoneNumberId: "1", text: "x" });
    expect(unknown.status).toBe(404);
    const notJson = await request(ctx.sandbox.app).post("/sandbox/api/inbound").set("content-type", "application/json").send("{");
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe("invalid_json");
    expect(ctx.receiver.received).toHaveLength(0);
  });

  it("arms and clears faults over HTTP", async () => {
    const bad = await request(ctx.sandbox.app).post("/sandbox/api/faults").send({ type: "meltdown" });
    expect(bad.status).toBe(400);
    const armed = await request(ctx.sandbox.app).post("/sandbox/api/faults").send({ type: "rate_limit", count: 2 });
    expect(armed.status).toBe(201);
    expect((await ctx.send(otpTemplate())).body.error.code).toBe(130429);
    const cleared = await request(ctx.sandbox.app).delete("/sandbox/api/faults");
    expect(cleared.status).toBe(200);
    expect((await ctx.send(otpTemplate())).status).toBe(200);
  });

  it("lists a conversation (both directions, oldest first), requests and webhooks", async () => {
    await ctx.sandbox.injectInbound({ from: CUSTOMER, text: "hi" });
    await ctx.send(otpTemplate(CUSTOMER, "555111"));
    const conv = await request(ctx.sandbox.app).get(`/sandbox/api/conversations/${encodeURIComponent(CUSTOMER)}`);
    expect(conv.status).toBe(200);
    expect(conv.body.messages.map((m: { direction: string; text: string }) => [m.direction, m.text])).toEqual([
      ["inbound", "hi"],
      ["outbound", "555111 is your verification code. For your security, do not share this code."],
    ]);
    const byDigits = await request(ctx.sandbox.app).get("/sandbox/api/conversations/16505551234");
    expect(byDigits.body.messages).toHaveLength(2);
    const reqs = await request(ctx.sandbox.app).get("/sandbox/api/requests");
    expect(reqs.body.requests).toHaveLength(1);
    const hooks = await request(ctx.sandbox.app).get("/sandbox/api/webhooks");
    expect(hooks.body.webhooks[0]).toMatchObject({ attempt: 1, responseStatus: 200, kind: "message", signature: expect.stringMatching(/^sha256=[0-9a-f]{64}$/) });
    expect((await request(ctx.sandbox.app).get("/sandbox/api/nope")).status).toBe(404);
  });

  it("streams events over SSE", async () => {
    const server = await ctx.sandbox.listen(0);
    try {
      const chunks: string[] = [];
      await new Promise<void>((resolve, reject) => {
        const req = get(`${server.url}/sandbox/api/events`, (res) => {
          expect(res.headers["content-type"]).toMatch(/text\/event-stream/);
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            chunks.push(c);
            if (chunks.join("").includes("event: message")) {
              req.destroy();
              resolve();
            }
          });
          void ctx.sandbox.injectInbound({ from: CUSTOMER, text: "live" });
        });
        req.on("error", reject);
      });
      const data = chunks.join("").split("event: message\ndata: ")[1]!.split("\n")[0]!;
      expect(JSON.parse(data)).toMatchObject({ direction: "inbound", text: "live", customer: "16505551234" });
    } finally {
      await server.close();
    }
  });

  it("serves the chat page with the accessible names outside tests rely on", async () => {
    const res = await request(ctx.sandbox.app).get("/sandbox");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/text\/html/);
    expect(res.text).toMatch(/<input[^>]*aria-label="Message"/);
    expect(res.text).toMatch(/<button type="submit">Send<\/button>/);
    // the script is a same-origin file (a strict CSP: no inline script), nothing from a CDN
    expect(res.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(res.text).not.toMatch(/<script>/);
    expect(res.text).not.toMatch(/(src|href)="(https?:)?\/\//);
    const scripts = [...res.text.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]!);
    expect(scripts).toEqual(["/sandbox/assets/chat.js"]);
    const script = await request(ctx.sandbox.app).get(scripts[0]!);
    expect(script.status).toBe(200);
    expect(script.text).toContain('"data-from": from');
    expect(script.text).not.toMatch(/innerHTML/);
  });
});

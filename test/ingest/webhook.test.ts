import request from "supertest";
import type { Express } from "express";
import { webhookApp } from "../helpers/webhook-app";
import { buildCore, type Core } from "../../src/main/core";
import { signBody } from "../../src/ingest/verify-signature";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";
import { contact, envelope, messages, statuses, wamid } from "../helpers/payloads";
import { postSigned } from "../helpers/signed";

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let core: Core;
let app: Express;

beforeAll(async () => {
  db = await createTestDatabase();
  core = buildCore(testConfig({ DATABASE_URL: db.url }));
  app = webhookApp(core);
});

afterAll(async () => {
  await Promise.all(Object.values(core.queues).map((q) => q.obliterate({ force: true })));
  await core.close();
  await db.drop();
});

const secret = () => core.config.WHATSAPP_APP_SECRET;
const pnid = () => core.config.WHATSAPP_PHONE_NUMBER_ID;
const jobCount = async () => (await core.queues.inbound.getJobCounts("waiting", "active", "delayed", "completed")) as Record<string, number>;

describe("GET /webhook (subscription handshake)", () => {
  it("echoes the challenge when the token matches", async () => {
    const res = await request(app).get("/webhook").query({ "hub.mode": "subscribe", "hub.verify_token": core.config.WHATSAPP_VERIFY_TOKEN, "hub.challenge": "1158201444" });
    expect(res.status).toBe(200);
    expect(res.text).toBe("1158201444");
  });
  it("refuses a wrong token or mode with 403", async () => {
    const wrong = await request(app).get("/webhook").query({ "hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1" });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.code).toBe("verification_failed");
    const mode = await request(app).get("/webhook").query({ "hub.mode": "unsubscribe", "hub.verify_token": core.config.WHATSAPP_VERIFY_TOKEN, "hub.challenge": "1" });
    expect(mode.status).toBe(403);
  });
});

describe("POST /webhook signature", () => {
  const body = () => envelope({ phoneNumberId: pnid(), contacts: [contact("16505551234")], messages: [messages.text("16505551234")] });

  it("rejects a missing, malformed or wrong signature with 401 and enqueues nothing", async () => {
    const before = await core.queues.inbound.count();
    const raw = JSON.stringify(body());
    const missing = await request(app).post("/webhook").set("content-type", "application/json").send(raw);
    const malformed = await request(app).post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", "sha1=abc").send(raw);
    const wrongKey = await request(app).post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", signBody(raw, "other-secret")).send(raw);
    for (const res of [missing, malformed, wrongKey]) {
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: "invalid_signature", message: expect.any(String) } });
    }
    expect(await core.queues.inbound.count()).toBe(before);
  });

  it("rejects a body tampered with after signing", async () => {
    const raw = JSON.stringify(body());
    const sig = signBody(raw, secret());
    const tampered = raw.replace("Hello", "Hellp");
    const res = await request(app).post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", sig).send(tampered);
    expect(res.status).toBe(401);
  });

  it("checks non-ASCII bodies over the raw bytes (Meta's escaped unicode), not re-serialised JSON", async () => {
    const m = messages.text("16505551234", "äöå 👋 código");
    // Meta escapes non-ASCII as \\uXXXX in what it signs and sends
    const raw = JSON.stringify(envelope({ phoneNumberId: pnid(), messages: [m] })).replace(/[\u007f-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
    expect(raw).toContain("\\u00e4");
    const ok = await request(app).post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", signBody(raw, secret())).send(raw);
    expect(ok.status).toBe(200);
    // the same content signed over its unescaped form does not match the bytes sent
    const reserialised = JSON.stringify(JSON.parse(raw));
    const bad = await request(app).post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", signBody(reserialised, secret())).send(raw);
    expect(bad.status).toBe(401);
  });

  it("answers 400 for a signed body that is not JSON or not an envelope", async () => {
    const notJson = await postSigned(app, "not json {", secret());
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe("invalid_json");
    const notEnvelope = await postSigned(app, { hello: "world" }, secret());
    expect(notEnvelope.status).toBe(400);
    expect(notEnvelope.body.error.code).toBe("invalid_envelope");
  });
});

describe("POST /webhook hand-off", () => {
  it("writes one job per message and status, and redeliveries do not add jobs", async () => {
    const id = wamid();
    const body = envelope(
      { phoneNumberId: pnid(), contacts: [contact("447700900001")], messages: [messages.text("447700900001"), messages.image("447700900001")] },
      { phoneNumberId: pnid(), statuses: [statuses.of(id, "sent", "447700900001"), statuses.of(id, "delivered", "447700900001")] },
    );
    const before = await core.queues.inbound.count();
    const beforeStatuses = await core.queues.statuses.count();
    for (let i = 0; i < 3; i++) {
      const res = await postSigned(app, body, secret());
      expect(res.status).toBe(200);
    }
    expect(await core.queues.inbound.count()).toBe(before + 2);
    expect(await core.queues.statuses.count()).toBe(beforeStatuses + 2);
  });

  it("keeps message text out of Redis in clear", async () => {
    const secretText = "my code is 918273";
    await postSigned(app, envelope({ phoneNumberId: pnid(), messages: [messages.text("447700900002", secretText)] }), secret());
    const jobs = await core.queues.inbound.getJobs(["waiting", "delayed"]);
    expect(jobs.length).toBeGreaterThan(0);
    for (const j of jobs) expect(JSON.stringify(j.data)).not.toContain("918273");
    const keys = await core.redis.keys(`${core.config.QUEUE_PREFIX}:*`);
    expect(keys.some((k) => k.includes("447700900002"))).toBe(false);
  });

  it("accepts every real payload shape with 200", async () => {
    const from = "5511987654321";
    const all = [
      ...Object.entries(messages).filter(([k]) => k !== "usernameOnly").map(([, make]) => (make as (f: string) => unknown)(from)),
      messages.usernameOnly("BR.8812345678901234"),
    ];
    for (const m of all) {
      const res = await postSigned(app, envelope({ phoneNumberId: pnid(), contacts: [contact(from)], messages: [m] }), secret());
      expect(res.status).toBe(200);
    }
    const failed = await postSigned(app, envelope({ phoneNumberId: pnid(), statuses: [statuses.failed(wamid(), from, 131047)] }), secret());
    expect(failed.status).toBe(200);
    const template = await postSigned(app, { object: "whatsapp_business_account", entry: [{ id: "1", changes: [{ field: "message_template_status_update", value: { event: "PAUSED" } }] }] }, secret());
    expect(template.status).toBe(200);
  });

  it("accepts a 3 MB batch of 1,000 updates and hands off every one", async () => {
    const pad = "x".repeat(2900);
    const batch = Array.from({ length: 1000 }, (_, i) => messages.text(`4477009${String(10000 + i)}`, `${i} ${pad}`));
    const body = envelope({ phoneNumberId: pnid(), messages: batch });
    const raw = Buffer.from(JSON.stringify(body));
    expect(raw.length).toBeGreaterThan(3_000_000);
    const before = await core.queues.inbound.count();
    const res = await postSigned(app, raw, secret());
    expect(res.status).toBe(200);
    expect(res.body.messages).toBe(1000);
    expect(await core.queues.inbound.count()).toBe(before + 1000);
  });

  it("answers 413 with JSON above the body limit", async () => {
    const raw = Buffer.alloc(core.config.WEBHOOK_BODY_LIMIT_BYTES + 1024, 0x20);
    const res = await postSigned(app, raw, secret());
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");
  });

  it("answers 503 when Redis does not take the jobs, and a redelivery then succeeds", async () => {
    const downCore = buildCore(testConfig({ DATABASE_URL: db.url, REDIS_URL: "redis://127.0.0.1:1" }));
    try {
      const body = envelope({ phoneNumberId: pnid(), messages: [messages.text("447700900003")] });
      const res = await postSigned(webhookApp(downCore), body, downCore.config.WHATSAPP_APP_SECRET);
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("unavailable");
      const ready = await request(webhookApp(downCore)).get("/readyz");
      expect(ready.status).toBe(503);
      expect(ready.body.checks.postgres).toBe("ok");
      // Meta redelivers after the 503; with Redis reachable the same update is handed off
      const again = await postSigned(app, body, secret());
      expect(again.status).toBe(200);
      expect(again.body.messages).toBe(1);
    } finally {
      await downCore.close();
    }
  });

  it("reports ready when PostgreSQL and Redis answer", async () => {
    const res = await request(app).get("/readyz");
    expect(res.status).toBe(200);
    expect((await request(app).get("/healthz")).status).toBe(200);
  });

  it("answers unknown routes with JSON 404", async () => {
    const res = await request(app).get("/nope");
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
  });
});

import { createServer, type RequestListener, type Server } from "node:http";
import request from "supertest";
import type { Express } from "express";
import { webhookApp } from "../helpers/webhook-app";
import { withLeanWebhook } from "../../src/http/lean-webhook";
import { buildCore, type Core } from "../../src/main/core";
import { signBody } from "../../src/ingest/verify-signature";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";
import { contact, envelope, messages, statuses, wamid } from "../helpers/payloads";

/**
 * The lean webhook handler (served ahead of Express in production) must answer exactly as the Express route:
 * every request below is sent to both, and status, JSON body and headers must match. And the lean one must really
 * take POST /webhook (the Express app never sees it), while everything else still reaches Express.
 */
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let core: Core;
let downCore: Core;


/** The Express app alone, and the lean handler in front of it (counting what reaches Express). */
function servers(c: Core): { express: Server; lean: Server; expressHits: () => number } {
  const app = webhookApp(c);
  let hits = 0;
  const counted = Object.assign((req: Parameters<RequestListener>[0], res: Parameters<RequestListener>[1]) => {
    hits++;
    return app(req, res);
  }, { get: app.get.bind(app) }) as unknown as Express;
  return {
    express: createServer(app),
    lean: createServer(withLeanWebhook(counted, { ingest: c.ingest, bodyLimitBytes: c.config.WEBHOOK_BODY_LIMIT_BYTES, logger: c.logger, metrics: c.metrics })),
    expressHits: () => hits,
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  core = buildCore(testConfig({ DATABASE_URL: db.url }));
  downCore = buildCore(testConfig({ DATABASE_URL: db.url, REDIS_URL: "redis://127.0.0.1:1" }));
});

afterAll(async () => {
  await Promise.all(Object.values(core.queues).map((q) => q.obliterate({ force: true })));
  await core.close();
  await downCore.close();
  await db.drop();
});

const secret = () => core.config.WHATSAPP_APP_SECRET;
const pnid = () => core.config.WHATSAPP_PHONE_NUMBER_ID;

type Send = (server: Server) => request.Test;
const post = (raw: string | Buffer, headers: Record<string, string> = {}): Send => (server) => {
  let r = request(server).post("/webhook").set("content-type", "application/json").set("x-request-id", "req-parity-1");
  for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
  return r.send(typeof raw === "string" ? raw : raw.toString("utf8"));
};
const signed = (body: unknown, key = secret()): Send => {
  const raw = typeof body === "string" ? body : JSON.stringify(body);
  return post(raw, { "x-hub-signature-256": signBody(raw, key) });
};

/** Sends the same request (made twice: bodies with unique ids) to both servers and compares the answers. */
async function same(c: Core, make: () => Send, expectedStatus: number) {
  const s = servers(c);
  try {
    const before = await metric(c);
    const viaExpress = await make()(s.express);
    const afterExpress = await metric(c);
    const hits = s.expressHits();
    const viaLean = await make()(s.lean);
    const afterLean = await metric(c);
    expect(viaExpress.status).toBe(expectedStatus);
    expect(viaLean.status).toBe(viaExpress.status);
    expect(viaLean.body).toEqual(viaExpress.body);
    for (const h of ["content-type", "content-length", "etag", "x-request-id", "retry-after"]) expect([h, viaLean.headers[h]]).toEqual([h, viaExpress.headers[h]]);
    expect(s.expressHits()).toBe(hits); // the lean handler answered, not Express
    // the same outcome counted once by each
    expect(diff(before, afterExpress)).toEqual(diff(afterExpress, afterLean));
    return viaLean;
  } finally {
    s.express.close();
    s.lean.close();
  }
}

async function metric(c: Core): Promise<Record<string, number>> {
  const m = await c.metrics.webhookRequests.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.outcome), v.value]));
}
const diff = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(Object.keys(b).map((k) => [k, b[k]! - (a[k] ?? 0)]).filter(([, v]) => v !== 0));

describe("lean webhook handler = Express route", () => {
  it("200 for a signed message and status batch, with the jobs written", async () => {
    const before = await core.queues.inbound.count();
    const res = await same(core, () => signed(envelope(
      { phoneNumberId: pnid(), contacts: [contact("447700900101")], messages: [messages.text("447700900101")] },
      { phoneNumberId: pnid(), statuses: [statuses.of(wamid(), "delivered", "447700900101")] },
    )), 200);
    expect(res.body).toEqual({ ok: true, messages: 1, statuses: 1 });
    expect(await core.queues.inbound.count()).toBe(before + 2);
  });

  it("401 for a missing or wrong signature", async () => {
    const raw = JSON.stringify(envelope({ phoneNumberId: pnid(), messages: [messages.text("447700900102")] }));
    await same(core, () => post(raw), 401);
    await same(core, () => post(raw, { "x-hub-signature-256": signBody(raw, "another-secret") }), 401);
  });

  it("400 for a signed body that is not JSON or not an envelope", async () => {
    await same(core, () => signed("not json {"), 400);
    const res = await same(core, () => signed({ hello: "world" }), 400);
    expect(res.body.error.code).toBe("invalid_envelope");
  });

  it("413 above the body limit, declared or streamed", async () => {
    const big = Buffer.alloc(core.config.WEBHOOK_BODY_LIMIT_BYTES + 1024, 0x20);
    const res = await same(core, () => post(big, { "x-hub-signature-256": signBody(big, secret()) }), 413);
    expect(res.body.error.code).toBe("payload_too_large");
  });

  it("503 when Redis does not take the jobs", async () => {
    const body = envelope({ phoneNumberId: pnid(), messages: [messages.text("447700900103")] });
    const res = await same(downCore, () => signed(body, downCore.config.WHATSAPP_APP_SECRET), 503);
    expect(res.body.error.code).toBe("unavailable");
    expect(res.headers["retry-after"]).toBe("5");
  });

  it("carries a new request id when the caller sends none", async () => {
    const s = servers(core);
    try {
      const raw = JSON.stringify(envelope({ phoneNumberId: pnid(), messages: [messages.text("447700900104")] }));
      const res = await request(s.lean).post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", signBody(raw, secret())).send(raw);
      expect(res.status).toBe(200);
      expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      s.express.close();
      s.lean.close();
    }
  });

  it("leaves everything else to Express: the handshake, other paths, compressed bodies", async () => {
    const s = servers(core);
    try {
      const hs = await request(s.lean).get("/webhook").query({ "hub.mode": "subscribe", "hub.verify_token": core.config.WHATSAPP_VERIFY_TOKEN, "hub.challenge": "42" });
      expect(hs.status).toBe(200);
      expect(hs.text).toBe("42");
      const other = await request(s.lean).post("/nope").send("{}");
      expect(other.status).toBe(404);
      const gz = await request(s.lean).post("/webhook").set("content-encoding", "gzip").set("content-type", "application/json").send("{}");
      expect(gz.status).toBe(400); // Express's body parser: not valid gzip
      expect(s.expressHits()).toBe(3);
    } finally {
      s.express.close();
      s.lean.close();
    }
  });
});

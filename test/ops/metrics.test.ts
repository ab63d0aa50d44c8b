import request from "supertest";
import { signBody } from "../../src/ingest/verify-signature";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { parseProm, value } from "./prom-text";

/** GET /metrics on the whole system (real PostgreSQL and Redis, the sandbox as Meta). */
let sys: TestSystem;
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);
const scrape = async () => {
  const res = await api().get("/metrics").set(admin());
  expect(res.status).toBe(200);
  return parseProm(res.text);
};

beforeAll(async () => {
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
});
afterAll(async () => {
  await sys.close();
});

describe("GET /metrics access", () => {
  it("answers 401 JSON without the admin key, with a wrong key, and to a tenant's API key", async () => {
    const none = await api().get("/metrics");
    const wrong = await api().get("/metrics").set("Authorization", `Bearer ${sys.config.ADMIN_API_KEY}x`);
    const basic = await api().get("/metrics").set("Authorization", `Basic ${Buffer.from(`x:${sys.config.ADMIN_API_KEY}`).toString("base64")}`);
    const key = await api().post(`/admin/tenants/${sys.tenantId}/api-keys`).set(admin()).send({ scopes: ["verify", "admin"] });
    expect(key.status).toBe(201);
    const tenantKey = await api().get("/metrics").set("Authorization", `Bearer ${key.body.key}`);
    for (const res of [none, wrong, basic, tenantKey]) {
      expect(res.status).toBe(401);
      expect(res.headers["content-type"]).toMatch(/application\/json/);
      expect(res.body).toEqual({ error: { code: "unauthorized", message: expect.any(String) } });
      expect(res.text).not.toMatch(/wabot_|process_cpu/);
    }
  });
});

describe("after a scripted conversation", () => {
  it("shows webhook, queue, job latency, Cloud API and verification funnel metrics with non-zero values", async () => {
    // a customer writes; the bot answers (webhook → inbound job → outbound job → Cloud API → status webhooks);
    // the first call for that answer is refused with 130429 (throughput) and retried
    sys.sandbox.addFault({ type: "rate_limit", count: 1 });
    const { status } = await sys.sandbox.injectInbound({ from: "+447700900321", profileName: "Ada", text: "hello" });
    expect(status).toBe(200);
    await waitFor(() => sys.sandbox.conversation("447700900321").some((m) => m.direction === "outbound"));

    // a business asks for a code and the customer's code is checked
    const created = await api().post("/v1/verifications").set(admin()).send({ to: "+14155550199" });
    expect(created.status).toBe(201);
    const code = await waitFor(() => latestCode(sys.sandbox, "14155550199"));
    const checked = await api().post("/v1/verifications/check").set(admin()).send({ to: "+14155550199", code });
    expect(checked.body).toMatchObject({ status: "approved", valid: true });
    // the template's delivery status came back through the webhook
    await waitFor(() => sys.core.prisma.auditEvent.count({ where: { verificationId: created.body.id, type: "verification.delivered" } }), 10_000);
    // and one rejected webhook
    const raw = JSON.stringify({ object: "whatsapp_business_account", entry: [] });
    const bad = await api().post("/webhook").set("content-type", "application/json").set("x-hub-signature-256", signBody(raw, "not-the-secret")).send(raw);
    expect(bad.status).toBe(401);

    const res = await api().get("/metrics").set(admin());
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = parseProm(res.text);

    // default process metrics
    expect(value(s, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(value(s, "nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    // webhook outcomes, counted in this process (every outcome is exported, zero or not)
    expect(value(s, "wabot_webhook_requests_total", { outcome: "accepted" })).toBeGreaterThanOrEqual(3);
    expect(value(s, "wabot_webhook_requests_total", { outcome: "invalid_signature" })).toBe(1);
    expect(value(s, "wabot_webhook_requests_total", { outcome: "too_large" })).toBe(0);
    // queue depths, read from Redis at scrape time
    for (const queue of ["inbound", "statuses", "outbound", "events", "otp"]) {
      for (const state of ["waiting", "active", "delayed", "failed"]) {
        expect(value(s, "wabot_queue_jobs", { queue, state })).toEqual(expect.any(Number));
      }
    }
    expect(value(s, "wabot_metrics_source_up", { source: "redis" })).toBe(1);
    expect(value(s, "wabot_metrics_source_up", { source: "postgres" })).toBe(1);
    // job latency per queue
    expect(value(s, "wabot_job_duration_seconds_count", { queue: "inbound", result: "completed" })).toBeGreaterThanOrEqual(1);
    expect(value(s, "wabot_job_duration_seconds_count", { queue: "outbound", result: "completed" })).toBeGreaterThanOrEqual(2);
    expect(value(s, "wabot_job_duration_seconds_count", { queue: "statuses", result: "completed" })).toBeGreaterThanOrEqual(1);
    expect(value(s, "wabot_job_duration_seconds_sum", { queue: "inbound", result: "completed" })).toBeGreaterThan(0);
    // Cloud API calls by outcome and Meta code, from send_attempts
    expect(value(s, "wabot_cloud_api_calls_total", { outcome: "accepted", code: "none" })).toBeGreaterThanOrEqual(2);
    expect(value(s, "wabot_cloud_api_calls_total", { outcome: "transient_error", code: "130429" })).toBe(1);
    expect(value(s, "wabot_cloud_api_calls_total", { outcome: "permanent_error" })).toBeUndefined();
    // worker liveness and queue lag, read from Redis (this process runs the workers)
    expect(value(s, "wabot_workers_alive")).toBe(1);
    for (const queue of ["inbound", "statuses", "outbound", "events", "otp"]) {
      expect(value(s, "wabot_queue_lag_seconds", { queue })).toBeGreaterThanOrEqual(0);
      expect(value(s, "wabot_queue_lag_seconds", { queue })).toBeLessThan(5);
    }
    // the verification funnel, from the audit trail
    const t = { tenant: sys.tenantId, channel: "whatsapp" };
    expect(value(s, "wabot_verifications_total", { ...t, event: "requested" })).toBe(1);
    expect(value(s, "wabot_verifications_total", { ...t, event: "sent" })).toBe(1);
    expect(value(s, "wabot_verifications_total", { ...t, event: "delivered" })).toBe(1);
    expect(value(s, "wabot_verifications_total", { ...t, event: "approved" })).toBe(1);
    expect(value(s, "wabot_tenant_info", { tenant: sys.tenantId, phone_number_id: sys.config.WHATSAPP_PHONE_NUMBER_ID })).toBe(1);

    // nothing personal in any label: no phone number, no message or verification id
    expect(res.text).not.toMatch(/447700900321|14155550199|wamid\./);
    expect(res.text).not.toContain(created.body.id);
  });

  it("counts an oversized webhook body as too_large", async () => {
    const big = Buffer.alloc(sys.config.WEBHOOK_BODY_LIMIT_BYTES + 1, 0x20);
    const res = await api().post("/webhook").set("content-type", "application/json").send(big);
    expect(res.status).toBe(413);
    expect(value(await scrape(), "wabot_webhook_requests_total", { outcome: "too_large" })).toBe(1);
  });
});

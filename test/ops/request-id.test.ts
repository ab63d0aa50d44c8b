import express from "express";
import request from "supertest";
import { createLogger } from "../../src/observability/logger";
import { acceptRequestId, requestId } from "../../src/observability/request-id";
import { startTestSystem, type TestSystem } from "../helpers/system";

/** X-Request-Id: echoed when safe, generated otherwise, bound to the request's logger. */
describe("request id on the whole app", () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem({ workers: false });
  });
  afterAll(async () => {
    await sys.close();
  });

  it("echoes a safe X-Request-Id", async () => {
    const res = await request(sys.http.url).get("/healthz").set("X-Request-Id", "lb-7f3a.91:abc_DEF");
    expect(res.status).toBe(200);
    expect(res.headers["x-request-id"]).toBe("lb-7f3a.91:abc_DEF");
  });

  it("generates one when none is sent, on every route (404s and 401s too)", async () => {
    const a = await request(sys.http.url).get("/readyz");
    const b = await request(sys.http.url).get("/no-such-route");
    const c = await request(sys.http.url).post("/v1/verifications").send({});
    const ids = [a, b, c].map((r) => r.headers["x-request-id"]);
    expect([a.status, b.status, c.status]).toEqual([200, 404, 401]);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(3);
  });

  it("replaces an unsafe or too long id", async () => {
    for (const bad of ["a".repeat(65), "has space", "quote\"d", "<script>", "é"]) {
      const res = await request(sys.http.url).get("/healthz").set("X-Request-Id", bad);
      expect(res.headers["x-request-id"]).not.toBe(bad);
      expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(acceptRequestId("a".repeat(64))).toBe("a".repeat(64));
    expect(acceptRequestId(["first", "second"])).toBe("first");
    expect(acceptRequestId(undefined)).toBeUndefined();
  });
});

describe("the child logger", () => {
  it("puts reqId on every line a handler logs through res.locals.log", async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: "info", destination: { write: (l: string) => void lines.push(l) } });
    const app = express();
    app.use(requestId(logger));
    app.get("/x", (_req, res) => {
      res.locals.log!.info("handled");
      res.json({ ok: true });
    });
    await request(app).get("/x").set("X-Request-Id", "req-123");
    expect(lines.map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ msg: "handled", reqId: "req-123" })]);
  });
});

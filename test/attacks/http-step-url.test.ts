import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { setCallback } from "../../src/events/callback";
import { signRequest, verifyEvent, verifyRequest } from "../../src/events/signature";
import { renderUrl } from "../../src/flows/text";
import { recordScenario } from "../chaos/report";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Customer text rewriting an http step's URL (issue 15 item 15): `{{var}}` was rendered into the URL as is, so the
 * answer `1/../../admin/users/42/delete?confirm=yes#` made the bot call another path of the business's API — with
 * a valid signature, since a GET's signature covered neither the method nor the URL. Values are now
 * percent-encoded as URL components, and the signature (scheme v2) covers method, path and query, timestamp and body.
 */
const EVIL = "1/../../admin/users/42/delete?confirm=yes#";

describe("renderUrl: values stay inside their component", () => {
  it("a path value cannot add segments, a query or a fragment", () => {
    const url = renderUrl("https://api.example.com/orders/{{order}}/status", { order: EVIL })!;
    expect(url).toBe("https://api.example.com/orders/1%2F..%2F..%2Fadmin%2Fusers%2F42%2Fdelete%3Fconfirm%3Dyes%23/status");
    const u = new URL(url);
    expect(u.pathname.split("/")).toEqual(["", "orders", "1%2F..%2F..%2Fadmin%2Fusers%2F42%2Fdelete%3Fconfirm%3Dyes%23", "status"]);
    expect(u.search).toBe("");
    expect(u.hash).toBe("");
  });

  it("a query value cannot add parameters", () => {
    const u = new URL(renderUrl("https://api.example.com/find?q={{q}}&lang={{lang}}", { q: "a&admin=1#x", lang: "en" })!);
    expect([...u.searchParams.entries()]).toEqual([["q", "a&admin=1#x"], ["lang", "en"]]);
  });

  it("a value that is a whole dot segment is refused (the parser would resolve it), in any spelling", () => {
    for (const v of ["..", ".", "%2e%2e", ".%2E"]) {
      const r = renderUrl("https://api.example.com/orders/{{v}}/delete", { v });
      // "%2e%2e" is encoded to "%252e%252e" (a literal segment); only real dot segments are refused
      if (v === ".." || v === ".") expect([v, r]).toEqual([v, null]);
      else expect(new URL(r!).pathname).toMatch(/^\/orders\/[^/]+\/delete$/);
    }
    // the template's own text and fragment: the fragment is dropped
    expect(renderUrl("https://api.example.com/a/{{x}}#frag", { x: "b" })).toBe("https://api.example.com/a/b");
    expect(renderUrl("not a url {{x}}", { x: "1" })).toBeNull();
  });
});

describe("the http step's signature covers method, path, query and body (scheme v2)", () => {
  it("the documented test vector, recomputed with node:crypto alone", () => {
    const secret = "whsec_test_vector";
    const t = 1718000000;
    const target = "/orders/A-17%2F..%2Fadmin?q=a%26b";
    const expected = createHmac("sha256", secret).update(`${t}.GET.${target}.`).digest("hex");
    expect(expected).toBe("ab702e8766abd25d8832a0af3aadd4e96072d6f748f956160cc99206067e5237");
    expect(signRequest(secret, { method: "GET", pathAndQuery: target, body: "" }, t)).toBe(`t=${t},v2=${expected}`);
    const header = `t=${t},v2=${expected}`;
    expect(verifyRequest(secret, header, { method: "GET", pathAndQuery: target, body: "" }, { now: t * 1000 })).toEqual({ ok: true, timestamp: t });
    for (const other of [
      { method: "POST", pathAndQuery: target, body: "" },
      { method: "GET", pathAndQuery: "/orders/A-17", body: "" },
      { method: "GET", pathAndQuery: "/admin?q=a%26b", body: "" },
      { method: "GET", pathAndQuery: target, body: "x" },
    ]) {
      expect([other, verifyRequest(secret, header, other, { now: t * 1000 }).ok]).toEqual([other, false]);
    }
    // an events-style v1 check does not accept it (a v1 signature covered the body alone)
    expect(verifyEvent(secret, header, "", { now: t * 1000 }).ok).toBe(false);
  });
});

describe("end to end: a customer's answer cannot steer the http step to another path", () => {
  let sys: TestSystem;
  let server: Server;
  const seen: { method: string; url: string; signature: string; body: string }[] = [];
  const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        seen.push({ method: req.method ?? "", url: req.url ?? "", signature: String(req.headers["x-wabot-signature"] ?? ""), body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(200, { "content-type": "application/json" }).end('{"status":"shipped"}');
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    // the business endpoint is a local HTTP server: development mode, opted into explicitly
    sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5", NODE_ENV: "development" } });
  });
  afterAll(async () => {
    await sys.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("the answer is one encoded path segment; the signature does not verify for any other target", async () => {
    const port = (server.address() as AddressInfo).port;
    const { secret } = await setCallback(sys.core.prisma, sys.core.keyring, sys.tenantId, `http://127.0.0.1:${port}/events`, { dev: true });
    const row = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
    const settings = row.settings as Record<string, any>;
    await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { settings: { ...settings, flows: { ...(settings.flows ?? {}), httpAllowedHosts: ["127.0.0.1"] } } } });
    sys.core.tenants.invalidate();
    const flow = {
      name: "order-status",
      triggers: [{ type: "keyword", keywords: ["order status"] }],
      steps: [
        { id: "which", type: "ask", text: "Your order number?", input: { type: "text" }, save: "order", next: "lookup" },
        { id: "lookup", type: "http", method: "GET", url: `http://127.0.0.1:${port}/orders/{{order}}?lang=en`, save: "api", next: "tell", onError: "oops" },
        { id: "tell", type: "send", text: "Order status: {{api.status}}" },
        { id: "oops", type: "send", text: "lookup failed: {{http_error}}" },
      ],
    };
    expect([200, 201]).toContain((await request(sys.http.url).put("/admin/flows/order-status").set(admin()).send(flow)).status);

    await sys.sandbox.injectInbound({ from: "+14155550177", text: "order status" });
    const bot = () => sys.sandbox.conversation("14155550177").filter((m) => m.direction === "outbound").map((m) => JSON.stringify(m.payload));
    await waitFor(() => bot().some((b) => b.includes("Your order number?")), 15_000);
    await sys.sandbox.injectInbound({ from: "+14155550177", text: EVIL });
    await waitFor(() => bot().some((b) => b.includes("Order status: shipped")), 15_000);

    const calls = seen.filter((s) => !s.url.startsWith("/events"));
    expect(calls).toHaveLength(1);
    const call = calls[0]!;
    expect(call.method).toBe("GET");
    expect(call.url).toBe("/orders/1%2F..%2F..%2Fadmin%2Fusers%2F42%2Fdelete%3Fconfirm%3Dyes%23?lang=en");
    expect(seen.some((s) => s.url.includes("/admin"))).toBe(false);
    // the business checks the signature over what it received; it is worth nothing for another method or target
    expect(verifyRequest(secret!, call.signature, { method: "GET", pathAndQuery: call.url, body: call.body })).toMatchObject({ ok: true });
    for (const target of ["/admin/users/42/delete?confirm=yes", "/orders/1", "/orders/1%2F..%2F..%2Fadmin%2Fusers%2F42%2Fdelete%3Fconfirm%3Dyes%23"]) {
      expect([target, verifyRequest(secret!, call.signature, { method: "GET", pathAndQuery: target, body: "" }).ok]).toEqual([target, false]);
    }
    expect(verifyRequest(secret!, call.signature, { method: "POST", pathAndQuery: call.url, body: call.body }).ok).toBe(false);

    // an answer that is a whole dot segment is refused before any call
    await sys.sandbox.injectInbound({ from: "+14155550178", text: "order status" });
    const bot2 = () => sys.sandbox.conversation("14155550178").filter((m) => m.direction === "outbound").map((m) => JSON.stringify(m.payload));
    await waitFor(() => bot2().some((b) => b.includes("Your order number?")), 15_000);
    await sys.sandbox.injectInbound({ from: "+14155550178", text: ".." });
    await waitFor(() => bot2().some((b) => b.includes("lookup failed: invalid_url")), 15_000);
    expect(seen.filter((s) => !s.url.startsWith("/events"))).toHaveLength(1);

    recordScenario({
      id: "A8-http-step-url-injection",
      title: "Customer text rewriting an http step's URL",
      section: "attacks",
      figures: { callsToOtherPaths: seen.filter((s) => s.url.includes("/admin")).length },
      notes:
        "The answer `1/../../admin/users/42/delete?confirm=yes#` reaches the endpoint as one percent-encoded path segment; a whole `..` " +
        "is refused before any call; the v2 signature covers method, path and query, timestamp and body, so it verifies for no other target.",
    });
  });
});

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { callBusinessEndpoint, hostAllowed, isNonPublicAddress, MAX_RESPONSE_BYTES, type HttpCallInput } from "../../src/flows/http-call";
import { verifyRequest } from "../../src/events/signature";
import { SecretInDataError } from "../../src/shared/no-secrets";

type Handler = (req: IncomingMessage, raw: string, res: ServerResponse) => void;
const SECRET = "whsec_test_secret";
const received: { path: string; url: string; method: string; headers: IncomingMessage["headers"]; raw: string }[] = [];
const handlers = new Map<string, Handler>();
let server: Server;
let base = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      const path = (req.url ?? "/").split("?")[0]!;
      received.push({ path, url: req.url ?? "/", method: req.method ?? "", headers: req.headers, raw });
      const h = handlers.get(path);
      if (h) h(req, raw, res);
      else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  received.length = 0;
});

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Handler => (_req, _raw, res) => {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(typeof body === "string" ? body : JSON.stringify(body));
};

function input(path: string, over: Partial<HttpCallInput> = {}): HttpCallInput {
  return {
    url: `${base}${path}`,
    method: "POST",
    body: { contact: { id: "c1", phone: "+447700900123", locale: "en_US" }, variables: { orderId: "A-17", amount: 42 } },
    timeoutMs: 2000,
    allowedHosts: ["127.0.0.1"],
    secret: SECRET,
    flow: "orders",
    step: "lookup",
    tenantId: "t-1",
    now: new Date(),
    // the endpoint is a local HTTP server: development mode, opted into explicitly (test/attacks/ssrf.test.ts: other modes)
    dev: true,
    ...over,
  };
}

test("POSTs the signed body with flow and step headers; the JSON object answer is returned", async () => {
  handlers.set("/ok", json(200, { status: "shipped", eta: 3 }));
  const now = new Date();
  const r = await callBusinessEndpoint(input("/ok", { now }));
  expect(r).toEqual({ ok: true, status: 200, data: { status: "shipped", eta: 3 } });
  const req = received[0]!;
  expect(req.method).toBe("POST");
  expect(JSON.parse(req.raw)).toEqual({ flow: "orders", step: "lookup", tenantId: "t-1", contact: { id: "c1", phone: "+447700900123", locale: "en_US" }, variables: { orderId: "A-17", amount: 42 } });
  expect(req.headers["x-wabot-flow"]).toBe("orders");
  expect(req.headers["x-wabot-step"]).toBe("lookup");
  expect(req.headers["content-type"]).toBe("application/json");
  const sig = req.headers["x-wabot-signature"] as string;
  expect(sig).toMatch(new RegExp(`^t=${Math.floor(now.getTime() / 1000)},v2=[0-9a-f]{64}$`));
  const signed = { method: "POST", pathAndQuery: req.url, body: req.raw };
  expect(verifyRequest(SECRET, sig, signed)).toMatchObject({ ok: true });
  expect(verifyRequest("whsec_other", sig, signed)).toMatchObject({ ok: false });
  expect(verifyRequest(SECRET, sig, { ...signed, body: req.raw.replace("A-17", "A-18") })).toMatchObject({ ok: false });
  // the method and the request target are covered too
  expect(verifyRequest(SECRET, sig, { ...signed, method: "GET" })).toMatchObject({ ok: false });
  expect(verifyRequest(SECRET, sig, { ...signed, pathAndQuery: "/admin" })).toMatchObject({ ok: false });
});

test("GET sends no body; the signature covers the empty body", async () => {
  handlers.set("/get", json(200, { a: 1 }));
  expect(await callBusinessEndpoint(input("/get", { method: "GET" }))).toEqual({ ok: true, status: 200, data: { a: 1 } });
  expect(received[0]!.raw).toBe("");
  expect(verifyRequest(SECRET, received[0]!.headers["x-wabot-signature"] as string, { method: "GET", pathAndQuery: received[0]!.url, body: "" })).toMatchObject({ ok: true });
});

test("a slow endpoint times out (total deadline, also when the server trickles)", async () => {
  handlers.set("/slow", () => undefined); // never answers
  const t0 = Date.now();
  expect(await callBusinessEndpoint(input("/slow", { timeoutMs: 300 }))).toEqual({ ok: false, error: "timeout" });
  expect(Date.now() - t0).toBeLessThan(2000);

  handlers.set("/trickle", (_req, _raw, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write("{");
    const iv = setInterval(() => res.write(" "), 100);
    res.on("close", () => clearInterval(iv));
  });
  const t1 = Date.now();
  expect(await callBusinessEndpoint(input("/trickle", { timeoutMs: 400 }))).toEqual({ ok: false, error: "timeout" });
  expect(Date.now() - t1).toBeLessThan(2000);
});

test("non-2xx → http_error with the status", async () => {
  handlers.set("/500", json(500, { error: "boom" }));
  handlers.set("/404", json(404, { error: "no" }));
  expect(await callBusinessEndpoint(input("/500"))).toEqual({ ok: false, error: "http_error", status: 500 });
  expect(await callBusinessEndpoint(input("/404"))).toEqual({ ok: false, error: "http_error", status: 404 });
});

test("anything but a JSON object → invalid_response", async () => {
  handlers.set("/html", (_q, _r, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<html>hi</html>");
  });
  handlers.set("/array", json(200, [1, 2]));
  handlers.set("/scalar", json(200, "42"));
  handlers.set("/null", json(200, "null"));
  handlers.set("/empty", json(200, ""));
  handlers.set("/big", json(200, JSON.stringify({ x: "y".repeat(MAX_RESPONSE_BYTES) })));
  for (const p of ["/html", "/array", "/scalar", "/null", "/empty"]) {
    expect([p, await callBusinessEndpoint(input(p))]).toEqual([p, { ok: false, error: "invalid_response", status: 200 }]);
  }
  // over the 256 KB cap: refused while reading, without a status
  expect(await callBusinessEndpoint(input("/big"))).toEqual({ ok: false, error: "invalid_response" });
  handlers.set("/204", (_q, _r, res) => {
    res.writeHead(204);
    res.end();
  });
  expect(await callBusinessEndpoint(input("/204"))).toEqual({ ok: true, status: 204, data: {} });
});

test("redirects are not followed", async () => {
  handlers.set("/redirect", json(302, "", { location: `${base}/target` }));
  handlers.set("/target", json(200, { reached: true }));
  expect(await callBusinessEndpoint(input("/redirect"))).toEqual({ ok: false, error: "http_error", status: 302 });
  expect(received.map((r) => r.path)).toEqual(["/redirect"]);
});

test("a refused connection → network_error", async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  expect(await callBusinessEndpoint(input("/x", { url: `http://127.0.0.1:${port}/x` }))).toEqual({ ok: false, error: "network_error" });
});

describe("hosts", () => {
  test("only allowed hosts are called", async () => {
    handlers.set("/ok", json(200, {}));
    expect(await callBusinessEndpoint(input("/ok", { allowedHosts: [] }))).toEqual({ ok: false, error: "host_not_allowed" });
    expect(await callBusinessEndpoint(input("/ok", { allowedHosts: ["example.com"] }))).toEqual({ ok: false, error: "host_not_allowed" });
    expect(await callBusinessEndpoint(input("/ok", { url: base.replace("127.0.0.1", "localhost") + "/ok", allowedHosts: ["127.0.0.1"] }))).toEqual({ ok: false, error: "host_not_allowed" });
    expect(received).toHaveLength(0);
  });

  test("http only to loopback; no credentials; no other schemes; no private addresses over https", async () => {
    const no = async (url: string, allowedHosts: string[]) => expect(await callBusinessEndpoint(input("/", { url, allowedHosts }))).toEqual({ ok: false, error: "host_not_allowed" });
    await no("http://api.example.com/x", ["api.example.com"]);
    await no("http://10.0.0.5/x", ["10.0.0.5"]);
    await no("ftp://api.example.com/x", ["api.example.com"]);
    await no("https://user:pw@api.example.com/x", ["api.example.com"]);
    await no(`${base.replace("http://", "http://u:p@")}/ok`, ["127.0.0.1"]);
    await no("https://127.0.0.1/x", ["127.0.0.1"]);
    await no("https://169.254.169.254/latest/meta-data", ["169.254.169.254"]);
    await no("https://[::1]/x", ["::1"]);
    await no("not a url", ["*"]);
    // an allowed name that resolves to a private address is refused at connect time
    await no("https://localhost/x", ["localhost"]);
  });

  test("exact names and *.domain wildcards, never lookalikes", () => {
    const allowed = ["*.example.com", "api.partner.io"];
    expect(hostAllowed("api.example.com", allowed)).toBe(true);
    expect(hostAllowed("a.b.example.com", allowed)).toBe(true);
    expect(hostAllowed("API.Example.COM.", allowed)).toBe(true);
    expect(hostAllowed("api.partner.io", allowed)).toBe(true);
    expect(hostAllowed("example.com", allowed)).toBe(false);
    expect(hostAllowed("evil-example.com", allowed)).toBe(false);
    expect(hostAllowed("api.evil-example.com", allowed)).toBe(false);
    expect(hostAllowed("example.com.evil.net", allowed)).toBe(false);
    expect(hostAllowed("xapi.partner.io", allowed)).toBe(false);
    expect(hostAllowed("api.partner.io.evil.net", allowed)).toBe(false);
    expect(hostAllowed("anything.com", ["*"])).toBe(false);
    expect(hostAllowed("a.com", ["*.com*"])).toBe(false);
  });

  test("a wildcard allows a subdomain over https (fails later, never as host_not_allowed)", async () => {
    // *.invalid never resolves: the host check passes and the call fails as a network error
    const r = await callBusinessEndpoint(input("/", { url: "https://api.wabot-test.invalid/x", allowedHosts: ["*.wabot-test.invalid"] }));
    expect(r).toEqual({ ok: false, error: "network_error" });
    const lookalike = await callBusinessEndpoint(input("/", { url: "https://evil-wabot-test.invalid/x", allowedHosts: ["*.wabot-test.invalid"] }));
    expect(lookalike).toEqual({ ok: false, error: "host_not_allowed" });
  });

  test("non-public address classes", () => {
    for (const a of ["10.1.2.3", "127.0.0.1", "169.254.169.254", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1"]) expect([a, isNonPublicAddress(a)]).toEqual([a, true]);
    for (const a of ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"]) expect([a, isNonPublicAddress(a)]).toEqual([a, false]);
  });
});

test("variables or contact fields carrying secrets are refused before any call", async () => {
  handlers.set("/ok", json(200, {}));
  await expect(callBusinessEndpoint(input("/ok", { body: { contact: {}, variables: { pin: "583920" } } }))).rejects.toThrow(SecretInDataError);
  await expect(callBusinessEndpoint(input("/ok", { body: { contact: {}, variables: { nested: { otpCode: "1" } } } }))).rejects.toThrow(SecretInDataError);
  await expect(callBusinessEndpoint(input("/ok", { body: { contact: { password: "x" }, variables: {} } }))).rejects.toThrow(/password/);
  expect(received).toHaveLength(0);
});

import dns from "node:dns";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { callBusinessEndpoint, isNonPublicAddress, type HttpCallInput } from "../../src/flows/http-call";
import { recordScenario } from "../chaos/report";

/**
 * SSRF (issue 8): a flow's `http` step must not reach loopback, private, link-local or metadata addresses. The rule
 * (docs/flows.md, docs/security.md): the host must be in the tenant's `flows.httpAllowedHosts`; https only, to
 * public addresses only, checked on the resolved address at connect time (so DNS cannot point an allowed name
 * inward, and no rebinding window); plain http only to 127.0.0.1 / localhost / [::1] when the tenant lists that
 * exact host (local development); redirects are never followed. A tenant key can edit its own allow-list, so
 * listing a private address does NOT open it: the worst case below is a tenant that allow-listed the target.
 */
let hits = 0;
let target: Server;
let redirector: Server;
let targetUrl = "";
let redirectUrl = "";

beforeAll(async () => {
  target = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { "content-type": "application/json" }).end('{"internal":"secret"}');
  });
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/admin`;
  redirector = createServer((_req, res) => res.writeHead(302, { location: targetUrl }).end());
  await new Promise<void>((r) => redirector.listen(0, "127.0.0.1", r));
  redirectUrl = `http://localhost:${(redirector.address() as AddressInfo).port}/go`;
});
afterAll(async () => {
  await new Promise<void>((r) => target.close(() => r()));
  await new Promise<void>((r) => redirector.close(() => r()));
});

const call = (url: string, allowedHosts: string[]) =>
  callBusinessEndpoint({
    url, method: "POST", body: { contact: { id: "c" }, variables: {} }, timeoutMs: 2_000, allowedHosts, secret: "s", flow: "f", step: "s", tenantId: "t", now: new Date(),
  } satisfies HttpCallInput);
const hostOf = (url: string) => new URL(url).hostname.replace(/^\[|\]$/g, "");
let tried = 0;
let refused = 0;

describe("flow http steps cannot reach internal addresses, even when the tenant allow-lists them", () => {
  const port = () => (target.address() as AddressInfo).port;
  const cases = () => [
    // loopback over https, in every spelling the URL parser accepts
    `https://127.0.0.1:${port()}/x`, `https://127.1:${port()}/x`, `https://2130706433:${port()}/x`, `https://0x7f000001:${port()}/x`, `https://0177.0.0.1:${port()}/x`,
    `https://[::1]:${port()}/x`, `https://[::ffff:127.0.0.1]:${port()}/x`, `https://[::ffff:7f00:1]:${port()}/x`, `https://[0:0:0:0:0:0:0:1]:${port()}/x`,
    `https://0.0.0.0:${port()}/x`, `https://[::]:${port()}/x`,
    // private, link-local, metadata, CGNAT, unique-local, 6to4 and NAT64 wrappers of them
    "https://10.0.0.1/x", "https://10.255.255.255/x", "https://172.16.0.1/x", "https://172.31.0.1/x", "https://192.168.0.1/x", "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/x", "https://[fd00::1]/x", "https://[fd12:3456::1]/x", "https://[fe80::1]/x", "https://[2002:a00:1::]/x", "https://[64:ff9b::a9fe:a9fe]/x", "https://[::ffff:a9fe:a9fe]/x",
    // plain http to anything but the loopback names, and to metadata
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x", "http://192.168.1.1/x", "http://[fd00::1]/x", "http://metadata.google.internal/computeMetadata/v1/",
  ];

  it("each address is refused although its exact host is in httpAllowedHosts", async () => {
    for (const url of cases()) {
      tried++;
      const r = await call(url, [hostOf(url), "127.0.0.1", "::1", "localhost"]);
      expect([url, r]).toEqual([url, { ok: false, error: "host_not_allowed" }]);
      refused++;
    }
    expect(hits).toBe(0);
  });

  it("names that resolve inward are refused at connect time (localhost, and any name DNS points at a private address)", async () => {
    const real = dns.lookup;
    const spy = jest.spyOn(dns, "lookup").mockImplementation(((host: string, opts: unknown, cb: (...a: unknown[]) => void) => {
      const inward: Record<string, string> = { "rebind.partner.example": "127.0.0.1", "intranet.partner.example": "10.1.2.3", "meta.partner.example": "169.254.169.254", "v6.partner.example": "fd00::5" };
      const a = inward[host];
      if (!a) return (real as unknown as (...x: unknown[]) => void)(host, opts, cb);
      const family = a.includes(":") ? 6 : 4;
      return (opts as { all?: boolean }).all ? cb(null, [{ address: a, family }]) : cb(null, a, family);
    }) as never);
    try {
      for (const host of ["localhost", "rebind.partner.example", "intranet.partner.example", "meta.partner.example", "v6.partner.example"]) {
        tried++;
        const r = await call(`https://${host}:${(target.address() as AddressInfo).port}/x`, [host, "*.partner.example"]);
        expect([host, r]).toEqual([host, { ok: false, error: "host_not_allowed" }]);
        refused++;
      }
    } finally {
      spy.mockRestore();
    }
    expect(hits).toBe(0);
  });

  it("loopback over http only when the tenant lists that exact host; a redirect to loopback is never followed", async () => {
    tried += 3;
    // not listed: refused, never called
    expect(await call(targetUrl, ["*.example.com"])).toEqual({ ok: false, error: "host_not_allowed" });
    expect(await call(targetUrl.replace("127.0.0.1", "localhost"), ["127.0.0.1"])).toEqual({ ok: false, error: "host_not_allowed" });
    refused += 2;
    expect(hits).toBe(0);
    // an allowed (development) host that redirects to another loopback service: the 3xx is an error, the target is not hit
    expect(await call(redirectUrl, ["localhost"])).toEqual({ ok: false, error: "http_error", status: 302 });
    refused++;
    expect(hits).toBe(0);
    // listed exactly: allowed (development setups), and nothing else is
    expect(await call(targetUrl, ["127.0.0.1"])).toMatchObject({ ok: true, status: 200 });
    expect(hits).toBe(1);
  });

  it("address classes, including IPv4 inside IPv6", () => {
    for (const a of ["::ffff:7f00:1", "::7f00:1", "2002:7f00:1::", "2002:a9fe:a9fe::1", "64:ff9b::8.8.8.8", "fec0::1", "2001::1", "::ffff:192.168.0.1", "0:0:0:0:0:0:0:1", "fe80::1%eth0"]) {
      expect([a, isNonPublicAddress(a)]).toEqual([a, true]);
    }
    for (const a of ["2606:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8", "2002:808:808::1", "1.1.1.1"]) expect([a, isNonPublicAddress(a)]).toEqual([a, false]);
    recordScenario({
      id: "A4-ssrf-flow-http",
      title: "SSRF through a flow's http step",
      section: "attacks",
      figures: { targetsTried: tried, refused, internalHits: hits - 1 },
      notes:
        "Loopback (in decimal, hex, octal, short and IPv6-mapped spellings), RFC 1918, link-local and cloud metadata, CGNAT, unique-local, " +
        "6to4/NAT64 wrappers, names resolving inward (checked on the resolved address at connect time) and a redirect to loopback, each with " +
        "its host in the tenant's allow-list: all refused. Only an exactly listed loopback host over http (development) is called.",
    });
  });
});

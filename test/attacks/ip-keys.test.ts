import request from "supertest";
import { canonicalIp, ipLimitKey } from "../../src/shared/ip";
import { startTestSystem, type TestSystem } from "../helpers/system";

/**
 * Per-IP limits keyed on the raw string (issue 15 item 16): `::ffff:203.0.113.7`, upper-case IPv6 and every other
 * address of one /64 each got a fresh allowance. Now one canonicaliser (src/shared/ip.ts, ipaddr.js) maps
 * IPv4-mapped and -translated IPv6 to IPv4, lower-cases and compresses IPv6, and buckets IPv6 by /64, at every
 * per-IP key (code sends, code checks, failed API keys).
 */
describe("ipLimitKey", () => {
  it("one key for every spelling of an address, and for every address of an IPv6 /64", () => {
    const same = (keys: string[]) => expect(new Set(keys.map(ipLimitKey))).toEqual(new Set([ipLimitKey(keys[0]!)]));
    same(["203.0.113.7", "::ffff:203.0.113.7", "::FFFF:203.0.113.7", "::ffff:cb00:7107", "[::ffff:cb00:7107]", "0:0:0:0:0:ffff:cb00:7107", "::ffff:0:203.0.113.7", " 203.0.113.7 "]);
    same(["2001:db8:1:2::1", "2001:DB8:1:2::1", "2001:0db8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::abcd%eth0", "[2001:db8:1:2::9]"]);
    expect(ipLimitKey("203.0.113.7")).toBe("203.0.113.7");
    expect(ipLimitKey("2001:DB8:1:2::1")).toBe("2001:db8:1:2::/64");
    expect(ipLimitKey("2001:db8:1:3::1")).not.toBe(ipLimitKey("2001:db8:1:2::1"));
    expect(ipLimitKey("203.0.113.8")).not.toBe(ipLimitKey("203.0.113.7"));
    // not an address: one shared key, never a fresh allowance per garbage string
    expect(new Set(["", "unknown", "127.1", "not-an-ip", "999.1.1.1", null, undefined].map(ipLimitKey))).toEqual(new Set(["invalid"]));
    expect(canonicalIp("2001:0DB8::0001")).toBe("2001:db8::1");
    expect(canonicalIp("::ffff:10.0.0.1")).toBe("10.0.0.1");
  });
});

describe("the Verify API's per-IP limits count every spelling and every address of a /64 together", () => {
  let sys: TestSystem;
  const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
  let auth: { Authorization: string };

  beforeAll(async () => {
    sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" } });
    // 2 code requests per IP per hour (so 20 checks per IP per hour)
    const t = await request(sys.http.url).post("/admin/tenants").set(root()).send({
      phoneNumberId: "6" + String(Date.now()).slice(-9), displayPhoneNumber: "+1 555 000 6001", accessToken: "EAAG-ip-keys-tenant",
      settings: { limits: { ipPerHour: 2 } },
    });
    expect(t.status).toBe(201);
    const key = await request(sys.http.url).post(`/admin/tenants/${t.body.id}/api-keys`).set(root()).send({ scopes: ["verify"] });
    auth = { Authorization: `Bearer ${key.body.key as string}` };
  });
  afterAll(async () => {
    await sys.close();
  });

  const create = (to: string, clientIp: string) => request(sys.http.url).post("/v1/verifications").set(auth).send({ to, channel: "whatsapp", clientIp });

  it("IPv4 and its IPv4-mapped IPv6 spellings share one allowance", async () => {
    const statuses: number[] = [];
    for (const [to, ip] of [["+13125550111", "203.0.113.7"], ["+13135550112", "::ffff:203.0.113.7"], ["+13145550113", "::FFFF:CB00:7107"]] as const) statuses.push((await create(to, ip)).status);
    expect(statuses).toEqual([201, 201, 429]);
  });

  it("addresses of one IPv6 /64 share one allowance; another /64 has its own", async () => {
    const statuses: number[] = [];
    for (const [to, ip] of [["+13155550121", "2001:db8:1:2::1"], ["+13165550122", "2001:DB8:1:2::abcd"], ["+13175550123", "2001:db8:1:2:ffff:ffff:ffff:ffff"]] as const) {
      statuses.push((await create(to, ip)).status);
    }
    expect(statuses).toEqual([201, 201, 429]);
    expect((await create("+13185550124", "2001:db8:1:3::1")).status).toBe(201);
  });

  it("code checks: 20 per IP per hour, whatever the spelling", async () => {
    const spellings = ["198.51.100.9", "::ffff:198.51.100.9", "::ffff:c633:6409", "::FFFF:0:198.51.100.9"];
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) {
      const r = await request(sys.http.url).post("/v1/verifications/check").set(auth).send({ to: `+1419555${String(2000 + i)}`, code: "123456", clientIp: spellings[i % spellings.length] });
      statuses.push(r.status);
    }
    expect(statuses.slice(0, 20).every((s) => s === 404)).toBe(true);
    expect(statuses[20]).toBe(429);
  });
});

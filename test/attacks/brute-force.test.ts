import pg from "pg";
import request from "supertest";
import { Limits } from "../../src/otp/limits";
import { Keyring } from "../../src/shared/crypto";
import { recordScenario } from "../chaos/report";
import { startTestSystem, type TestSystem } from "../helpers/system";

/**
 * Brute force and enumeration (issue 8): code guessing across many verifications and numbers is stopped by the
 * limits; API-key guessing is throttled per client IP; the answers do not say which numbers are known, and the
 * check and the key check do the same work either way: the same SQL statements, the same keyed-hash computations,
 * the same Redis limit calls (counted with spies, not timed).
 */
let sys: TestSystem;
const api = () => request(sys.http.url);
const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });

beforeAll(async () => {
  // no workers: nothing runs in the background, so every statement counted is the request's own
  sys = await startTestSystem({ workers: false });
}, 60_000);
afterAll(async () => {
  await sys?.close();
}, 60_000);

interface Work {
  sql: string[];
  hashes: string[];
  limits: string[];
}

/** Runs `fn` and records the work it caused: SQL statement texts, Keyring hash calls, limit calls (with their kind). */
async function measure<T>(fn: () => Promise<T>): Promise<{ result: T; work: Work }> {
  const work: Work = { sql: [], hashes: [], limits: [] };
  const q = jest.spyOn(pg.Client.prototype, "query").mockImplementation(function (this: pg.Client, ...args: unknown[]) {
    const first = args[0] as string | { text?: string; name?: string };
    work.sql.push(typeof first === "string" ? first : (first?.text ?? first?.name ?? "?"));
    return originalQuery.apply(this, args as never);
  } as never);
  const spies = (["verifyHash", "hmac", "keyedHash", "hashCandidates"] as const).map((m) => {
    const orig = Keyring.prototype[m] as (...a: unknown[]) => unknown;
    return jest.spyOn(Keyring.prototype, m).mockImplementation(function (this: Keyring, ...a: unknown[]) {
      work.hashes.push(`${m}:${String(a[0])}`);
      return orig.apply(this, a);
    } as never);
  });
  const limitSpies = (["consume", "remaining"] as const).map((m) => {
    const orig = Limits.prototype[m] as (...a: unknown[]) => unknown;
    return jest.spyOn(Limits.prototype, m).mockImplementation(function (this: Limits, ...a: unknown[]) {
      work.limits.push(`${m}:${String(a[0])}`);
      return orig.apply(this, a);
    } as never);
  });
  try {
    return { result: await fn(), work };
  } finally {
    q.mockRestore();
    for (const s of [...spies, ...limitSpies]) s.mockRestore();
  }
}
const originalQuery = pg.Client.prototype.query;
/** statements without their literal values (ids, numbers differ between the two calls; the statements must not) */
const shape = (sql: string[]) => sql.map((s) => s.replace(/\s+/g, " ").trim());

describe("the check does the same work for a known and an unknown number", () => {
  it("unknown number vs known number without a pending code: same statements, hashes, limit calls and answer", async () => {
    // a known number: a contact with a verification that has ended
    const created = await api().post("/v1/verifications").set(root()).send({ to: "+14155550161" });
    expect(created.status).toBe(201);
    expect((await api().post(`/v1/verifications/${created.body.id}/cancel`).set(root())).status).toBe(200);
    const body = (to: string) => ({ to, code: "123456", clientIp: "198.51.100.7" });
    // warm both paths once (prepared statements, caches), then measure
    await api().post("/v1/verifications/check").set(root()).send(body("+14155550162"));
    await api().post("/v1/verifications/check").set(root()).send(body("+14155550161"));
    const unknown = await measure(() => api().post("/v1/verifications/check").set(root()).send(body("+14155550163")));
    const known = await measure(() => api().post("/v1/verifications/check").set(root()).send(body("+14155550161")));
    expect(unknown.result.status).toBe(404);
    expect(known.result.status).toBe(404);
    expect(known.result.body).toEqual(unknown.result.body);
    expect(shape(known.work.sql)).toEqual(shape(unknown.work.sql));
    expect(known.work.hashes).toEqual(unknown.work.hashes);
    expect(known.work.hashes).toContain("verifyHash:otp-hash"); // the code is hashed even when nothing was found
    expect(known.work.limits).toEqual(unknown.work.limits);
    expect(known.work.limits).toEqual(expect.arrayContaining(["consume:checks_tenant", "consume:ip", "consume:checks_number"]));
  });

  it("unknown number vs a pending code with a wrong guess: the same reads, hashing and limits before the verdict", async () => {
    expect((await api().post("/v1/verifications").set(root()).send({ to: "+14155550164" })).status).toBe(201);
    const body = (to: string) => ({ to, code: "000001", clientIp: "198.51.100.8" });
    const unknown = await measure(() => api().post("/v1/verifications/check").set(root()).send(body("+14155550165")));
    const known = await measure(() => api().post("/v1/verifications/check").set(root()).send(body("+14155550164")));
    expect(unknown.result.status).toBe(404);
    expect(known.result.status).toBe(200);
    expect(known.result.body).toMatchObject({ valid: false, status: "pending" });
    expect(known.work.hashes).toEqual(unknown.work.hashes);
    expect(known.work.limits).toEqual(unknown.work.limits);
    // the reads before the verdict are the same statements; the known one then records the attempt (its answer
    // differs anyway: 200 with attemptsRemaining, as the API documents)
    const reads = shape(unknown.work.sql);
    expect(shape(known.work.sql).slice(0, reads.length)).toEqual(reads);
  });
});

describe("the key check does the same work for a known prefix and an unknown key", () => {
  it("known prefix with a wrong secret, unknown prefix, malformed key: same statements, hashes and limit calls", async () => {
    const k = await api().post(`/admin/tenants/${sys.tenantId}/api-keys`).set(root()).send({ scopes: ["verify"] });
    expect(k.status).toBe(201);
    const prefix = k.body.prefix as string;
    const wrongSecret = `wbk_${prefix}_${"A".repeat(43)}`;
    const unknownKey = `wbk_${"0123456789abcdef"}_${"A".repeat(43)}`;
    const get = (key: string, ip: string) => api().get("/v1/verifications/00000000-0000-4000-8000-000000000000").set({ Authorization: `Bearer ${key}`, "X-Forwarded-For": ip });
    await get(unknownKey, "198.51.100.20"); // warm
    const a = await measure(() => get(wrongSecret, "198.51.100.21"));
    const b = await measure(() => get(unknownKey, "198.51.100.22"));
    const c = await measure(() => get("not-a-key-at-all", "198.51.100.23"));
    for (const r of [a, b, c]) {
      expect(r.result.status).toBe(401);
      expect(r.result.body).toEqual(a.result.body);
    }
    expect(shape(a.work.sql)).toEqual(shape(b.work.sql));
    expect(shape(a.work.sql)).toEqual(shape(c.work.sql));
    expect(a.work.hashes).toEqual(b.work.hashes);
    expect(a.work.hashes).toEqual(c.work.hashes);
    expect(a.work.hashes).toContain("verifyHash:api-key");
    expect(a.work.limits).toEqual(b.work.limits);
    expect(a.work.limits).toEqual(c.work.limits);
  });
});

describe("brute force is stopped by the limits", () => {
  it("guessing codes across many verifications and numbers from one client IP", async () => {
    // small limits so the test is quick: 4 code requests per IP per hour → 40 checks per IP per hour; 6 checks per number per 10 minutes
    const t = await api().post("/admin/tenants").set(root()).send({
      phoneNumberId: "5" + String(Date.now()).slice(-9), displayPhoneNumber: "+1 555 000 5001", accessToken: "EAAG-brute-tenant",
      settings: { limits: { ipPerHour: 4, checksPerNumberPer10Minutes: 6 } },
    });
    expect(t.status).toBe(201);
    const key = (await api().post(`/admin/tenants/${t.body.id}/api-keys`).set(root()).send({ scopes: ["verify"] })).body.key as string;
    const auth = { Authorization: `Bearer ${key}` };
    const numbers = Array.from({ length: 12 }, (_, i) => `+1415555${String(1000 + i).padStart(4, "0")}`);
    for (const to of numbers) expect((await api().post("/v1/verifications").set(auth).send({ to })).status).toBe(201);

    // an attacker behind the business's sign-in page: 8 guesses per number from one IP
    const outcomes: number[] = [];
    for (const to of numbers) {
      for (let g = 0; g < 8; g++) {
        const r = await api().post("/v1/verifications/check").set(auth).send({ to, code: String(100000 + g), clientIp: "203.0.113.66" });
        outcomes.push(r.status);
      }
    }
    const tried = outcomes.length;
    const reachedCode = outcomes.filter((s) => s === 200).length; // guesses actually compared with a live code
    const blocked = outcomes.filter((s) => s === 429).length;
    // per IP: at most 40 checks an hour; per verification: 5 wrong codes, then it is locked (404)
    expect(outcomes.filter((s) => s !== 429).length).toBeLessThanOrEqual(40);
    expect(reachedCode).toBeLessThanOrEqual(40);
    expect(blocked).toBeGreaterThanOrEqual(tried - 40);

    // the same numbers from many IPs (a botnet): the per-number limit (6 per 10 minutes) holds whatever the IP,
    // across verifications, and a locked verification takes no more guesses
    const perNumber: number[] = [];
    const to = numbers[11]!;
    for (let g = 0; g < 12; g++) {
      const r = await api().post("/v1/verifications/check").set(auth).send({ to, code: String(200000 + g), clientIp: `192.0.2.${g + 1}` });
      perNumber.push(r.status);
    }
    expect(perNumber.filter((s) => s === 200).length).toBeLessThanOrEqual(5);
    expect(perNumber.slice(6).every((s) => s === 429)).toBe(true);
    const row = await sys.core.prisma.verification.findFirstOrThrow({ where: { to, tenantId: t.body.id } });
    expect(row.attempts).toBeLessThanOrEqual(5);

    // probability of success of this whole attack: at most (guesses that reached a code) / 10^6
    recordScenario({
      id: "A2-brute-force-codes",
      title: "Code guessing across many verifications, numbers and IPs",
      section: "attacks",
      figures: {
        guessesTried: tried + perNumber.length,
        guessesComparedWithACode: reachedCode + perNumber.filter((s) => s === 200).length,
        guessesBlocked429: blocked + perNumber.filter((s) => s === 429).length,
        verifications: numbers.length,
        codesGuessed: 0,
      },
      notes:
        "12 pending verifications; 8 guesses each from one client IP, then 12 guesses at one number from 12 IPs. The per-IP check limit " +
        "(10 × limits.ipPerHour), the per-number check limit (across verifications, found or not) and the 5-attempt lock stop it: at most " +
        "a few dozen of the guesses are ever compared with a live code.",
    });
  });

  it("API-key guessing is throttled per client IP and key prefix; a right key from that IP still works", async () => {
    const ip = "203.0.113.99";
    const statuses: number[] = [];
    for (let i = 0; i < 34; i++) {
      const r = await api().get("/admin/tenants").set({ Authorization: `Bearer wbk_${"0123456789abcdef"}_${String(i).padStart(43, "x")}`, "X-Forwarded-For": ip });
      statuses.push(r.status);
      if (r.status === 429) expect(r.headers["retry-after"]).toMatch(/^\d+$/);
    }
    expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(30).every((s) => s === 429)).toBe(true);
    // a key that authenticates is never refused (many tenants may share one proxy address); other IPs are not affected
    expect((await api().get("/admin/tenants").set({ ...root(), "X-Forwarded-For": ip })).status).toBe(200);
    expect((await api().get("/admin/tenants").set({ ...root(), "X-Forwarded-For": "203.0.113.100" })).status).toBe(200);
    // another prefix from that IP has its own window; a wrong key with the flooded prefix from another IP too
    expect((await api().get("/admin/tenants").set({ Authorization: `Bearer wbk_${"fedcba9876543210"}_${"y".repeat(43)}`, "X-Forwarded-For": ip })).status).toBe(401);
    expect((await api().get("/admin/tenants").set({ Authorization: `Bearer wbk_${"0123456789abcdef"}_${"y".repeat(43)}`, "X-Forwarded-For": "203.0.113.100" })).status).toBe(401);
    recordScenario({
      id: "A3-brute-force-api-keys",
      title: "API-key guessing from one IP",
      section: "attacks",
      figures: { guesses: statuses.length, answered401: statuses.filter((s) => s === 401).length, throttled429: statuses.filter((s) => s === 429).length },
      notes: "30 wrong keys a minute per (client IP, key prefix) and 300 per client IP, then 429 with Retry-After for wrong keys from that IP only; a key that authenticates is never refused; a wrong key costs the same work whether its prefix exists or not.",
    });
  });
});

import { spawn } from "node:child_process";
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import path from "node:path";
import request from "supertest";
import { DEMO_DEFAULTS } from "../../src/config/demo-defaults";
import { loadConfig } from "../../src/config/env";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";
import { startTestSystem, type TestSystem } from "../helpers/system";

/**
 * Console sessions and key checks (issue 15, item 6): a console session is bound to the key that opened it (a
 * rotated ADMIN_API_KEY, a revoked tenant key end it at once, bull-board included); wrong keys from one address
 * never lock out a key that authenticates from that address; the session cookie is Secure in production whatever the
 * proxy set-up; `npm run demo` listens on loopback only.
 */

/** Signs in through the form; the session cookie (name=value) the answer set. */
async function signIn(base: string, key: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(base).post("/console/login").set(headers).type("form").send({ key });
  expect(res.status).toBe(303);
  const cookie = (res.headers["set-cookie"] as unknown as string[] | undefined)?.find((c) => c.startsWith("wabot_console="));
  expect(cookie).toBeDefined();
  return cookie!.split(";")[0]!;
}

/** What a console cookie opens: the session API and the queue dashboard (bull-board). */
async function opens(base: string, cookie: string): Promise<{ session: number; board: number }> {
  const session = await request(base).get("/console/api/session").set("Cookie", cookie);
  const board = await request(base).get("/console/queues/api/queues").set("Cookie", cookie);
  return { session: session.status, board: board.status };
}

describe("a console session opened with ADMIN_API_KEY ends when the deployment runs with another key", () => {
  it("survives a restart with the same key; is refused (console and bull-board) after a restart with a new key", async () => {
    const db = await createTestDatabase();
    const first = testConfig({ DATABASE_URL: db.url });
    // what stays across the restarts: database, Redis prefix, secrets key, business number
    const same = {
      QUEUE_PREFIX: first.QUEUE_PREFIX,
      SECRETS_KEY: first.SECRETS_KEY,
      WHATSAPP_PHONE_NUMBER_ID: first.WHATSAPP_PHONE_NUMBER_ID,
      WHATSAPP_APP_SECRET: first.WHATSAPP_APP_SECRET,
      WHATSAPP_ACCESS_TOKEN: first.WHATSAPP_ACCESS_TOKEN,
    };
    const run = (adminKey: string) => startTestSystem({ workers: false, database: db, keepDatabase: true, env: { ...same, ADMIN_API_KEY: adminKey } });
    const oldKey = first.ADMIN_API_KEY;
    const newKey = "rotated-admin-key-" + "n".repeat(20);
    let sys: TestSystem | null = await run(oldKey);
    try {
      const cookie = await signIn(sys.http.url, oldKey);
      expect(await opens(sys.http.url, cookie)).toEqual({ session: 200, board: 200 });
      await sys.close();
      sys = null;

      sys = await run(oldKey); // a plain restart: the session goes on
      expect(await opens(sys.http.url, cookie)).toEqual({ session: 200, board: 200 });
      await sys.close();
      sys = null;

      sys = await run(newKey); // ADMIN_API_KEY rotated: the old key's session is over
      expect(await opens(sys.http.url, cookie)).toEqual({ session: 401, board: 401 });
      expect((await request(sys.http.url).get("/console/queues/").set("Cookie", cookie)).status).toBe(303);
      // and stays over (it was deleted, not only refused once)
      expect((await request(sys.http.url).get("/console/api/session").set("Cookie", cookie)).status).toBe(401);
      // the new key signs in
      const fresh = await signIn(sys.http.url, newKey);
      expect(await opens(sys.http.url, fresh)).toEqual({ session: 200, board: 200 });
    } finally {
      await sys?.close();
      await db.drop();
    }
  }, 90_000);
});

describe("console sessions of tenant keys, wrong-key throttling, the cookie", () => {
  let sys: TestSystem;
  const root = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
  beforeAll(async () => {
    sys = await startTestSystem({ workers: false });
  }, 60_000);
  afterAll(async () => {
    await sys?.close();
  }, 60_000);

  const newKey = async (scopes: string[]) => {
    const k = await request(sys.http.url).post(`/admin/tenants/${sys.tenantId}/api-keys`).set(root()).send({ scopes });
    expect(k.status).toBe(201);
    return k.body as { id: string; key: string };
  };

  it("a tenant key's session is refused at once when the key is revoked (through the API or in the database)", async () => {
    const viaApi = await newKey(["read"]);
    const cookie = await signIn(sys.http.url, viaApi.key);
    expect((await opens(sys.http.url, cookie)).session).toBe(200);
    expect((await request(sys.http.url).delete(`/admin/api-keys/${viaApi.id}`).set(root())).status).toBe(200);
    expect((await opens(sys.http.url, cookie)).session).toBe(401);

    // revoked by another process (here: straight in the database): no cache keeps the session alive
    const viaDb = await newKey(["admin"]);
    const cookie2 = await signIn(sys.http.url, viaDb.key);
    expect((await opens(sys.http.url, cookie2)).session).toBe(200);
    await sys.core.prisma.apiKey.update({ where: { id: viaDb.id }, data: { revokedAt: new Date() } });
    expect((await opens(sys.http.url, cookie2)).session).toBe(401);
  });

  it("a flood of wrong keys from one proxy address never refuses a key that authenticates from that address", async () => {
    const proxy = { "X-Forwarded-For": "198.51.100.77" };
    const tenant = await newKey(["admin", "verify"]);
    const prefix = /^wbk_([a-f0-9]{16})_/.exec(tenant.key)![1]!;
    // 40 of each kind: the admin key's form (no prefix), random prefixes, and the tenant key's own prefix
    const wrong = [
      ...Array.from({ length: 40 }, (_, i) => `guess-admin-key-${i}-${"z".repeat(16)}`),
      ...Array.from({ length: 40 }, (_, i) => `wbk_${i.toString(16).padStart(16, "a")}_${"x".repeat(43)}`),
      ...Array.from({ length: 40 }, (_, i) => `wbk_${prefix}_${String(i).padStart(43, "w")}`),
    ];
    const statuses: number[] = [];
    for (const key of wrong) statuses.push((await request(sys.http.url).get("/admin/tenants").set({ ...proxy, Authorization: `Bearer ${key}` })).status);
    // each flooded bucket answers 429 past its 30; the random prefixes each stay under theirs
    expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(30, 40).every((s) => s === 429)).toBe(true);
    expect(statuses.slice(40, 80).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(110, 120).every((s) => s === 429)).toBe(true);

    // from that same address: the tenant key (its own prefix flooded), the ADMIN_API_KEY, and the console sign-in
    expect((await request(sys.http.url).get("/admin/tenants").set({ ...proxy, Authorization: `Bearer ${tenant.key}` })).status).toBe(200);
    expect((await request(sys.http.url).get("/admin/tenants").set({ ...proxy, ...root() })).status).toBe(200);
    expect((await request(sys.http.url).get("/v1/verifications/00000000-0000-4000-8000-000000000000").set({ ...proxy, Authorization: `Bearer ${tenant.key}` })).status).toBe(404);
    await signIn(sys.http.url, tenant.key, proxy);
    await signIn(sys.http.url, sys.config.ADMIN_API_KEY, proxy);
    const refused = await request(sys.http.url).post("/console/login").set(proxy).type("form").send({ key: "guess-admin-key-x-" + "z".repeat(16) });
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toMatch(/^\d+$/);
  }, 60_000);

  it("the address-wide ceiling: 300 wrong keys with fresh prefixes, then every wrong key is 429 (a right one still passes)", async () => {
    const proxy = { "X-Forwarded-For": "198.51.100.78" };
    const statuses: number[] = [];
    for (let i = 0; i < 302; i++) {
      statuses.push((await request(sys.http.url).get("/admin/tenants").set({ ...proxy, Authorization: `Bearer wbk_${i.toString(16).padStart(16, "b")}_${"x".repeat(43)}` })).status);
    }
    expect(statuses.slice(0, 300).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(300)).toEqual([429, 429]);
    expect((await request(sys.http.url).get("/admin/tenants").set({ ...proxy, ...root() })).status).toBe(200);
    // another address is not affected
    expect((await request(sys.http.url).get("/admin/tenants").set({ "X-Forwarded-For": "198.51.100.79", Authorization: `Bearer wbk_${"c".repeat(16)}_${"x".repeat(43)}` })).status).toBe(401);
  }, 120_000);

  it("guesses at ADMIN_API_KEY through /metrics are throttled like the APIs' (the right key still scrapes)", async () => {
    const proxy = { "X-Forwarded-For": "198.51.100.80" };
    const statuses: number[] = [];
    for (let i = 0; i < 32; i++) statuses.push((await request(sys.http.url).get("/metrics").set({ ...proxy, Authorization: `Bearer guess-${i}-${"m".repeat(16)}` })).status);
    expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(30)).toEqual([429, 429]);
    // the same window as the Bearer APIs: an admin-key-shaped guess there is 429 too
    expect((await request(sys.http.url).get("/admin/tenants").set({ ...proxy, Authorization: `Bearer guess-x-${"m".repeat(16)}` })).status).toBe(429);
    expect((await request(sys.http.url).get("/metrics").set({ ...proxy, ...root() })).status).toBe(200);
  });

  it("wrong keys are counted per IPv6 /64 and per canonical address, whatever the spelling", async () => {
    const key = `wbk_${"d".repeat(16)}_${"x".repeat(43)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 31; i++) {
      // 31 addresses of one /64, spelled in several ways
      const ip = i % 2 ? `2001:db8:7:7::${(i + 1).toString(16)}` : `2001:0DB8:0007:0007:0:0:${i.toString(16)}:1`;
      statuses.push((await request(sys.http.url).get("/admin/tenants").set({ "X-Forwarded-For": ip, Authorization: `Bearer ${key}` })).status);
    }
    expect(statuses.slice(0, 30).every((s) => s === 401)).toBe(true);
    expect(statuses[30]).toBe(429);
    // another /64 is another client
    expect((await request(sys.http.url).get("/admin/tenants").set({ "X-Forwarded-For": "2001:db8:7:8::1", Authorization: `Bearer ${key}` })).status).toBe(401);
  });

  it("the session cookie is HttpOnly, SameSite=Strict; Secure behind a trusted https proxy", async () => {
    const plain = (await request(sys.http.url).post("/console/login").type("form").send({ key: sys.config.ADMIN_API_KEY })).headers["set-cookie"] as unknown as string[];
    expect(plain[0]).toMatch(/HttpOnly/);
    expect(plain[0]).toMatch(/SameSite=Strict/);
    expect(plain[0]).not.toMatch(/Secure/); // NODE_ENV=test over plain http: not Secure (the browser tests need it)
    const proxied = (await request(sys.http.url).post("/console/login").set("X-Forwarded-Proto", "https").type("form").send({ key: sys.config.ADMIN_API_KEY })).headers["set-cookie"] as unknown as string[];
    expect(proxied[0]).toMatch(/; Secure/);
  });
});

describe("in production the console cookie is always Secure", () => {
  it("a sign-in over plain http (the proxy in front not trusted to say https) still gets a Secure cookie", async () => {
    const sys = await startTestSystem({ workers: false, env: { NODE_ENV: "production" } });
    try {
      const res = await request(sys.http.url).post("/console/login").type("form").send({ key: sys.config.ADMIN_API_KEY });
      expect(res.status).toBe(303);
      const cookie = (res.headers["set-cookie"] as unknown as string[])[0]!;
      expect(cookie).toMatch(/^wabot_console=/);
      expect(cookie).toMatch(/; Secure/);
      expect(cookie).toMatch(/HttpOnly/);
    } finally {
      await sys.close();
    }
  }, 60_000);
});

describe("npm run demo listens on loopback unless HOST says otherwise", () => {
  it("the demo's defaults bind 127.0.0.1; production has no default (every interface) until HOST is set", () => {
    expect(loadConfig({}, DEMO_DEFAULTS).HOST).toBe("127.0.0.1");
    expect(loadConfig({ HOST: "0.0.0.0" }, DEMO_DEFAULTS).HOST).toBe("0.0.0.0");
    const prod = testConfig();
    expect(prod.HOST).toBeUndefined();
    expect(() => testConfig({ HOST: "0.0.0.0; rm -rf /" })).toThrow(/HOST/);
  });

  it("the demo process answers on 127.0.0.1 and not on the machine's other addresses", async () => {
    const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal)?.address;
    const db = await createTestDatabase();
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const cfg = testConfig();
    const child = spawn(process.execPath, ["--import", "tsx", path.join(__dirname, "..", "..", "src", "main", "demo.ts")], {
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATABASE_URL: db.url, PORT: String(port), QUEUE_PREFIX: cfg.QUEUE_PREFIX, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const get = (host: string) =>
      new Promise<number | string>((resolve) => {
        const r = httpRequest({ host, port, path: "/healthz", timeout: 2000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        r.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
        r.on("timeout", () => r.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
        r.end();
      });
    try {
      const until = Date.now() + 60_000;
      while (!out.includes("Console:") && Date.now() < until && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain("Console:");
      expect(await get("127.0.0.1")).toBe(200);
      if (external) expect(await get(external)).toBe("ECONNREFUSED");
      expect(out).toContain(`Listening on 127.0.0.1:${port} (this machine only`);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
      await db.drop();
    }
  }, 90_000);
});

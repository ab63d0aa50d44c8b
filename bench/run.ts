/**
 * `npm run bench`: the benchmarks, on loopback only, bounded in time. Prints a table and writes
 * bench/results/<timestamp>.json with the configuration each ran with.
 *
 *  1. ingest      signed webhooks/s at 64 connections and time to 200 (API only, workers paused)
 *  2. reply       a customer's text → the bot's reply arriving at the sandbox, at a steady rate
 *  3. otp-cycle   create → template through the sandbox → status webhooks → check, every protection on
 *
 * Everything runs in this one process (load generator, bot, sandbox) on the machine's two cores, with the
 * production configuration: signatures checked, jobs encrypted and durable, audit and limits on.
 * BENCH_SECONDS (default 8) sets each phase's length.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { Client } from "pg";
import { loadConfig, type Config } from "../src/config/env";
import { migrateDeploy } from "../src/db/migrate";
import { signBody } from "../src/ingest/verify-signature";
import { spawn } from "node:child_process";
import IORedis from "ioredis";
import { normalizeNumber } from "../src/otp/phone";
import { createSandbox } from "../src/sandbox/sandbox";
import type { Sandbox } from "../src/sandbox/types";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const ADMIN_URL = process.env.BENCH_ADMIN_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

interface Stats { count: number; p50: number; p90: number; p99: number; max: number }
const stats = (xs: number[]): Stats => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]! : NaN);
  return { count: s.length, p50: round(q(0.5)), p90: round(q(0.9)), p99: round(q(0.99)), max: round(s[s.length - 1] ?? NaN) };
};
const round = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freshDatabase(): Promise<string> {
  const name = "wabot_bench";
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  migrateDeploy(u.toString());
  return u.toString();
}

interface System { config: Config; url: string; sandbox: Sandbox; close(): Promise<void> }

/**
 * The bot runs as its own process (`src/main/all.ts`, or `api.ts` for intake only), as in production; the sandbox
 * (standing in for Meta) and the load generator run in this process.
 */
async function startSystem(databaseUrl: string, workers: boolean, extraEnv: Record<string, string> = {}): Promise<System> {
  const env: Record<string, string> = {
    NODE_ENV: "production",
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    PORT: String(20000 + Math.floor(Math.random() * 20000)),
    WHATSAPP_APP_SECRET: randomBytes(16).toString("hex"),
    WHATSAPP_VERIFY_TOKEN: "bench",
    WHATSAPP_PHONE_NUMBER_ID: "106540352242922",
    WHATSAPP_DISPLAY_PHONE_NUMBER: "15550783881",
    WHATSAPP_ACCESS_TOKEN: "EAAG" + randomBytes(20).toString("hex"),
    ADMIN_API_KEY: "bench-admin-" + randomBytes(12).toString("hex"),
    SECRETS_KEY: randomBytes(32).toString("base64"),
    LOG_LEVEL: "warn",
    QUEUE_PREFIX: "bench" + randomBytes(3).toString("hex"),
    OUTBOUND_RATE_PER_SECOND: "1000",
    OUTBOUND_RECIPIENT_GAP_MS: "250",
    ...extraEnv,
  };
  const sandbox = createSandbox({
    appSecret: env.WHATSAPP_APP_SECRET!,
    phoneNumbers: [{ phoneNumberId: env.WHATSAPP_PHONE_NUMBER_ID!, displayPhoneNumber: env.WHATSAPP_DISPLAY_PHONE_NUMBER!, accessToken: env.WHATSAPP_ACCESS_TOKEN! }],
    statusDelaysMs: { sent: 5, delivered: 10, read: 1_000_000 },
    autoRead: false,
  });
  const sb = await sandbox.listen(0, "127.0.0.1");
  env.GRAPH_API_BASE_URL = sb.url;
  const config = loadConfig(env);
  const url = `http://127.0.0.1:${config.PORT}`;
  const child = spawn(process.execPath, ["--import", "tsx", join(__dirname, "..", "src", "main", workers ? "all.ts" : "api.ts")], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > until || child.exitCode !== null) throw new Error("the bot did not start");
    await sleep(100);
  }
  sandbox.setWebhookUrl(`${url}/webhook`);
  // production limits, sized for the load: the tenant-wide windows are settings, and the bench raises them
  const tenants = (await (await fetch(`${url}/admin/tenants`, { headers: { authorization: `Bearer ${config.ADMIN_API_KEY}` } })).json()) as { tenants: { id: string }[] };
  const patch = await fetch(`${url}/admin/tenants/${tenants.tenants[0]!.id}/settings`, {
    method: "PATCH",
    headers: { authorization: `Bearer ${config.ADMIN_API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ limits: { tenantPerMinute: 1_000_000, checksPerTenantPerMinute: 1_000_000 } }),
  });
  if (patch.status !== 200) throw new Error(`settings: ${patch.status}`);
  return {
    config, url, sandbox,
    async close() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      await sandbox.close();
      await sb.close();
      const redis = new IORedis(REDIS_URL);
      const keys = await redis.keys(`${config.QUEUE_PREFIX}:*`);
      for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
      await redis.quit();
    },
  };
}

/** Runs `fire` from `connections` concurrent loops for `seconds`; returns latencies (ms) and the count. */
async function closedLoop(connections: number, seconds: number, fire: (i: number) => Promise<void>): Promise<{ latencies: number[]; elapsed: number; errors: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let n = 0;
  const until = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) {
        const t0 = performance.now();
        try {
          await fire(n++);
          latencies.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  return { latencies, elapsed: (performance.now() - start) / 1000, errors };
}

function textEnvelope(phoneNumberId: string, from: string, body: string) {
  return {
    object: "whatsapp_business_account",
    entry: [{ id: "1", changes: [{ field: "messages", value: {
      messaging_product: "whatsapp",
      metadata: { display_phone_number: "15550783881", phone_number_id: phoneNumberId },
      contacts: [{ profile: { name: "Bench" }, wa_id: from }],
      messages: [{ from, id: `wamid.${randomBytes(24).toString("base64url")}`, timestamp: String(Math.floor(Date.now() / 1000)), type: "text", text: { body } }],
    } }] }],
  };
}

async function benchIngest(databaseUrl: string) {
  const sys = await startSystem(databaseUrl, false);
  try {
    const url = `${sys.url}/webhook`;
    const r = await closedLoop(64, SECONDS, async (i) => {
      const raw = JSON.stringify(textEnvelope(sys.config.WHATSAPP_PHONE_NUMBER_ID, `1415555${String(1000 + (i % 9000))}`, `hello ${i}`));
      const res = await fetch(url, { method: "POST", body: raw, headers: { "content-type": "application/json", "x-hub-signature-256": signBody(raw, sys.config.WHATSAPP_APP_SECRET) } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(String(res.status));
    });
    return { name: "ingest", connections: 64, perSecond: round(r.latencies.length / r.elapsed), errors: r.errors, latencyMs: stats(r.latencies), workers: "none (intake only)" };
  } finally {
    await sys.close();
  }
}

async function benchReply(databaseUrl: string, rate: number) {
  const sys = await startSystem(databaseUrl, true);
  try {
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    sys.sandbox.events.on("message", (m: { direction: string; customer?: string }) => {
      if (m.direction !== "outbound" || !m.customer) return;
      const t0 = sent.get(m.customer);
      if (t0 !== undefined) {
        latencies.push(performance.now() - t0);
        sent.delete(m.customer);
      }
    });
    const total = rate * SECONDS;
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const from = `34600${String(100000 + i)}`; // a new contact each time: Meta's pair rate allows 1 msg / 6 s per user
      sent.set(from, performance.now());
      void sys.sandbox.injectInbound({ from, text: "hi" });
    }
    const deadline = performance.now() + 15_000;
    while (sent.size > 0 && performance.now() < deadline) await sleep(50);
    return { name: "reply", ratePerSecond: rate, messages: total, answered: latencies.length, latencyMs: stats(latencies), workers: `1 process: inbound ${sys.config.INBOUND_CONCURRENCY}, outbound ${sys.config.OUTBOUND_CONCURRENCY}` };
  } finally {
    await sys.close();
  }
}

function spanishMobile(): string {
  for (;;) {
    const candidate = `+346${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    try {
      return normalizeNumber(candidate).e164;
    } catch {
      /* try another */
    }
  }
}

async function benchOtp(databaseUrl: string, connections: number) {
  const sys = await startSystem(databaseUrl, true);
  try {
    const waiters = new Map<string, (code: string) => void>();
    sys.sandbox.events.on("message", (m: { direction: string; type: string; customer?: string; payload: { components?: { type: string; parameters?: { text?: string }[] }[] } }) => {
      if (m.direction !== "outbound" || m.type !== "template" || !m.customer) return;
      const code = m.payload.components?.find((c) => c.type === "body")?.parameters?.[0]?.text;
      const w = waiters.get(m.customer);
      if (w && code) w(code);
    });
    const auth = { authorization: `Bearer ${sys.config.ADMIN_API_KEY}`, "content-type": "application/json" };
    const creates: number[] = [];
    const checks: number[] = [];
    const r = await closedLoop(connections, SECONDS, async () => {
      const to = spanishMobile();
      const codeP = new Promise<string>((resolve) => waiters.set(to.slice(1), resolve));
      let t0 = performance.now();
      const c = await fetch(`${sys.url}/v1/verifications`, { method: "POST", headers: auth, body: JSON.stringify({ to }) });
      await c.arrayBuffer();
      creates.push(performance.now() - t0);
      if (c.status !== 201) throw new Error(`create ${c.status}`);
      const code = await Promise.race([codeP, sleep(10_000).then(() => "")]);
      waiters.delete(to.slice(1));
      if (!code) throw new Error("no code");
      t0 = performance.now();
      const k = await fetch(`${sys.url}/v1/verifications/check`, { method: "POST", headers: auth, body: JSON.stringify({ to, code }) });
      const body = (await k.json()) as { status?: string };
      checks.push(performance.now() - t0);
      if (body.status !== "approved") throw new Error(`check ${k.status}`);
    });
    return {
      name: "otp-cycle",
      connections,
      cyclesPerSecond: round(r.latencies.length / r.elapsed),
      errors: r.errors,
      cycleMs: stats(r.latencies),
      createMs: stats(creates),
      checkMs: stats(checks),
      workers: `1 process: inbound ${sys.config.INBOUND_CONCURRENCY}, outbound ${sys.config.OUTBOUND_CONCURRENCY}, statuses ${sys.config.INBOUND_CONCURRENCY}`,
      limits: "all on: per number (5/10 min), per prefix, per tenant (raised to 1e6/min for the load), checks per number and tenant; outbound 1,000/s",
    };
  } finally {
    await sys.close();
  }
}

async function main() {
  const databaseUrl = await freshDatabase();
  const results: Record<string, unknown>[] = [];
  const run = async (label: string, f: () => Promise<Record<string, unknown>>) => {
    process.stdout.write(`running ${label} (${SECONDS} s)…\n`);
    const r = await f();
    results.push(r);
    process.stdout.write(`  ${JSON.stringify(r)}\n`);
  };
  if (!process.env.ONLY || process.env.ONLY === "ingest") await run("ingest", () => benchIngest(databaseUrl));
  if (!process.env.ONLY || process.env.ONLY === "reply") await run(`reply @${process.env.RATE ?? 100}/s`, () => benchReply(databaseUrl, Number(process.env.RATE ?? 100)));
  if (!process.env.ONLY || process.env.ONLY === "otp") await run("otp-cycle", () => benchOtp(databaseUrl, 32));

  const env = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
    memoryGiB: round(totalmem() / 2 ** 30),
    secondsPerPhase: SECONDS,
    redisPersistence: "as the machine runs it (tests and CI: none; production: appendonly yes)",
    logLevel: "warn",
    process: "the bot in its own Node process (npm start: API + workers); sandbox and load generator in another",
  };
  mkdirSync(join(__dirname, "results"), { recursive: true });
  const file = join(__dirname, "results", `bench-${env.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify({ env, results }, null, 2));
  process.stdout.write(`\n${"benchmark".padEnd(12)} ${"rate".padStart(14)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)}\n`);
  for (const r of results) {
    const rate = (r.perSecond ?? r.cyclesPerSecond ?? r.ratePerSecond) as number;
    const lat = (r.latencyMs ?? r.cycleMs) as Stats;
    process.stdout.write(`${String(r.name).padEnd(12)} ${String(rate + "/s").padStart(14)} ${String(lat.p50).padStart(9)} ${String(lat.p99).padStart(9)}\n`);
    if (r.name === "otp-cycle") {
      const c = r.createMs as Stats, k = r.checkMs as Stats;
      process.stdout.write(`${"  create".padEnd(12)} ${"".padStart(14)} ${String(c.p50).padStart(9)} ${String(c.p99).padStart(9)}\n`);
      process.stdout.write(`${"  check".padEnd(12)} ${"".padStart(14)} ${String(k.p50).padStart(9)} ${String(k.p99).padStart(9)}\n`);
    }
  }
  process.stdout.write(`\nresults: ${file}\n`);
  process.exit(0);
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/**
 * `npm run bench`: the benchmarks of issue 9, on loopback only, bounded in time (about 4 minutes at the default
 * BENCH_SECONDS=5). Prints a table, writes bench/results/bench-<time>.json and bench/results/latest.json, the chart
 * docs/images/bench.svg and the generated part of docs/benchmarks.md (bench/report.ts).
 *
 *  1. ingest    signed, unique webhooks/s at 64 connections and time to 200, side by side in the same run with a
 *               bare node:http server, an Express no-op route and BuilderBot's Meta provider; the bot with each
 *               webhook optimisation off (before) and on (production); then the bot at Meta's 3,300 webhooks/s
 *  2. reply     a customer's text → the bot's reply arriving at the sandbox, at 100, 250 and 500 messages/s
 *  3. outbound  messages/s through the send worker into the sandbox at a 1,000/s limit, and the limiter's accuracy
 *               at 80/s and 1,000/s
 *  4. otp       create → template through the sandbox → status webhooks → check, at a steady rate
 *  5. memory    peak RSS (VmHWM) of every process of the phases above
 *  6. roundtrips PostgreSQL round trips and Redis commands / round trips per reply (end to end), per OTP cycle and per
 *               status webhook, counted by protocol-parsing proxies (bench/round-trip-counts.ts); runs first, on an
 *               idle machine, and its counts do not depend on the machine's load (its rates do)
 *
 * Every server under test is its own process; the ingest load generator (bench/loadgen.mjs) is another. The Cloud API
 * sandbox (standing in for Meta) and the drivers of phases 2–4 run in this process. All share the machine's cores with
 * PostgreSQL and Redis. Production configuration: signatures checked, jobs encrypted and durable in Redis before the
 * 200, audit, limits and the outbound limiter on, LOG_LEVEL=warn.
 *
 * ONLY=roundtrips,ingest,reply,outbound,otp,memory (comma-separated) runs some phases; BENCH_SECONDS sets each measurement's
 * length and WARM_UP_SECONDS (5) the unrecorded warm-up before the reply, outbound and OTP measurements; PROFILE=1
 * runs the bot processes with --cpu-prof (profiles in bench/results/profiles/, summarised by
 * `npx tsx bench/profile-summary.ts <file>`).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import IORedis from "ioredis";
import { Client } from "pg";
import { loadConfig } from "../src/config/env";
import { migrateDeploy } from "../src/db/migrate";
import { normalizeNumber } from "../src/otp/phone";
import { jobIds, jobOptions, QUEUES } from "../src/queues/jobs";
import { createSandbox } from "../src/sandbox/sandbox";
import type { Sandbox } from "../src/sandbox/types";
import { sparePort } from "../test/ops/own-redis";
import { writeReport, type BenchResults, type LoadFigures, type Stats } from "./report";
import { measureRoundTrips, roundTripLines, startCountedSystem, type RoundTripResults } from "./round-trip-counts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ONLY = new Set((process.env.ONLY ?? "roundtrips,ingest,reply,outbound,otp,memory").split(",").map((s) => s.trim()));
const PROFILE = process.env.PROFILE === "1";
const ADMIN_URL = process.env.BENCH_ADMIN_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const ROOT = join(__dirname, "..");
const RESULTS = join(__dirname, "results");
const PROFILES = join(RESULTS, "profiles");
const CONNECTIONS = 64;
const META_WEBHOOKS_PER_SECOND = 3_300;
const REPLY_RATES = (process.env.REPLY_RATES ?? "100,250,500").split(",").map(Number);
const CONTACTS = 6_000;
const OTP_RATE = Number(process.env.OTP_RATE ?? 100);
const WARM_UP_SECONDS = Number(process.env.WARM_UP_SECONDS ?? 5);
/** PORT of a server under test: asked of the OS right before it starts */
const AUTO_PORT = "auto";
/** `compiled` (default): the bot runs from `npm run build`'s output, as in the container; `BENCH_RUNTIME=tsx`: from the sources */
const RUNTIME = process.env.BENCH_RUNTIME === "tsx" ? "tsx" : "compiled";
const BUILD = join(ROOT, "dist", "bench");
const CLK_TCK = 100;

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const stats = (xs: number[]): Stats => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? round(s[Math.min(s.length - 1, Math.floor(p * s.length))]!) : null);
  return { count: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1) };
};
const log = (line: string) => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------------------------------------------------------
// processes

/** Peak and current RSS (MiB) and CPU time (s) of a process, from /proc. */
function procStats(pid: number): { peakRssMiB: number; rssMiB: number; cpuSeconds: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
    return { peakRssMiB: round(kb("VmHWM") / 1024, 1), rssMiB: round(kb("VmRSS") / 1024, 1), cpuSeconds: ticks / CLK_TCK };
  } catch {
    return null;
  }
}

interface Proc {
  name: string;
  pid: number;
  url: string;
  child: ChildProcess;
  cpuSeconds(): number;
  stop(): Promise<{ peakRssMiB: number | null }>;
}

const memory: { process: string; phase: string; peakRssMiB: number | null }[] = [];

async function startProc(name: string, phase: string, args: string[], envIn: Record<string, string>, ready: "stdout" | string): Promise<Proc> {
  // the port is asked of the OS right before the start (a port drawn at random collided once)
  const port = envIn.PORT === AUTO_PORT ? await sparePort() : Number(envIn.PORT);
  const env = { ...envIn, PORT: String(port) };
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    if (out.length > 10_000) out = out.slice(-1_000);
  });
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}) before it was ready`);
    if (Date.now() > until) throw new Error(`${name} did not start`);
    if (ready === "stdout") {
      if (out.includes("ready")) break;
    } else {
      try {
        if ((await fetch(`${url}${ready}`)).status === 200) break;
      } catch {
        /* not up yet */
      }
    }
    await sleep(50);
  }
  return {
    name, pid: child.pid!, url, child,
    cpuSeconds: () => procStats(child.pid!)?.cpuSeconds ?? NaN,
    async stop() {
      const s = procStats(child.pid!);
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      memory.push({ process: name, phase, peakRssMiB: s?.peakRssMiB ?? null });
      return { peakRssMiB: s?.peakRssMiB ?? null };
    },
  };
}

const profiling = () => (PROFILE ? ["--cpu-prof", "--cpu-prof-dir", PROFILES] : []);
const tsx = (file: string) => [...profiling(), "--import", "tsx", join(ROOT, file)];
/** The bot as production runs it: the compiled build (what the container runs), or the sources through tsx. */
const botEntry = (role: "all" | "api") => (RUNTIME === "compiled" ? [...profiling(), join(BUILD, "src", "main", `${role}.js`)] : tsx(`src/main/${role}.ts`));

// ---------------------------------------------------------------------------------------------------------------
// the bot

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

/** The environment of a bot process: production settings, a fresh Redis key prefix, secrets of this run. */
function botEnv(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: "production",
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    PORT: AUTO_PORT,
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
    GRAPH_API_BASE_URL: "http://127.0.0.1:9", // replaced by the sandbox's URL when one runs
    ...extra,
  };
}

async function dropPrefix(prefix: string): Promise<void> {
  const redis = new IORedis(REDIS_URL);
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 5000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== "0");
  await redis.quit();
}

interface BotSystem {
  proc: Proc;
  env: Record<string, string>;
  sandbox: Sandbox;
  tenantId: string;
  close(): Promise<{ peakRssMiB: number | null }>;
}

/** The bot (`all`, API + workers in one process, as `npm start` and the container run it) and the sandbox standing in for Meta (this process). */
async function startBotSystem(databaseUrl: string, phase: string, extra: Record<string, string> = {}, sandboxOpts: { statuses?: boolean } = {}): Promise<BotSystem> {
  const env = botEnv(databaseUrl, extra);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const off = 1e9; // statuses never sent within the run
  const sandbox = createSandbox({
    appSecret: env.WHATSAPP_APP_SECRET!,
    phoneNumbers: [{ phoneNumberId: env.WHATSAPP_PHONE_NUMBER_ID!, displayPhoneNumber: env.WHATSAPP_DISPLAY_PHONE_NUMBER!, accessToken: env.WHATSAPP_ACCESS_TOKEN! }],
    statusDelaysMs: sandboxOpts.statuses === false ? { sent: off, delivered: off, read: off } : { sent: 5, delivered: 10, read: off },
    autoRead: false,
    webhookAgent: agent,
  });
  const sb = await sandbox.listen(0, "127.0.0.1");
  env.GRAPH_API_BASE_URL = sb.url;
  const proc = await startProc("bot (API + workers)", phase, botEntry("all"), env, "/readyz");
  sandbox.setWebhookUrl(`${proc.url}/webhook`);
  const auth = { authorization: `Bearer ${env.ADMIN_API_KEY}` };
  const tenants = (await (await fetch(`${proc.url}/admin/tenants`, { headers: auth })).json()) as { tenants: { id: string }[] };
  const tenantId = tenants.tenants[0]!.id;
  // production limits, sized for the load: the tenant-wide windows are settings, and the bench raises them
  const patch = await fetch(`${proc.url}/admin/tenants/${tenantId}/settings`, {
    method: "PATCH",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ limits: { tenantPerMinute: 1_000_000, checksPerTenantPerMinute: 1_000_000 } }),
  });
  if (patch.status !== 200) throw new Error(`settings: ${patch.status}`);
  return {
    proc, env, sandbox, tenantId,
    async close() {
      const r = await proc.stop();
      await sandbox.close();
      await sb.close();
      agent.destroy();
      await dropPrefix(env.QUEUE_PREFIX!);
      return r;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// 1. ingest

/** bench/loadgen.mjs's answer: the figures kept, and its own RSS */
interface LoadResult extends LoadFigures {
  maxRssMiB: number;
  targetRate?: number;
}

function loadgen(opts: Record<string, unknown>): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, "loadgen.mjs"), JSON.stringify(opts)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => {
      try {
        if (code !== 0) throw new Error(`loadgen exited ${code}`);
        resolve(JSON.parse(out.trim().split("\n").pop()!) as LoadResult);
      } catch (err) {
        reject(err);
      }
    });
  });
}

async function benchIngest(databaseUrl: string): Promise<NonNullable<BenchResults["ingest"]>> {
  const secret = randomBytes(16).toString("hex");
  const phoneNumberId = "106540352242922";
  const targets: { id: string; label: string; start: () => Promise<Proc>; prefix?: string }[] = [];
  const bot = (id: string, label: string, entry: string[], variant: Record<string, string>) => {
    const env = botEnv(databaseUrl, { WHATSAPP_APP_SECRET: secret, ...variant });
    targets.push({ id, label, prefix: env.QUEUE_PREFIX, start: () => startProc(label, "ingest", entry, env, "/readyz") });
  };
  const peer = (id: string, label: string, file: string) =>
    targets.push({ id, label, start: () => startProc(label, "ingest", [join(__dirname, "peers", file)], { PORT: AUTO_PORT }, "stdout") });
  peer("bare", "bare node:http (ceiling)", "bare-http.mjs");
  peer("express", "Express no-op route", "express-noop.mjs");
  peer("builderbot", "BuilderBot Meta provider", "builderbot.cjs");
  // the two earlier variants run from the sources (tsx): after the warm-up, compiled or not makes no difference to
  // their throughput; the production API runs as production does
  bot("bot-before", "bot: Express route, a Redis write per POST (before)", tsx("bench/peers/bot-variant.ts"), { BENCH_WEBHOOK: "express", BENCH_BATCH: "off" });
  bot("bot-batched", "bot: Express route, group commit", tsx("bench/peers/bot-variant.ts"), { BENCH_WEBHOOK: "express" });
  bot("bot", "bot: lean handler, group commit (production)", botEntry("api"), {});

  const closedLoop: NonNullable<BenchResults["ingest"]>["closedLoop"] = [];
  let production: Proc | null = null;
  let productionPrefix = "";
  for (const t of targets) {
    const proc = await t.start();
    const cpu0 = proc.cpuSeconds();
    const t0 = performance.now();
    const r = await loadgen({ url: `${proc.url}/webhook`, secret, phoneNumberId, connections: CONNECTIONS, seconds: SECONDS, warmupSeconds: 1, mix: "messages" });
    const cpu = (proc.cpuSeconds() - cpu0) / ((performance.now() - t0) / 1000);
    const cpuSeconds = proc.cpuSeconds() - cpu0;
    const row = { id: t.id, label: t.label, ...pick(r), serverCpuPercent: round(cpu * 100, 1), cpuMsPerRequest: round((cpuSeconds * 1000) / Math.max(1, r.requests), 3), peakRssMiB: null as number | null };
    closedLoop.push(row);
    log(`  ${t.label.padEnd(52)} ${String(r.perSecond).padStart(8)}/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  codes ${JSON.stringify(r.codes)}  CPU ${row.serverCpuPercent}% (${row.cpuMsPerRequest} ms/webhook)  pid ${proc.pid}`);
    if (t.id === "bot") {
      production = proc; // kept running for the open-loop run below
      productionPrefix = t.prefix!;
    } else {
      row.peakRssMiB = (await proc.stop()).peakRssMiB;
      if (t.prefix) await dropPrefix(t.prefix);
    }
  }
  // Meta's rate for one number at its 1,000 sends/s: about 3,300 webhooks/s, ten statuses to a customer message
  let metaRate: NonNullable<BenchResults["ingest"]>["metaRate"] = null;
  if (production) {
    const cpu0 = production.cpuSeconds();
    const t0 = performance.now();
    const r = await loadgen({ url: `${production.url}/webhook`, secret, phoneNumberId, connections: CONNECTIONS, seconds: SECONDS, warmupSeconds: 1, rate: META_WEBHOOKS_PER_SECOND, mix: "traffic" });
    const cpu = (production.cpuSeconds() - cpu0) / ((performance.now() - t0) / 1000);
    metaRate = { ...pick(r), targetRate: META_WEBHOOKS_PER_SECOND, mix: "traffic: 10 status webhooks (sent, delivered, read) to 1 customer message", serverCpuPercent: round(cpu * 100, 1) };
    log(`  bot at ${META_WEBHOOKS_PER_SECOND}/s (open loop, traffic mix)                 ${String(r.perSecond).padStart(8)}/s  p50 ${r.latencyMs.p50} ms  p99 ${r.latencyMs.p99} ms  codes ${JSON.stringify(r.codes)}`);
    const rss = (await production.stop()).peakRssMiB;
    closedLoop.find((c) => c.id === "bot")!.peakRssMiB = rss;
    await dropPrefix(productionPrefix);
  }
  const rate = (id: string) => closedLoop.find((c) => c.id === id)?.perSecond ?? NaN;
  return {
    connections: CONNECTIONS,
    closedLoop,
    ratios: {
      botVsBare: round(rate("bot") / rate("bare"), 3),
      botVsExpress: round(rate("bot") / rate("express"), 3),
      botVsBuilderBot: round(rate("bot") / rate("builderbot"), 3),
      expressVsBare: round(rate("express") / rate("bare"), 3),
      builderBotVsBare: round(rate("builderbot") / rate("bare"), 3),
      botVsBefore: round(rate("bot") / rate("bot-before"), 3),
    },
    metaRate,
  };
}

function pick(r: LoadResult): LoadFigures {
  return { perSecond: r.perSecond, ok: r.ok, requests: r.requests, codes: r.codes, latencyMs: r.latencyMs, loadgenCpuPercent: r.loadgenCpuPercent };
}

// ---------------------------------------------------------------------------------------------------------------
// 2. reply latency

async function benchReply(databaseUrl: string): Promise<NonNullable<BenchResults["reply"]>> {
  const sys = await startBotSystem(databaseUrl, "reply");
  const rows: NonNullable<BenchResults["reply"]>["rates"] = [];
  let k = 0;
  try {
    const sent = new Map<string, number>();
    let latencies: number[] = [];
    sys.sandbox.events.on("message", (m: { direction: string; customer?: string }) => {
      if (m.direction !== "outbound" || !m.customer) return;
      const t0 = sent.get(m.customer);
      if (t0 !== undefined) {
        latencies.push(performance.now() - t0);
        sent.delete(m.customer);
      }
    });
    let acks: number[] = [];
    // a warm-up at the first rate, not recorded: the first seconds of a new process are spent compiling (V8's JIT
    // and tsx loading modules on first use); a running deployment is past them (measured: p50 2.9 s → 0.27 ms at
    // 100/s, cold vs warm)
    for (const [rate, warmUp] of [[REPLY_RATES[0]!, true] as const, ...REPLY_RATES.map((r) => [r, false] as const)]) {
      latencies = [];
      acks = [];
      const total = Math.round(rate * (warmUp ? WARM_UP_SECONDS : SECONDS));
      const cpu0 = sys.proc.cpuSeconds();
      const start = performance.now();
      for (let i = 0; i < total; i++) {
        const due = start + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        // round-robin over the contacts: at 1,000 msg/s a contact writes every 6 s at most (Meta's pair rate)
        const from = `34600${String(100000 + (k++ % CONTACTS))}`;
        const t0 = performance.now();
        sent.set(from, t0);
        void sys.sandbox.injectInbound({ from, text: "hi" }).then(() => acks.push(performance.now() - t0));
      }
      const sendSeconds = (performance.now() - start) / 1000;
      const deadline = performance.now() + 10_000;
      while (sent.size > 0 && performance.now() < deadline) await sleep(20);
      const cpu = (sys.proc.cpuSeconds() - cpu0) / ((performance.now() - start) / 1000);
      const lost = sent.size;
      sent.clear();
      if (warmUp) {
        log(`  reply warm-up @${rate}/s for ${WARM_UP_SECONDS} s (not recorded): p50 ${stats(latencies).p50} ms`);
        await sleep(1_000);
        continue;
      }
      rows.push({ ratePerSecond: rate, achievedPerSecond: round(total / sendSeconds, 1), messages: total, answered: latencies.length, unanswered: lost, latencyMs: stats(latencies), webhookAckMs: stats(acks), botCpuPercent: round(cpu * 100, 1) });
      const l = rows[rows.length - 1]!;
      log(`  reply @${rate}/s: ${l.answered}/${total} answered, p50 ${l.latencyMs.p50} ms, p99 ${l.latencyMs.p99} ms (webhook ack p50 ${l.webhookAckMs?.p50} p99 ${l.webhookAckMs?.p99} ms), bot CPU ${l.botCpuPercent}%`);
      await sleep(1_000);
    }
  } finally {
    await sys.close();
  }
  return { contacts: CONTACTS, rates: rows, workers: `1 process (${RUNTIME === "compiled" ? "dist/src/main/all.js" : "src/main/all.ts"}): inbound concurrency 16, outbound 32 (defaults)` };
}

// ---------------------------------------------------------------------------------------------------------------
// 3. outbound throughput and the limiter

async function seedOutbound(databaseUrl: string, tenantId: string, n: number, tag: number): Promise<string[]> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const ids = Array.from({ length: n }, () => randomUUID());
    const contacts = Array.from({ length: n }, () => randomUUID());
    const now = new Date();
    for (let i = 0; i < n; i += 2_000) {
      const c = contacts.slice(i, i + 2_000);
      const m = ids.slice(i, i + 2_000);
      const phones = c.map((_, j) => `4479${tag}${String(i + j).padStart(6, "0")}`);
      await db.query(
        `INSERT INTO contacts (id, tenant_id, wa_id, phone_e164, updated_at)
         SELECT id, $2::uuid, wa, '+' || wa, $3 FROM unnest($1::uuid[], $4::text[]) AS t(id, wa)`,
        [c, tenantId, now, phones],
      );
      await db.query(
        `INSERT INTO messages (id, tenant_id, contact_id, direction, type, payload, status, timestamp, updated_at)
         SELECT m, $3::uuid, c, 'outbound'::"Direction", 'text', '{"type":"text","text":{"body":"Your parcel is on its way"}}'::jsonb, 'queued'::"MessageStatus", $4, $4
           FROM unnest($1::uuid[], $2::uuid[]) AS t(m, c)`,
        [m, c, tenantId, now],
      );
    }
    return ids;
  } finally {
    await db.end();
  }
}

async function benchOutbound(databaseUrl: string): Promise<NonNullable<BenchResults["outbound"]>> {
  const rows: NonNullable<BenchResults["outbound"]>["runs"] = [];
  for (const limit of [1000, 80]) {
    // the send worker alone: the sandbox sends no status webhooks here (their load is in the ingest and reply phases)
    const sys = await startBotSystem(databaseUrl, `outbound ${limit}/s`, { OUTBOUND_RATE_PER_SECOND: String(limit) }, { statuses: false });
    try {
      const n = Math.round(limit * (WARM_UP_SECONDS + SECONDS + 2));
      const ids = await seedOutbound(databaseUrl, sys.tenantId, n, rows.length + 1);
      const arrivals: number[] = [];
      sys.sandbox.events.on("message", (m: { direction: string }) => {
        if (m.direction === "outbound") arrivals.push(performance.now());
      });
      const queue = new Queue(QUEUES.outbound, { connection: new IORedis(REDIS_URL, { maxRetriesPerRequest: null }), prefix: sys.env.QUEUE_PREFIX });
      const start = performance.now();
      for (let i = 0; i < ids.length; i += 1_000) {
        await queue.addBulk(ids.slice(i, i + 1_000).map((messageId) => ({ name: "send", data: { messageId }, opts: { ...jobOptions.outbound, jobId: jobIds.outbound(messageId) } })));
      }
      // measure a steady window: from WARM_UP_SECONDS after the first send (the send path compiling: see benchReply)
      while (arrivals.length === 0 && performance.now() - start < 10_000) await sleep(10);
      const from = (arrivals[0] ?? start) + WARM_UP_SECONDS * 1_000;
      const to = from + SECONDS * 1000;
      while (performance.now() < from) await sleep(20);
      const cpu0 = sys.proc.cpuSeconds(); // the bot's CPU over the window
      while (performance.now() < to) await sleep(20);
      const cpu = (sys.proc.cpuSeconds() - cpu0) / SECONDS;
      while (performance.now() < to + 100) await sleep(50);
      const inWindow = arrivals.filter((t) => t >= from && t < to).length;
      const achieved = inWindow / SECONDS;
      // per-second counts in the window, for the limiter's steadiness
      const perSecond = Array.from({ length: SECONDS }, (_, s) => arrivals.filter((t) => t >= from + s * 1000 && t < from + (s + 1) * 1000).length);
      rows.push({ limitPerSecond: limit, achievedPerSecond: round(achieved, 1), errorPercent: round(((achieved - limit) / limit) * 100, 2), perSecond, messages: n, botCpuPercent: round(cpu * 100, 1) });
      log(`  outbound limit ${limit}/s: achieved ${round(achieved, 1)}/s (${rows[rows.length - 1]!.errorPercent}%), per second ${perSecond.join(" ")}, bot CPU ${round(cpu * 100, 1)}%`);
      await queue.close();
      await (queue.opts.connection as unknown as IORedis).quit?.();
      // the rows left unsent must not follow into the next phase: the outbox sweeper of the next bot would send them
      // (it did: the OTP phase after this one waited behind thousands of them)
      const db = new Client({ connectionString: databaseUrl });
      await db.connect();
      await db.query(`UPDATE messages SET status = 'failed'::"MessageStatus", error_title = 'bench: left unsent' WHERE id = ANY($1::uuid[]) AND status = 'queued'`, [ids]);
      await db.end();
    } finally {
      await sys.close();
    }
  }
  return { runs: rows, note: "status webhooks off in this phase (the send worker alone); one bot process, outbound concurrency 32 (default)" };
}

// ---------------------------------------------------------------------------------------------------------------
// 4. OTP cycle

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

async function benchOtp(databaseUrl: string): Promise<NonNullable<BenchResults["otp"]>> {
  const sys = await startBotSystem(databaseUrl, "otp");
  try {
    const waiters = new Map<string, (code: string) => void>();
    sys.sandbox.events.on("message", (m: { direction: string; type: string; customer?: string; payload: { components?: { type: string; parameters?: { text?: string }[] }[] } }) => {
      if (m.direction !== "outbound" || m.type !== "template" || !m.customer) return;
      const code = m.payload.components?.find((c) => c.type === "body")?.parameters?.[0]?.text;
      const w = waiters.get(m.customer);
      if (w && code) w(code);
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    const post = (path: string, body: unknown) =>
      new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
        const raw = JSON.stringify(body);
        const req = http.request(`${sys.proc.url}${path}`, { method: "POST", agent, headers: { authorization: `Bearer ${sys.env.ADMIN_API_KEY}`, "content-type": "application/json", "content-length": Buffer.byteLength(raw) } }, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (text += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
        });
        req.on("error", reject);
        req.end(raw);
      });
    const creates: number[] = [];
    const checks: number[] = [];
    const cycles: number[] = [];
    let errors = 0;
    const errorReasons: Record<string, number> = {};
    let recording = false;
    const cycle = async () => {
      const to = spanishMobile();
      const start = performance.now();
      const codeP = new Promise<string>((resolve) => waiters.set(to.slice(1), resolve));
      let t0 = performance.now();
      const c = await post("/v1/verifications", { to });
      const createMs = performance.now() - t0;
      if (c.status !== 201) throw new Error(`create ${c.status} ${(c.json.error as { code?: string } | undefined)?.code ?? ""}`.trim());
      const code = await Promise.race([codeP, sleep(10_000).then(() => "")]);
      waiters.delete(to.slice(1));
      if (!code) throw new Error("no code");
      t0 = performance.now();
      const k = await post("/v1/verifications/check", { to, code });
      const checkMs = performance.now() - t0;
      if (k.json.status !== "approved") throw new Error(`check ${k.status}`);
      if (recording) {
        creates.push(createMs);
        checks.push(checkMs);
        cycles.push(performance.now() - start);
      }
    };
    // open loop: OTP_RATE cycles started per second, whatever the answers
    const runFor = async (seconds: number) => {
      const pending: Promise<void>[] = [];
      const start = performance.now();
      const total = Math.round(OTP_RATE * seconds);
      for (let i = 0; i < total; i++) {
        const wait = start + (i * 1000) / OTP_RATE - performance.now();
        if (wait > 1) await sleep(wait);
        pending.push(
          cycle().catch((err: Error) => {
            if (!recording) return;
            errors++;
            errorReasons[err.message] = (errorReasons[err.message] ?? 0) + 1;
          }),
        );
      }
      await Promise.all(pending);
      return (performance.now() - start) / 1000;
    };
    await runFor(WARM_UP_SECONDS); // warm-up, not recorded (see benchReply)
    recording = true;
    const cpu0 = sys.proc.cpuSeconds();
    const elapsed = await runFor(SECONDS);
    const cpu = (sys.proc.cpuSeconds() - cpu0) / elapsed;
    agent.destroy();
    const r = { ratePerSecond: OTP_RATE, cyclesPerSecond: round(cycles.length / elapsed, 1), errors, cycleMs: stats(cycles), createMs: stats(creates), checkMs: stats(checks), botCpuPercent: round(cpu * 100, 1) };
    log(`  otp @${OTP_RATE}/s: ${r.cyclesPerSecond} cycles/s, create p50 ${r.createMs.p50} p99 ${r.createMs.p99} ms, check p50 ${r.checkMs.p50} p99 ${r.checkMs.p99} ms, errors ${errors}${errors ? ` ${JSON.stringify(errorReasons)}` : ""}`);
    return {
      ...r,
      limits: "all on: per number (5/10 min), per prefix, per tenant (raised to 1e6/min for the load), checks per number and tenant; outbound 1,000/s",
    };
  } finally {
    await sys.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 6. round trips per operation

/** ROUND_TRIP_RUNS (5) of each operation; the bot in this process, pointed at the counting proxies (production settings) */
async function benchRoundTrips(databaseUrl: string): Promise<RoundTripResults> {
  const config = loadConfig({ ...botEnv(databaseUrl), PORT: "0" });
  const sys = await startCountedSystem(config);
  try {
    const r = await measureRoundTrips(sys, databaseUrl, REDIS_URL, Number(process.env.ROUND_TRIP_RUNS ?? 5));
    for (const line of roundTripLines(r)) log(line);
    return r;
  } finally {
    await sys.close();
    await dropPrefix(config.QUEUE_PREFIX);
  }
}

// ---------------------------------------------------------------------------------------------------------------

async function redisSettings(): Promise<Record<string, string>> {
  const redis = new IORedis(REDIS_URL);
  try {
    const get = async (k: string) => ((await redis.config("GET", k)) as string[])[1] ?? "?";
    const info = await redis.info("server");
    return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? "?", appendonly: await get("appendonly"), appendfsync: await get("appendfsync"), save: (await get("save")) || "(none)", maxmemoryPolicy: await get("maxmemory-policy") };
  } finally {
    await redis.quit();
  }
}

async function main() {
  const started = Date.now();
  if (PROFILE) mkdirSync(PROFILES, { recursive: true });
  if (RUNTIME === "compiled") {
    log(`building the bot (npm run build → ${BUILD})…`);
    execFileSync(process.execPath, [join(ROOT, "scripts", "build.js"), "--out-dir", BUILD], { cwd: ROOT, stdio: "inherit" });
  }
  const databaseUrl = await freshDatabase();
  const defaults = loadConfig({ ...botEnv(databaseUrl), PORT: "3000" }); // the configuration every bot runs with (its port aside)
  const results: BenchResults = {
    env: {
      date: new Date().toISOString(),
      node: process.version,
      cpus: `${cpus().length} × ${cpus()[0]?.model ?? "?"}`,
      memoryGiB: round(totalmem() / 2 ** 30),
      loadAverageAtStart: loadavg().map((x) => round(x)),
      secondsPerMeasurement: SECONDS,
      redis: await redisSettings(),
      postgres: await pgVersion(),
      config: {
        NODE_ENV: "production",
        LOG_LEVEL: "warn",
        runtime: RUNTIME === "compiled" ? "compiled (npm run build; node dist/src/main/*.js, as the container runs)" : "tsx (node --import tsx src/main/*.ts)",
        OUTBOUND_RATE_PER_SECOND: 1000,
        OUTBOUND_RECIPIENT_GAP_MS: 250,
        INBOUND_CONCURRENCY: defaults.INBOUND_CONCURRENCY,
        OUTBOUND_CONCURRENCY: defaults.OUTBOUND_CONCURRENCY,
        WEBHOOK_BODY_LIMIT_BYTES: defaults.WEBHOOK_BODY_LIMIT_BYTES,
        protections: "signature checked on every webhook; jobs AES-256-GCM encrypted and acknowledged by Redis before the 200; audit rows and events written; every OTP limit and the outbound limiter on",
      },
      processes: "each server under test in its own Node process; the ingest load generator (bench/loadgen.mjs) in another; the Cloud API sandbox and the drivers of reply/outbound/otp in the bench process; PostgreSQL and Redis on the same machine",
      profiled: PROFILE,
    },
    ingest: null,
    reply: null,
    outbound: null,
    otp: null,
    memory: [],
    roundTrips: null,
    wallSeconds: 0,
  };
  const phase = async <T>(name: string, f: () => Promise<T>): Promise<T | null> => {
    if (!ONLY.has(name)) return null;
    log(`${name}…`);
    return f();
  };
  results.roundTrips = await phase("roundtrips", () => benchRoundTrips(databaseUrl));
  results.ingest = await phase("ingest", () => benchIngest(databaseUrl));
  results.reply = await phase("reply", () => benchReply(databaseUrl));
  results.outbound = await phase("outbound", () => benchOutbound(databaseUrl));
  results.otp = await phase("otp", () => benchOtp(databaseUrl));
  memory.push({ process: "bench (sandbox + drivers)", phase: "all", peakRssMiB: round(process.resourceUsage().maxRSS / 1024, 1) });
  results.memory = memory;
  results.wallSeconds = round((Date.now() - started) / 1000, 1);

  mkdirSync(RESULTS, { recursive: true });
  const file = join(RESULTS, `bench-${results.env.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2));
  // a partial run (ONLY=…) does not replace the full run the docs are made from
  const full = ["ingest", "reply", "outbound", "otp"].every((p) => ONLY.has(p));
  if (full) writeFileSync(join(RESULTS, "latest.json"), JSON.stringify(results, null, 2));
  const table = writeReport(results, { docs: full && !PROFILE, root: ROOT });
  log(`\n${table}`);
  log(`results: ${file}${full ? " (and latest.json, docs/benchmarks.md, docs/images/bench.svg)" : ""}; ${results.wallSeconds} s`);
  process.exit(0);
}

async function pgVersion(): Promise<string> {
  const db = new Client({ connectionString: ADMIN_URL });
  await db.connect();
  try {
    const r = await db.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    const fsync = await db.query<{ v: string }>("SELECT current_setting('fsync') AS v");
    const sync = await db.query<{ v: string }>("SELECT current_setting('synchronous_commit') AS v");
    return `${r.rows[0]!.v} (fsync ${fsync.rows[0]!.v}, synchronous_commit ${sync.rows[0]!.v})`;
  } finally {
    await db.end();
  }
}

if (!existsSync(join(__dirname, "loadgen.mjs"))) throw new Error("bench/loadgen.mjs missing");
void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

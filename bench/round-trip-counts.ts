/**
 * PostgreSQL and Redis round trips per operation (issue 16), counted by the protocol-parsing proxies of
 * bench/counting-proxy.ts that the whole bot (API and workers, in this process) talks through. Used by `npm run bench`
 * (phase `roundtrips`) and by test/ops/round-trips.test.ts, which holds today's counts as a ceiling.
 *
 * Operations, each alone on an idle system, counted from its first byte until the system has drained (every queue
 * empty, nothing running, the rows it should leave in place), by polling on connections of our own (not proxied):
 *  - reply:  a customer's text ("hi") → the webhook intake, the inbound job, the reply's outbound job and Cloud API
 *            send, and the `sent` and `delivered` status webhooks the sandbox (Meta) sends back, each with its job.
 *            Measured for a new contact (the first message of a number) and for a returning one.
 *  - otp:    `POST /v1/verifications` → the code's authentication template sent → its `sent`/`delivered` status
 *            webhooks → `POST /v1/verifications/check` with the code (approved).
 *  - status: one status webhook (`read`) for a message already delivered.
 * The periodic machinery is off (outbox/events/retention/messaging-limit sweeps, the heartbeat, the OTP expiry
 * sweep; WORKER_LOCK_MS long so no stalled-job check runs) and the proxies count what is left of it apart. Each
 * operation runs `runs` times (after one unmeasured warm-up of each): the fewest is the steady-state count (a run that
 * met an expired cache, e.g. the 2 s flow cache or the 1 s API-key cache, pays a reload); the most is reported too.
 */
import { Queue } from "bullmq";
import IORedis from "ioredis";
import { Client } from "pg";
import type { Config } from "../src/config/env";
import { buildCore, ensureDefaultTenant, type Core } from "../src/main/core";
import { startHttp, type RunningServer } from "../src/main/http-server";
import { startWorkers, type RunningWorkers } from "../src/main/workers";
import { createLogger } from "../src/observability/logger";
import { normalizeNumber } from "../src/otp/phone";
import { QUEUES } from "../src/queues/jobs";
import { createSandbox } from "../src/sandbox/sandbox";
import type { Sandbox } from "../src/sandbox/types";
import { PgCountingProxy, RedisCountingProxy, target, type PgCounts, type RedisCounts } from "./counting-proxy";

export interface OperationCounts {
  pg: PgCounts;
  redis: RedisCounts;
}

export interface RoundTripSummary {
  /** the fewest of the runs (steady state) */
  pgRoundTrips: number;
  redisCommands: number;
  redisRoundTrips: number;
  /**
   * Redis commands besides a worker's job fetches (BZPOPMIN wake-ups and moveToActive calls): how many fetches a job
   * costs depends on timing (a worker with free slots asks again while another job runs), the rest does not
   */
  redisCommandsBesidesFetches: number;
  /** the most of the runs */
  max: { pgRoundTrips: number; redisCommands: number; redisRoundTrips: number; redisCommandsBesidesFetches: number };
  runs: number;
  /** the run with the fewest PostgreSQL round trips, in detail (statements, commands by name) */
  detail: OperationCounts;
  /** what the run with the most PostgreSQL round trips asked for besides (statements, commands by name) */
  extraInWorst: { pg: string[]; redis: Record<string, number> };
}

export type RoundTripOperation = "replyNewContact" | "replyReturningContact" | "otpCycle" | "statusWebhook";

export type RoundTripResults = Record<RoundTripOperation, RoundTripSummary>;

const NEVER = 2_000_000_000; // ms: a timer that does not fire within any run (setInterval takes < 2^31)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CountedSystem {
  config: Config;
  core: Core;
  http: RunningServer;
  workers: RunningWorkers;
  sandbox: Sandbox;
  tenantId: string;
  pg: PgCountingProxy;
  redis: RedisCountingProxy;
  close(): Promise<void>;
}

/**
 * The bot (API and workers in this process, as `npm start` runs them) with DATABASE_URL and REDIS_URL pointed at the
 * counting proxies (no other change), and the sandbox as Meta sending `sent` and `delivered` statuses.
 */
export async function startCountedSystem(direct: Config): Promise<CountedSystem> {
  const pg = await PgCountingProxy.start(target(direct.DATABASE_URL, 5432));
  const redis = await RedisCountingProxy.start(target(direct.REDIS_URL, 6379));
  const sandbox = createSandbox({
    appSecret: direct.WHATSAPP_APP_SECRET,
    phoneNumbers: [{ phoneNumberId: direct.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: direct.WHATSAPP_DISPLAY_PHONE_NUMBER, accessToken: direct.WHATSAPP_ACCESS_TOKEN }],
    statusDelaysMs: { sent: 5, delivered: 10, read: NEVER },
    autoRead: false,
  });
  const sb = await sandbox.listen(0, "127.0.0.1");
  const config: Config = {
    ...direct,
    DATABASE_URL: pg.url(direct.DATABASE_URL),
    REDIS_URL: redis.url(direct.REDIS_URL),
    GRAPH_API_BASE_URL: sb.url,
    // BullMQ's stalled-job check runs every WORKER_LOCK_MS: not within a run
    WORKER_LOCK_MS: 600_000,
    OUTBOUND_RECIPIENT_GAP_MS: 0,
  };
  const core = buildCore(config, { logger: createLogger({ level: "silent" }), defaultMetrics: false });
  const tenant = await ensureDefaultTenant(core);
  const workers = await startWorkers(core, { sweepEveryMs: NEVER, expireSweepEveryMs: NEVER, heartbeat: { everyMs: NEVER, ttlMs: NEVER }, shutdownGraceMs: 10_000 });
  const http = await startHttp(core, { port: 0, host: "127.0.0.1" });
  sandbox.setWebhookUrl(`${http.url}/webhook`);
  return {
    config, core, http, workers, sandbox, tenantId: tenant.id, pg, redis,
    async close() {
      await http.close();
      await workers.close();
      await sandbox.close();
      await sb.close();
      await Promise.allSettled(Object.values(core.queues).map((q) => q.obliterate({ force: true })));
      await core.close();
      await pg.close();
      await redis.close();
    },
  };
}

/** Polls (on our own connections, not through the proxies) until nothing is left to do and `done` holds. */
async function drained(sys: CountedSystem, queues: Queue[], done: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    const counts = await Promise.all(queues.map((q) => q.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children", "paused")));
    // parked: the OTP expiry sweep's scheduler keeps one delayed job at all times, and a code's no-delivery timeout
    // waits its delay (the OTP cycle runs it on purpose at its end)
    const busy = counts.reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0) - (await parkedJobs(queues));
    if (busy === 0 && sys.core.background.size === 0 && (await done())) {
      // and nothing more was asked of PostgreSQL or Redis since the previous look
      const now = JSON.stringify([sys.pg.snapshot().roundTrips, sys.redis.snapshot().commands]);
      if (now === last) return;
      last = now;
    } else {
      last = "";
    }
    if (Date.now() > until) {
      const delayed = (await Promise.all(queues.map((q) => q.getJobs(["delayed", "waiting", "active"])))).flat();
      throw new Error(`not drained within ${timeoutMs} ms: ${JSON.stringify(counts)} ${JSON.stringify(delayed.map((j) => ({ q: j.queueName, name: j.name, delay: j.delay, attempts: j.attemptsMade, reason: j.failedReason, stack: j.stacktrace?.[0]?.split("\n").slice(0, 8).join(" | ") })))}`);
    }
    await sleep(20);
  }
}

async function parkedJobs(queues: Queue[]): Promise<number> {
  const otp = queues.find((q) => q.name === QUEUES.otp);
  return otp ? (await otp.getJobs(["delayed"])).filter((j) => j.name === "expire-sweep" || j.name === "timeout").length : 0;
}

async function counted(sys: CountedSystem, op: () => Promise<void>): Promise<OperationCounts> {
  const pg0 = sys.pg.snapshot();
  const redis0 = sys.redis.snapshot();
  await op();
  return { pg: sys.pg.since(pg0), redis: sys.redis.since(redis0) };
}

/** a worker's job fetches: waking from its blocking wait, and asking for the next job */
export const FETCHES = ["bzpopmin", "moveToActive"];

function summarise(runs: OperationCounts[]): RoundTripSummary {
  const sorted = [...runs].sort((a, b) => a.pg.roundTrips - b.pg.roundTrips || a.redis.commands - b.redis.commands);
  const best = sorted[0]!;
  const worst = sorted[sorted.length - 1]!;
  const left = [...best.pg.statements];
  const extraPg = worst.pg.statements.filter((st) => {
    const i = left.indexOf(st);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
  const extraRedis = Object.fromEntries(Object.entries(worst.redis.byName).map(([k, v]) => [k, v - (best.redis.byName[k] ?? 0)] as const).filter(([, v]) => v > 0));
  const min = (f: (r: OperationCounts) => number) => Math.min(...runs.map(f));
  const max = (f: (r: OperationCounts) => number) => Math.max(...runs.map(f));
  const pgRt = (r: OperationCounts) => r.pg.roundTrips;
  const cmds = (r: OperationCounts) => r.redis.commands;
  const rrt = (r: OperationCounts) => r.redis.roundTrips;
  const own = (r: OperationCounts) => r.redis.commands - FETCHES.reduce((n, c) => n + (r.redis.byName[c] ?? 0), 0);
  return {
    pgRoundTrips: min(pgRt), redisCommands: min(cmds), redisRoundTrips: min(rrt), redisCommandsBesidesFetches: min(own),
    max: { pgRoundTrips: max(pgRt), redisCommands: max(cmds), redisRoundTrips: max(rrt), redisCommandsBesidesFetches: max(own) },
    runs: runs.length, detail: best, extraInWorst: { pg: extraPg, redis: extraRedis } };
}

/** Counts every operation `runs` times on the system (after one warm-up of each). */
export async function measureRoundTrips(sys: CountedSystem, directDatabaseUrl: string, directRedisUrl: string, runs = 3): Promise<RoundTripResults> {
  const db = new Client({ connectionString: directDatabaseUrl });
  await db.connect();
  const redis = new IORedis(directRedisUrl, { maxRetriesPerRequest: null });
  const queues = Object.values(QUEUES).map((name) => new Queue(name, { connection: redis, prefix: sys.config.QUEUE_PREFIX }));
  const auth = { authorization: `Bearer ${sys.config.ADMIN_API_KEY}`, "content-type": "application/json" };
  let n = 0;
  const number = () => `44770090${String(1000 + n++).padStart(4, "0")}`;

  /** the outbound rows to a contact, with their status */
  const outbound = async (waId: string) =>
    (await db.query<{ status: string; wamid: string | null }>(
      `SELECT m.status::text AS status, m.wamid FROM messages m JOIN contacts c ON c.id = m.contact_id WHERE c.wa_id = $1 AND m.direction = 'outbound' ORDER BY m.created_at`,
      [waId],
    )).rows;
  const allDelivered = async (waId: string, count: number) => {
    const rows = await outbound(waId);
    return rows.length === count && rows.every((r) => r.status === "delivered");
  };

  const reply = async (waId: string, expectedReplies: number) => {
    const { status } = await sys.sandbox.injectInbound({ from: waId, profileName: "Ada", text: "hi" });
    if (status !== 200) throw new Error(`webhook answered ${status}`);
    await drained(sys, queues, () => allDelivered(waId, expectedReplies));
  };

  const otp = async () => {
    const to = spanishMobile(n++);
    const digits = to.slice(1);
    const codeOf = () => {
      const t = sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound" && m.type === "template").pop();
      return (t?.payload as { components?: { type: string; parameters?: { text?: string }[] }[] } | undefined)?.components?.find((c) => c.type === "body")?.parameters?.[0]?.text;
    };
    const created = await fetch(`${sys.http.url}/v1/verifications`, { method: "POST", headers: auth, body: JSON.stringify({ to }) });
    if (created.status !== 201) throw new Error(`create answered ${created.status}: ${await created.text()}`);
    await drained(sys, queues, async () => Boolean(codeOf()) && (await allDelivered(digits, 1)));
    const checked = await fetch(`${sys.http.url}/v1/verifications/check`, { method: "POST", headers: auth, body: JSON.stringify({ to, code: codeOf() }) });
    const body = (await checked.json()) as { status?: string };
    if (body.status !== "approved") throw new Error(`check answered ${checked.status} ${JSON.stringify(body)}`);
    // the code's no-delivery timeout job, armed at the send, runs deliveryTimeoutSeconds later whatever happened:
    // part of the cycle's cost, so it is run now (promoted on our own connection) and counted
    const otpQueue = queues.find((q) => q.name === QUEUES.otp)!;
    for (const j of await otpQueue.getJobs(["delayed"])) if (j.name === "timeout") await j.promote();
    await drained(sys, queues, async () => true);
  };

  const read = async (waId: string) => {
    const [row] = await outbound(waId);
    if (!row?.wamid) throw new Error("no delivered message to read");
    const status = await sys.sandbox.postWebhook({
      object: "whatsapp_business_account",
      entry: [{ id: "WABA", changes: [{ field: "messages", value: { messaging_product: "whatsapp", metadata: { display_phone_number: sys.config.WHATSAPP_DISPLAY_PHONE_NUMBER, phone_number_id: sys.config.WHATSAPP_PHONE_NUMBER_ID }, statuses: [{ id: row.wamid, status: "read", timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: waId }] } }] }],
    });
    if (status !== 200) throw new Error(`status webhook answered ${status}`);
    await drained(sys, queues, async () => (await outbound(waId))[0]?.status === "read");
  };

  try {
    // warm-up: pool connections open, code paths and caches loaded
    const w = number();
    await reply(w, 1);
    await reply(w, 2);
    await otp();
    await read(w);

    const results: Partial<Record<RoundTripOperation, OperationCounts[]>> = {};
    const add = (op: RoundTripOperation, c: OperationCounts) => (results[op] ??= []).push(c);
    for (let i = 0; i < runs; i++) {
      const c = number();
      add("replyNewContact", await counted(sys, () => reply(c, 1)));
      add("replyReturningContact", await counted(sys, () => reply(c, 2)));
      add("statusWebhook", await counted(sys, () => read(c)));
      add("otpCycle", await counted(sys, () => otp()));
    }
    return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summarise(v)])) as RoundTripResults;
  } finally {
    for (const q of queues) await q.close();
    await redis.quit();
    await db.end();
  }
}

function spanishMobile(i: number): string {
  for (let k = 0; ; k++) {
    try {
      return normalizeNumber(`+3461${String((i * 7919 + k) % 1e7).padStart(7, "0")}`).e164;
    } catch {
      /* try another */
    }
  }
}

/** The human summary: one line per operation. */
export function roundTripLines(r: RoundTripResults): string[] {
  const label: Record<RoundTripOperation, string> = {
    replyNewContact: "reply to a text, new contact (intake, inbound, send, sent + delivered webhooks)",
    replyReturningContact: "reply to a text, returning contact (the same, end to end)",
    otpCycle: "OTP cycle (create, code sent, its 2 status webhooks, check)",
    statusWebhook: "one status webhook (read)",
  };
  return (Object.keys(label) as RoundTripOperation[]).map((k) => {
    const s = r[k];
    const m = s.max;
    const spread = m.pgRoundTrips !== s.pgRoundTrips || m.redisCommands !== s.redisCommands || m.redisRoundTrips !== s.redisRoundTrips ? ` (most of ${s.runs} runs: ${m.pgRoundTrips} / ${m.redisCommands} (${m.redisCommandsBesidesFetches}) / ${m.redisRoundTrips})` : "";
    return `  ${label[k].padEnd(84)} PostgreSQL ${String(s.pgRoundTrips).padStart(3)}   Redis commands ${String(s.redisCommands).padStart(3)} (${String(s.redisCommandsBesidesFetches).padStart(3)} besides job fetches), round trips ${String(s.redisRoundTrips).padStart(3)}${spread}`;
  });
}

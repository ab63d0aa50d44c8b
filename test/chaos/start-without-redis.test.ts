import { signBody } from "../../src/ingest/verify-signature";
import { contact, envelope, messages } from "../helpers/payloads";
import { sparePort } from "../ops/own-redis";
import { recordScenario } from "./report";
import { pgTarget, TcpProxy } from "./tcp-proxy";
import { startRig, until, type BotProcess, type Rig } from "./harness";

/**
 * Fault: Redis or PostgreSQL unreachable when the process starts (connection refused, or an endpoint that answers
 * garbage). The real process (`npm start`, src/main/all.ts; `npm run start:api`) listens anyway: `/healthz` 200,
 * `/readyz` 503, a correctly signed webhook 503 (JSON error) while Redis is down, so Meta redelivers. When the
 * service comes back (the test's TCP proxy lets it through) the same process, not restarted, turns ready, takes
 * webhooks and its workers answer them. SIGTERM exits within SHUTDOWN_GRACE_MS whatever is down.
 */
jest.setTimeout(120_000);

const GRACE_MS = 4_000;
const LISTENING = /"msg":"API listening"/;
let rig: Rig;
const children: BotProcess[] = [];

beforeAll(async () => {
  // Meta redelivery is not what is measured: every POST's own answer is seen
  rig = await startRig({ sandbox: { webhookRetry: { attempts: 1, baseDelayMs: 50 } } });
});
afterAll(async () => {
  if (rig) record();
  await Promise.allSettled(children.map((c) => c.kill("SIGKILL")));
  await rig?.close();
});

async function spawnAt(script: "all" | "api", env: Record<string, string>, name: string): Promise<{ bot: BotProcess; url: string }> {
  const port = await sparePort();
  const bot = rig.spawn(script, { PORT: String(port), SHUTDOWN_GRACE_MS: String(GRACE_MS), ...env }, name);
  children.push(bot);
  await bot.ready(LISTENING, 30_000);
  return { bot, url: `http://127.0.0.1:${port}` };
}

async function status(url: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: kept as text, the assertion shows it
  }
  return { status: res.status, body };
}

/** A correctly signed webhook with one text from `from`. */
function signedWebhook(url: string, from: string, text: string): Promise<{ status: number; body: unknown }> {
  const raw = JSON.stringify(envelope({ phoneNumberId: rig.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact(from)], messages: [messages.text(from, text)] }));
  return status(`${url}/webhook`, { method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": signBody(raw, rig.config.WHATSAPP_APP_SECRET) }, body: raw });
}

/** SIGTERM; resolves with the exit and how long it took. */
async function terminate(bot: BotProcess): Promise<{ exit: { code: number | null; signal: NodeJS.Signals | null } | null; ms: number }> {
  const at = Date.now();
  bot.child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([bot.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), GRACE_MS + 10_000)))]);
  clearTimeout(timer);
  return { exit, ms: Date.now() - at };
}

const replies = (n: string) => rig.sandbox.conversation(n).filter((m) => m.direction === "outbound").length;

const figures: Record<string, number | string> = {};
/** customers whose one message was answered 200: each must get its reply, once */
const accepted = new Set<string>();

describe("Redis unreachable at start", () => {
  it("npm start listens with Redis answering garbage: healthz 200, readyz and the webhook 503; it recovers without a restart", async () => {
    const proxy = await TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(rig.config.REDIS_URL).port || 6379) });
    try {
      proxy.garbage();
      const { bot, url } = await spawnAt("all", { REDIS_URL: proxy.url(rig.config.REDIS_URL) }, "all-junk-redis");
      expect((await status(`${url}/healthz`)).status).toBe(200);
      const ready = await status(`${url}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: "unavailable", checks: { redis: expect.not.stringMatching(/^ok$/) } });
      const refused = await signedWebhook(url, "447700900301", "hello while Redis is junk");
      expect(refused.status).toBe(503);
      expect(refused.body).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
      expect(bot.output()).not.toMatch(/"msg":"API and workers started"/);

      // Redis answers again (the same address): the same process turns ready and its workers take the messages
      const restoredAt = Date.now();
      proxy.restore();
      await until(async () => (await status(`${url}/readyz`)).status === 200, 30_000, () => bot.output().slice(-2000), 200);
      figures["junk Redis: ready after it answered (ms)"] = Date.now() - restoredAt;
      await bot.ready(/"msg":"API and workers started"/, 30_000);
      rig.sandbox.setWebhookUrl(`${url}/webhook`);
      const customer = "447700900302";
      const { status: answer } = await rig.sandbox.injectBatch([{ from: customer, text: "hello after Redis came back" }]);
      expect(answer).toBe(200);
      accepted.add(customer);
      await until(() => replies(customer) >= 1, 30_000, () => bot.output().slice(-2000), 100);
      expect(bot.running()).toBe(true);

      const { exit, ms } = await terminate(bot);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(ms).toBeLessThan(GRACE_MS + 1_000);
    } finally {
      await proxy.close();
    }
  });

  it("npm start and start:api listen with Redis refusing connections (a closed port), answer 503, and SIGTERM exits within the grace period", async () => {
    const closed = `redis://127.0.0.1:${await sparePort()}`;
    for (const script of ["all", "api"] as const) {
      const { bot, url } = await spawnAt(script, { REDIS_URL: closed }, `${script}-refused-redis`);
      expect((await status(`${url}/healthz`)).status).toBe(200);
      expect((await status(`${url}/readyz`)).status).toBe(503);
      const refused = await signedWebhook(url, "447700900303", "hello, nobody home");
      expect(refused.status).toBe(503);
      expect(refused.body).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
      // an outage is a few warnings, not one per reconnect attempt
      await new Promise((r) => setTimeout(r, 2_000));
      const warnings = (bot.output().match(/connection error/g) ?? []).length;
      figures[`refused Redis: connection-error lines in 2 s (${script})`] = warnings;
      expect(warnings).toBeLessThanOrEqual(20);
      const { exit, ms } = await terminate(bot);
      figures[`refused Redis: exit after SIGTERM (${script}, ms)`] = ms;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(ms).toBeLessThan(GRACE_MS + 1_000);
    }
  });
});

describe("Redis lost after start", () => {
  it("SIGTERM exits within SHUTDOWN_GRACE_MS when Redis went away while the workers were connected", async () => {
    const proxy = await TcpProxy.start({ host: "127.0.0.1", port: Number(new URL(rig.config.REDIS_URL).port || 6379) });
    try {
      const { bot, url } = await spawnAt("all", { REDIS_URL: proxy.url(rig.config.REDIS_URL) }, "all-redis-lost");
      await bot.ready(/"msg":"API and workers started"/, 30_000);
      expect((await status(`${url}/readyz`)).status).toBe(200);
      proxy.cut();
      await until(async () => (await status(`${url}/readyz`)).status === 503, 10_000);
      const { exit, ms } = await terminate(bot);
      figures["Redis lost after start: exit after SIGTERM (ms)"] = ms;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(ms).toBeLessThan(GRACE_MS + 1_000);
    } finally {
      await proxy.close();
    }
  });
});

describe("PostgreSQL stalled after start", () => {
  it("SIGTERM exits within SHUTDOWN_GRACE_MS while a webhook and the database calls hang on a PostgreSQL that went silent", async () => {
    const proxy = await TcpProxy.start(pgTarget(rig.dbUrl));
    try {
      const { bot, url } = await spawnAt("all", { DATABASE_URL: proxy.url(rig.dbUrl) }, "all-pg-stalled");
      await bot.ready(/"msg":"API and workers started"/, 30_000);
      proxy.stall();
      // a webhook in flight (its ingest or its job waits on PostgreSQL), and a readiness probe that cannot finish
      const hanging = signedWebhook(url, "447700900306", "hello into the void").catch(() => null);
      await new Promise((r) => setTimeout(r, 500));
      const { exit, ms } = await terminate(bot);
      figures["PostgreSQL stalled: exit after SIGTERM (ms)"] = ms;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(ms).toBeLessThan(GRACE_MS + 1_000);
      await hanging;
    } finally {
      await proxy.close();
    }
  });
});

describe("PostgreSQL unreachable at start", () => {
  it("npm start listens, readyz 503 until PostgreSQL answers, then ready and answering without a restart", async () => {
    const proxy = await TcpProxy.start(pgTarget(rig.dbUrl));
    try {
      proxy.cut();
      const { bot, url } = await spawnAt("all", { DATABASE_URL: proxy.url(rig.dbUrl) }, "all-no-postgres");
      expect((await status(`${url}/healthz`)).status).toBe(200);
      // Redis connects in the background: readiness names PostgreSQL alone once it has
      const ready = await until(async () => {
        const r = await status(`${url}/readyz`);
        return (r.body as { checks?: { redis?: string } }).checks?.redis === "ok" ? r : null;
      }, 10_000);
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: "unavailable", checks: { postgres: expect.not.stringMatching(/^ok$/), redis: "ok" } });
      // the readiness answer names the failure in one line, without our source code (Prisma quotes it)
      expect(JSON.stringify(ready.body)).not.toMatch(/src\/|invocation|\\n/);
      // Redis is up: a webhook is durably handed off (200) or refused (503), never lost and never a crash
      const customer = "447700900304";
      const early = await signedWebhook(url, customer, "hello while PostgreSQL is down");
      expect([200, 503]).toContain(early.status);
      if (early.status === 503) expect(early.body).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
      expect(bot.running()).toBe(true);

      const restoredAt = Date.now();
      proxy.restore();
      await until(async () => (await status(`${url}/readyz`)).status === 200, 30_000, () => bot.output().slice(-2000), 200);
      figures["no PostgreSQL: ready after it answered (ms)"] = Date.now() - restoredAt;
      await bot.ready(/"msg":"API and workers started"/, 30_000);
      rig.sandbox.setWebhookUrl(`${url}/webhook`);
      const later = "447700900305";
      expect((await rig.sandbox.injectBatch([{ from: later, text: "hello after PostgreSQL came back" }])).status).toBe(200);
      accepted.add(later);
      if (early.status === 200) accepted.add(customer);
      await until(() => replies(later) >= 1, 30_000, () => bot.output().slice(-2000), 100);
      // the message accepted while PostgreSQL was down is answered too
      if (early.status === 200) await until(() => replies(customer) >= 1, 30_000, () => bot.output().slice(-2000), 100);
      figures["no PostgreSQL: webhook answer while down"] = early.status;
      const { exit, ms } = await terminate(bot);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(ms).toBeLessThan(GRACE_MS + 1_000);
    } finally {
      await proxy.close();
    }
  });

  it("SIGTERM exits within the grace period while PostgreSQL is still unreachable", async () => {
    const proxy = await TcpProxy.start(pgTarget(rig.dbUrl));
    try {
      proxy.cut();
      for (const script of ["all", "api"] as const) {
        const { bot, url } = await spawnAt(script, { DATABASE_URL: proxy.url(rig.dbUrl) }, `${script}-pg-down-sigterm`);
        expect((await status(`${url}/healthz`)).status).toBe(200);
        expect((await status(`${url}/readyz`)).status).toBe(503);
        const { exit, ms } = await terminate(bot);
        figures[`no PostgreSQL: exit after SIGTERM (${script}, ms)`] = ms;
        expect(exit).toEqual({ code: 0, signal: null });
        expect(ms).toBeLessThan(GRACE_MS + 1_000);
      }
    } finally {
      await proxy.close();
    }
  });
});

function record(): void {
  const answered = [...accepted].filter((n) => replies(n) >= 1).length;
  recordScenario({
    id: "F9-start-without-backends",
    title: "Redis or PostgreSQL unreachable when the process starts",
    section: "faults",
    figures: {
      ...figures,
      sent: accepted.size,
      handled: answered,
      lost: accepted.size - answered,
      // no send had an unknown outcome here: a reply twice would be a repeat without excuse
      repeatedUnknownOutcome: [...accepted].filter((n) => replies(n) > 1).length,
      unknownOutcome: 0,
    },
    notes:
      "Real processes (`src/main/all.ts`, `src/main/api.ts`) started with Redis refusing connections or answering " +
      "garbage (a TCP endpoint that is not Redis), and with PostgreSQL unreachable: each listened at once, `/healthz` " +
      "200, `/readyz` 503 naming the service, a correctly signed webhook `503` while Redis was down. When the service " +
      `answered again the same process turned ready, took webhooks and answered them; SIGTERM exited 0 within ` +
      `SHUTDOWN_GRACE_MS (${GRACE_MS} ms here) whatever was down.`,
  });
}

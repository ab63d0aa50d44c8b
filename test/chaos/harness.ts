import { botProcessEnv, spawnBot, type BotProcess, type BotScript } from "../helpers/bot-process";
import type { Config } from "../../src/config/env";
import { buildCore, ensureDefaultTenant, type Core } from "../../src/main/core";
import { startHttp, type RunningServer } from "../../src/main/http-server";
import { createSandbox } from "../../src/sandbox/sandbox";
import type { Sandbox, SandboxOptions } from "../../src/sandbox/types";
import { createTestDatabase } from "../helpers/db";
import { testConfig } from "../helpers/env";

/**
 * The chaos rig: a fresh database, the Cloud API sandbox (Meta) in the test process, a Core in the test process to
 * read the database and queues, optionally the API in the test process, and the bot's real processes
 * (`node --import tsx src/main/{worker,api,all}.ts`) started and killed by the test.
 */

export interface Rig {
  config: Config;
  /** the test's own view of PostgreSQL and Redis (and, with `api: true`, the API serving the webhook) */
  core: Core;
  sandbox: Sandbox;
  sandboxUrl: string;
  dbUrl: string;
  tenantId: string;
  http: RunningServer | null;
  /** the environment of a bot process started against this rig (`extra` wins) */
  env(extra?: Record<string, string>): Record<string, string>;
  spawn(script: BotScript, extra?: Record<string, string>, name?: string): BotProcess;
  close(): Promise<void>;
}


export async function startRig(opts: { env?: Record<string, string>; api?: boolean; sandbox?: Partial<SandboxOptions> } = {}): Promise<Rig> {
  const db = await createTestDatabase();
  const base = testConfig({ DATABASE_URL: db.url, ...opts.env });
  const sandbox = createSandbox({
    appSecret: base.WHATSAPP_APP_SECRET,
    phoneNumbers: [{ phoneNumberId: base.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: base.WHATSAPP_DISPLAY_PHONE_NUMBER, accessToken: base.WHATSAPP_ACCESS_TOKEN }],
    webhookRetry: { attempts: 5, baseDelayMs: 100 },
    // statuses are not what these tests measure: keep their webhooks few and late
    statusDelaysMs: { sent: 50, delivered: 100, read: 150 },
    autoRead: false,
    ...opts.sandbox,
  });
  const sandboxServer = await sandbox.listen(0, "127.0.0.1");
  const config: Config = { ...base, GRAPH_API_BASE_URL: sandboxServer.url };
  const core = buildCore(config, { defaultMetrics: false });
  const tenant = await ensureDefaultTenant(core);
  const http = opts.api ? await startHttp(core, { port: 0, host: "127.0.0.1" }) : null;
  if (http) sandbox.setWebhookUrl(`${http.url}/webhook`);
  const children = new Set<BotProcess>();

  const env = (extra: Record<string, string> = {}): Record<string, string> =>
    botProcessEnv(config, {
      // a crashed worker's jobs come back within seconds, not a minute (WORKER_LOCK_MS)
      WORKER_LOCK_MS: "4000",
      OUTBOUND_TIMEOUT_MS: "1000",
      OUTBOUND_RECIPIENT_GAP_MS: "0",
      ...Object.fromEntries(Object.entries(opts.env ?? {}).filter(([k]) => k !== "DATABASE_URL")),
      ...extra,
    });

  return {
    config,
    core,
    sandbox,
    sandboxUrl: sandboxServer.url,
    dbUrl: db.url,
    tenantId: tenant.id,
    http,
    env,
    spawn(script, extra, name) {
      const p = spawnBot(script, env(extra), name);
      children.add(p);
      return p;
    },
    async close() {
      await Promise.allSettled([...children].map((c) => c.kill("SIGKILL")));
      await http?.close();
      await sandbox.close();
      await sandboxServer.close();
      await Promise.allSettled(Object.values(core.queues).map((q) => q.obliterate({ force: true })));
      await core.close();
      await db.drop();
    },
  };
}

export { READY, spawnBot, type BotProcess, type BotScript } from "../helpers/bot-process";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value; throws with `describe()` (the state seen) after `ms`. */
export async function until<T>(check: () => Promise<T> | T, ms: number, describe: () => Promise<string> | string = () => "", everyMs = 100): Promise<Exclude<T, null | undefined | false | 0 | "">> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as Exclude<T, null | undefined | false | 0 | "">;
    if (Date.now() > deadline) throw new Error(`not reached within ${ms} ms: ${await describe()}`);
    await sleep(everyMs);
  }
}

/** Customer numbers of a scenario: `count` distinct E.164 digit strings under a prefix of its own. */
export function customers(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);
}

export interface Tally {
  /** inbound messages with their row (claimed) in PostgreSQL */
  inboundHandled: number;
  outboundRows: number;
  /** outbound rows accepted by the Cloud API (sent or later) */
  outboundSent: number;
  outboundFailed: number;
  /** still queued or sending */
  outboundOpen: number;
  /** Cloud API sends the sandbox accepted (200 + wamid), including ones whose answer the bot never got */
  sandboxAccepted: number;
  /** sends the sandbox received in all (accepted or refused) */
  sandboxRequests: number;
  /** attempts whose outcome the bot did not learn: `unknown` (timeout, lost connection) or `pending` (process died) */
  unknownAttempts: number;
  pendingAttempts: number;
  attempts: number;
  attemptsByOutcome: Record<string, number>;
  /** sandbox-accepted sends beyond one per sent row: replies Meta got twice */
  repeated: number;
}

/** What PostgreSQL and the sandbox say about this rig's traffic. */
export async function tally(rig: Rig, wamids: string[]): Promise<Tally> {
  const { prisma } = rig.core;
  const inboundHandled = wamids.length === 0 ? 0 : await prisma.message.count({ where: { direction: "inbound", wamid: { in: wamids } } });
  const byStatus = await prisma.message.groupBy({ by: ["status"], where: { direction: "outbound" }, _count: { _all: true } });
  const count = (ss: string[]) => byStatus.filter((r) => ss.includes(r.status)).reduce((n, r) => n + r._count._all, 0);
  const attempts = await prisma.sendAttempt.groupBy({ by: ["outcome"], _count: { _all: true } });
  const attemptsByOutcome = Object.fromEntries(attempts.map((a) => [a.outcome, a._count._all]));
  const sends = rig.sandbox.requests().filter((r) => r.method === "POST" && r.path.endsWith("/messages"));
  const sandboxAccepted = sends.filter((r) => r.responseStatus === 200 && r.wamid).length;
  const outboundSent = count(["sent", "delivered", "read"]);
  return {
    inboundHandled,
    outboundRows: byStatus.reduce((n, r) => n + r._count._all, 0),
    outboundSent,
    outboundFailed: count(["failed"]),
    outboundOpen: count(["queued", "sending"]),
    sandboxAccepted,
    sandboxRequests: sends.length,
    unknownAttempts: (attemptsByOutcome.unknown ?? 0) + (attemptsByOutcome.pending ?? 0),
    pendingAttempts: attemptsByOutcome.pending ?? 0,
    attempts: attempts.reduce((n, a) => n + a._count._all, 0),
    attemptsByOutcome,
    repeated: Math.max(0, sandboxAccepted - outboundSent),
  };
}

/** Per customer: how many replies the sandbox (Meta) received for them. */
export function repliesPerCustomer(rig: Rig, numbers: string[]): Map<string, number> {
  return new Map(numbers.map((n) => [n, rig.sandbox.conversation(n).filter((m) => m.direction === "outbound").length]));
}

/** Half-written state: contacts whose texts and greetings do not pair up, sent rows without a wamid, open rows, pending attempts. */
/** what `halfWritten` finds after a run that left nothing half-written */
export const NOTHING_HALF_WRITTEN = { unpairedContacts: 0, sentWithoutWamid: 0, openRows: 0, pendingAttempts: 0, duplicateWamids: 0 };

/**
 * What every fault must end with: nothing answered `200` lost, nothing half-written, and a reply repeated only where
 * a send's outcome was unknown (the scenarios add their own, stricter checks).
 */
export function expectNothingLost(r: { lost: number; state: typeof NOTHING_HALF_WRITTEN; done: Pick<Tally, "repeated" | "unknownAttempts"> }): void {
  expect(r.lost).toBe(0);
  expect(r.state).toEqual(NOTHING_HALF_WRITTEN);
  expect(r.done.repeated).toBeLessThanOrEqual(r.done.unknownAttempts);
}

export async function halfWritten(rig: Rig): Promise<typeof NOTHING_HALF_WRITTEN> {
  const sql = (q: string) => rig.core.prisma.$queryRawUnsafe<{ n: number }[]>(q).then((r) => Number(r[0]?.n ?? 0));
  return {
    // every handled text gets exactly one greeting, written in the same transaction as the text's row
    unpairedContacts: await sql(`SELECT count(*)::int AS n FROM (SELECT contact_id, count(*) FILTER (WHERE direction = 'inbound') AS i,
      count(*) FILTER (WHERE direction = 'outbound') AS o FROM messages GROUP BY contact_id) x WHERE i <> o`),
    sentWithoutWamid: await sql(`SELECT count(*)::int AS n FROM messages WHERE direction = 'outbound' AND status IN ('sent','delivered','read') AND wamid IS NULL`),
    openRows: await sql(`SELECT count(*)::int AS n FROM messages WHERE direction = 'outbound' AND status IN ('queued','sending')`),
    pendingAttempts: await sql(`SELECT count(*)::int AS n FROM send_attempts WHERE outcome = 'pending'`),
    duplicateWamids: await sql(`SELECT count(*)::int AS n FROM (SELECT wamid FROM messages WHERE wamid IS NOT NULL GROUP BY tenant_id, wamid HAVING count(*) > 1) d`),
  };
}

import type { Config } from "../../src/config/env";
import type { MessageHandler } from "../../src/conversation/router";
import type { ActionRegistry } from "../../src/journeys/actions";
import type { Clock } from "../../src/shared/clock";
import { createLogger } from "../../src/observability/logger";
import { buildCore, ensureDefaultTenant, type Core } from "../../src/main/core";
import { startHttp, type RunningServer } from "../../src/main/http-server";
import { startWorkers, type RunningWorkers } from "../../src/main/workers";
import { createSandbox } from "../../src/sandbox/sandbox";
import type { Sandbox, SandboxOptions } from "../../src/sandbox/types";
import { createTestDatabase, type TestDatabase } from "./db";
import { testConfig } from "./env";

export interface TestSystem {
  config: Config;
  core: Core;
  http: RunningServer;
  workers: RunningWorkers | null;
  sandbox: Sandbox;
  sandboxUrl: string;
  tenantId: string;
  /** the test database (reuse it in another system with `database`, and `keepDatabase` on the first) */
  database: TestDatabase;
  close(): Promise<void>;
}

/**
 * The whole bot on real PostgreSQL (a fresh database) and Redis (its own queue prefix), with the Cloud API
 * sandbox as Meta on an ephemeral port: webhooks go sandbox → bot, sends go bot → sandbox.
 */
export async function startTestSystem(
  opts: { env?: Record<string, string>; workers?: boolean; sandbox?: Partial<SandboxOptions>; fastRetries?: boolean; handlers?: MessageHandler[]; clock?: Clock; captureLogs?: string[]; actions?: ActionRegistry[];
    /** run on this database instead of a fresh one (e.g. a restart with other settings) */
    database?: TestDatabase;
    /** close() leaves the database in place (another system reuses it) */
    keepDatabase?: boolean } = {},
): Promise<TestSystem> {
  const db = opts.database ?? (await createTestDatabase());
  const base = testConfig({ DATABASE_URL: db.url, ...opts.env });
  const sandbox = createSandbox({
    appSecret: base.WHATSAPP_APP_SECRET,
    phoneNumbers: [{ phoneNumberId: base.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: base.WHATSAPP_DISPLAY_PHONE_NUMBER, accessToken: base.WHATSAPP_ACCESS_TOKEN }],
    webhookRetry: { attempts: 3, baseDelayMs: 50 },
    ...opts.sandbox,
  });
  const sandboxServer = await sandbox.listen(0, "127.0.0.1");
  const config: Config = { ...base, GRAPH_API_BASE_URL: sandboxServer.url };
  // never the pretty (worker-thread) logger, also for a test that opts into NODE_ENV=development
  const logger = opts.captureLogs
    ? createLogger({ level: config.LOG_LEVEL, destination: { write: (line: string) => void opts.captureLogs!.push(line) } })
    : createLogger({ level: config.LOG_LEVEL });
  const core = buildCore(config, { handlers: opts.handlers, clock: opts.clock, logger, actions: opts.actions });
  const tenant = await ensureDefaultTenant(core);
  const workers =
    opts.workers === false
      ? null
      : await startWorkers(core, {
          // a job still running at close() is cut after 10 s (and logged), well inside the 30 s hook timeout
          shutdownGraceMs: 10_000,
          ...(opts.fastRetries === false
            ? {}
            : {
                backoff: { baseMs: 20, capMs: 200, pairBaseMs: 20, pairCapMs: 400, maxRetryAfterMs: 1_500 },
                eventBackoff: { baseMs: 50, factor: 2, capMs: 500, jitter: 0.2, maxRetryAfterMs: 500 },
              }),
        });
  const http = await startHttp(core, { port: 0, host: "127.0.0.1", onTenantCreated: (t) => sandbox.addPhoneNumber(t) });
  sandbox.setWebhookUrl(`${http.url}/webhook`);
  return {
    config,
    core,
    http,
    workers,
    sandbox,
    sandboxUrl: sandboxServer.url,
    tenantId: tenant.id,
    database: db,
    async close() {
      // each step timed: one that takes long is named in the test output (a hook timeout alone says nothing)
      const step = async (name: string, fn: () => Promise<unknown>) => {
        const t0 = Date.now();
        const slow = setInterval(() => {
          const ms = Date.now() - t0;
          // a PostgreSQL pool that cannot end waits for a connection still checked out: show what each one does
          void (name === "core.close" && db.activity ? db.activity() : Promise.resolve([]))
            .catch((err: Error) => [`(pg_stat_activity unavailable: ${err.message})`])
            .then((lines) => console.warn([`startTestSystem.close: ${name} still running after ${ms} ms`, ...lines.map((l) => `  pg: ${l}`)].join("\n")));
        }, 5_000);
        try {
          await fn();
        } finally {
          clearInterval(slow);
        }
      };
      await step("http.close", () => http.close());
      await step("workers.close", async () => workers?.close());
      await step("sandbox.close", () => sandbox.close());
      await step("sandboxServer.close", () => sandboxServer.close());
      await step("queues.obliterate", () => Promise.allSettled(Object.values(core.queues).map((q) => q.obliterate({ force: true }))));
      await step("core.close", () => core.close());
      if (!opts.keepDatabase) await step("db.drop", () => db.drop());
    },
  };
}

/** Polls until `check` returns a truthy value (or throws on timeout with the last value seen). */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 25): Promise<Exclude<T, null | undefined | false | 0 | "">> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await check();
    if (last) return last as Exclude<T, null | undefined | false | 0 | "">;
    if (Date.now() > until) throw new Error(`waitFor timed out; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A handler that answers every text with "echo: <text>", to see order end to end. */
export const echoHandler: MessageHandler = {
  name: "echo",
  async handle({ message }) {
    const body = (message as { text?: { body?: string } }).text?.body;
    return typeof body === "string" ? { replies: [{ type: "text", text: { body: `echo: ${body}` } }] } : null;
  },
};

/** The code carried by the latest authentication template the sandbox received for this customer. */
export function latestCode(sandbox: Sandbox, customerDigits: string): string | null {
  const templates = sandbox.conversation(customerDigits).filter((m) => m.direction === "outbound" && m.type === "template");
  const last = templates[templates.length - 1];
  if (!last) return null;
  const t = last.payload as { components?: { type: string; parameters?: { text?: string }[] }[] };
  return t.components?.find((c) => c.type === "body")?.parameters?.[0]?.text ?? null;
}

import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import type { Config } from "../../src/config/env";

/**
 * The bot's processes as production runs them (`node --import tsx src/main/{worker,api,all}.ts`), started by a test:
 * the chaos, operations and scale-out tests kill, signal and watch them.
 */
const ROOT = path.join(__dirname, "..", "..");

export type BotScript = "worker" | "api" | "all";

export interface BotProcess {
  name: string;
  child: ChildProcess;
  /** everything it wrote (the last 2 MB) */
  output(): string;
  /** resolves once its output matches (rejects if it exits first or after `ms`) */
  ready(pattern?: RegExp, ms?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  running(): boolean;
  /** sends the signal and waits for the exit */
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const READY: Record<BotScript, RegExp> = {
  worker: /"msg":"workers started"/,
  api: /"msg":"API started"/,
  all: /"msg":"API and workers started"/,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The environment of a bot process for a test's configuration: nothing inherited but PATH and HOME; `extra` wins. */
export function botProcessEnv(config: Config, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    NODE_ENV: "test",
    DATABASE_URL: config.DATABASE_URL,
    REDIS_URL: config.REDIS_URL,
    QUEUE_PREFIX: config.QUEUE_PREFIX,
    WHATSAPP_APP_SECRET: config.WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN: config.WHATSAPP_VERIFY_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID: config.WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_DISPLAY_PHONE_NUMBER: config.WHATSAPP_DISPLAY_PHONE_NUMBER,
    WHATSAPP_ACCESS_TOKEN: config.WHATSAPP_ACCESS_TOKEN,
    ADMIN_API_KEY: config.ADMIN_API_KEY,
    SECRETS_KEY: config.SECRETS_KEY,
    GRAPH_API_BASE_URL: config.GRAPH_API_BASE_URL,
    LOG_LEVEL: "info",
    ...extra,
  };
}

/**
 * Starts one; `onLine` sees each complete line it writes (stdout and stderr). With `build` (an output folder of
 * `scripts/build.js`) it runs the compiled code instead, as the container does: `node <build>/src/main/<script>.js`.
 */
export function spawnBot(script: BotScript, env: Record<string, string>, name: string = script, onLine?: (line: string) => void, build?: string): BotProcess {
  const args = build ? [path.join(build, "src", "main", `${script}.js`)] : ["--import", "tsx", `src/main/${script}.ts`];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let partial = "";
  const append = (d: Buffer) => {
    const text = d.toString();
    out += text;
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
    if (onLine) {
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  };
  child.stdout!.on("data", append);
  child.stderr!.on("data", append);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  return {
    name,
    child,
    output: () => out,
    exited,
    running: () => !done,
    async ready(pattern = READY[script], ms = 60_000) {
      const until = Date.now() + ms;
      while (!pattern.test(out)) {
        if (done) throw new Error(`${name} exited before it was ready:\n${out.slice(-4000)}`);
        if (Date.now() > until) throw new Error(`${name} not ready after ${ms} ms:\n${out.slice(-4000)}`);
        await sleep(50);
      }
    },
    async kill(signal) {
      if (!done) child.kill(signal);
      return exited;
    },
  };
}

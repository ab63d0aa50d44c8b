import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import request from "supertest";
import { startRig, type Rig } from "../chaos/harness";
import { spawnBot, type BotProcess } from "../helpers/bot-process";
import { waitFor } from "../helpers/system";
import { sparePort } from "./own-redis";

/**
 * The production build (`npm run build`, what the container runs): compiled with tsc into <out>/src, the web
 * assets copied beside it, and flows/, docs/openapi.yaml and package.json found from the project root. A compiled
 * `all` process is started against real PostgreSQL and Redis with the sandbox as Meta: it serves its pages and
 * documents, answers a customer with a built-in flow, and exits cleanly on SIGTERM.
 */
jest.setTimeout(120_000);

const ROOT = path.join(__dirname, "..", "..");
// inside the project (the compiled code finds the project root by walking up), in git-ignored dist/
const OUT = path.join(ROOT, "dist", `test-build-${randomBytes(4).toString("hex")}`);

let rig: Rig;
let bot: BotProcess | null = null;
let base: string;

beforeAll(async () => {
  execFileSync(process.execPath, [path.join(ROOT, "scripts", "build.js"), "--out-dir", OUT], { cwd: ROOT, stdio: "pipe" });
  rig = await startRig();
  const port = await sparePort();
  base = `http://127.0.0.1:${port}`;
  rig.sandbox.setWebhookUrl(`${base}/webhook`);
  bot = spawnBot("all", rig.env({ PORT: String(port) }), "compiled all", undefined, OUT);
  await bot.ready();
});

afterAll(async () => {
  await bot?.kill("SIGKILL");
  await rig?.close();
  rmSync(OUT, { recursive: true, force: true });
});

describe("the compiled build", () => {
  it("holds the compiled entry points and the web assets, and no test code", () => {
    for (const f of ["src/main/all.js", "src/main/api.js", "src/main/worker.js", "src/web/console/assets/console.js", "src/web/sandbox/assets/chat.js"]) {
      expect(existsSync(path.join(OUT, f))).toBe(true);
    }
    expect(existsSync(path.join(OUT, "test"))).toBe(false);
  });

  it("runs on node alone: ready, serves the console and its assets and the OpenAPI document", async () => {
    expect(bot!.output()).not.toMatch(/tsx/);
    expect((await request(base).get("/readyz")).status).toBe(200);
    const page = await request(base).get("/console");
    expect(page.status).toBe(200);
    expect(page.text).toContain("<form");
    const script = await request(base).get("/console/assets/console.js");
    expect(script.status).toBe(200);
    expect(script.headers["content-type"]).toMatch(/javascript/);
    const openapi = await request(base).get("/openapi.json");
    expect(openapi.status).toBe(200);
    expect(openapi.body.openapi).toMatch(/^3\./);
  });

  it("answers a customer with a built-in flow (found in flows/ from the compiled code), then exits 0 on SIGTERM", async () => {
    await rig.sandbox.injectInbound({ from: "14155550177", text: "Verify my number" });
    const reply = await waitFor(() => rig.sandbox.conversation("14155550177").find((m) => m.direction === "outbound"), 30_000);
    expect(reply.buttons?.map((b) => b.replyId)).toContain("verify_send");
    const exit = await bot!.kill("SIGTERM");
    expect(exit.code).toBe(0);
    expect(bot!.output()).toContain("shutting down");
  });
});

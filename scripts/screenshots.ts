/**
 * `npm run screenshots`: starts the demo (on its own port, database and Redis prefix), drives Debian's Chromium
 * through a verification in the chat sandbox, signs in to the console, and saves docs/images/sandbox.png and
 * docs/images/console.png (plus console-verifications.png and sandbox-phone.png). The throwaway database is dropped afterwards.
 */
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import IORedis from "ioredis";
import { Client } from "pg";
import { chromium, type Page } from "playwright-core";

const ROOT = path.resolve(__dirname, "..");
const OUT = path.join(ROOT, "docs", "images");
const PORT = Number(process.env.SCREENSHOT_PORT ?? 3917);
const ADMIN_DB = process.env.SCREENSHOT_ADMIN_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const DB_NAME = "wabot_screenshots";
const ADMIN_KEY = "demo-admin-key-not-for-production";
const BASE = `http://localhost:${PORT}`;

async function dropDatabase(): Promise<void> {
  const pg = new Client({ connectionString: ADMIN_DB });
  await pg.connect();
  try {
    await pg.query(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`);
  } finally {
    await pg.end();
  }
}

/** The demo's queues and sessions under this run's prefix. */
async function clearRedis(): Promise<void> {
  const redis = new IORedis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", "wabot-screenshots:*", "COUNT", 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

function startDemo(): Promise<{ stop(): Promise<void> }> {
  const db = new URL(ADMIN_DB);
  db.pathname = `/${DB_NAME}`;
  const child = spawn(process.execPath, [require.resolve("tsx/cli"), "src/main/demo.ts"], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(PORT), DATABASE_URL: db.toString(), QUEUE_PREFIX: "wabot-screenshots", PUBLIC_BASE_URL: BASE, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the demo did not start within 60 s:\n${out}`)), 60_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("Console:")) {
        clearTimeout(timer);
        resolve({ stop });
      }
    });
    child.once("exit", (code) => reject(new Error(`the demo exited (${code}):\n${out}`)));
  });
}

async function verifyInSandbox(page: Page): Promise<void> {
  await page.goto(`${BASE}/sandbox`);
  const first = page.locator(".phone").first();
  await first.getByRole("textbox", { name: "Message" }).fill("verify");
  await first.getByRole("button", { name: "Send" }).click();
  await first.getByRole("button", { name: "Send the code" }).click();
  const template = first.locator('[data-type="template"]').last();
  await template.waitFor();
  await template.getByRole("button", { name: /Copy code/ }).click();
  const box = first.getByRole("textbox", { name: "Message" });
  await box.focus();
  await page.keyboard.press("Control+V");
  await page.keyboard.press("Enter");
  await first.locator('[data-from="bot"]', { hasText: "is verified" }).waitFor();
  await template.locator('[data-status="read"]').or(page.locator('[data-type="template"][data-status="read"]')).first().waitFor({ timeout: 15_000 });

  // a second customer opens the menu: a list message
  await page.getByRole("button", { name: "Add a customer" }).click();
  const second = page.locator(".phone").nth(1);
  await second.getByRole("textbox", { name: "Message" }).fill("menu");
  await second.getByRole("button", { name: "Send" }).click();
  await second.locator('[data-from="bot"] .open-list').waitFor();
  await page.getByRole("button", { name: "Developer panel" }).click();
  await page.locator("#webhooks details").first().evaluate((d) => ((d as HTMLDetailsElement).open = true));
  await page.waitForTimeout(1500); // let the last ticks turn blue
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  await dropDatabase();
  const demo = await startDemo();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", args: ["--no-sandbox", "--disable-background-networking"] });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1, permissions: ["clipboard-read", "clipboard-write"] });
    const page = await context.newPage();
    await verifyInSandbox(page);
    await page.screenshot({ path: path.join(OUT, "sandbox.png") });

    await page.goto(`${BASE}/console`);
    await page.getByLabel("Admin key").fill(ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#chart-per-minute canvas").waitFor();
    await page.waitForTimeout(5500); // a second queue-depth sample
    await page.screenshot({ path: path.join(OUT, "console.png") });
    await page.getByRole("link", { name: "Verifications" }).click();
    await page.locator("#verification-table tbody tr").first().waitFor();
    await page.screenshot({ path: path.join(OUT, "console-verifications.png") });

    // the same chat on a phone-sized window
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const phonePage = await phone.newPage();
    await phonePage.goto(`${BASE}/sandbox`);
    await phonePage.locator('[data-from="bot"]', { hasText: "is verified" }).waitFor();
    await phonePage.locator('[data-type="template"]').last().scrollIntoViewIfNeeded();
    await phonePage.screenshot({ path: path.join(OUT, "sandbox-phone.png") });
    process.stdout.write(`screenshots written to ${path.relative(ROOT, OUT)}/\n`);
  } finally {
    await browser.close();
    await demo.stop();
    await dropDatabase().catch(() => undefined);
    await clearRedis().catch(() => undefined);
  }
}

void main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import type { Browser } from "playwright-core";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { describeBrowser, horizontalOverflow, newPage, startWithBrowser } from "./browser";

const CUSTOMER = "+14155550123";

describeBrowser("the chat sandbox in Chromium", () => {
  let sys: TestSystem;
  let browser: Browser;

  beforeAll(async () => {
    [sys, browser] = await startWithBrowser(() => startTestSystem({ sandbox: { statusDelaysMs: { sent: 50, delivered: 150, read: 400 } } }));
  });
  afterAll(async () => {
    await browser?.close();
    await sys?.close();
  });

  it("a person verifies their number by typing and tapping; the code template has its copy button; ticks turn blue", async () => {
    const origin = sys.sandboxUrl.replace("127.0.0.1", "localhost");
    const { page, errors, close } = await newPage(browser, { permissions: ["clipboard-read", "clipboard-write"] });
    try {
      const res = await page.goto(`${origin}/sandbox`);
      expect(res?.status()).toBe(200);
      const csp = res?.headers()["content-security-policy"] ?? "";
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain("unsafe-inline");
      expect(res?.headers()["x-content-type-options"]).toBe("nosniff");

      await expect(page.getByLabel("Customer number").inputValue()).resolves.toBe(CUSTOMER);
      await page.getByRole("textbox", { name: "Message" }).fill("verify");
      await page.getByRole("button", { name: "Send", exact: true }).click();
      await page.locator('[data-from="customer"]', { hasText: "verify" }).waitFor();

      // the bot explains and offers a button: tap it
      await page.getByRole("button", { name: "Send the code" }).click();
      const template = page.locator('[data-from="bot"][data-type="template"]');
      await template.waitFor();
      await expect(template.textContent()).resolves.toMatch(/\d{6} is your verification code/);

      // one tap copies the code; paste it into the box and send it
      await template.getByRole("button", { name: /Copy code/ }).click();
      await page.getByRole("status").filter({ hasText: "Code copied" }).waitFor();
      const code = latestCode(sys.sandbox, "14155550123");
      await expect(page.evaluate<string>("navigator.clipboard.readText()")).resolves.toBe(code);
      const box = page.getByRole("textbox", { name: "Message" });
      await box.focus();
      await page.keyboard.press("Control+V");
      await expect(box.inputValue()).resolves.toBe(code);
      await page.keyboard.press("Enter");

      await page.locator('[data-from="bot"]', { hasText: "is verified" }).waitFor();
      const v = await waitFor(() => sys.core.prisma.verification.findFirst({ where: { tenantId: sys.tenantId, to: CUSTOMER, status: "approved" } }));
      expect(v.purpose).toBe("registration");

      // the code template's ticks: sent → delivered → read (blue)
      await page.locator('[data-from="bot"][data-type="template"][data-status="read"]').waitFor();
      const color = await template.locator(".ticks").evaluate((n) => (globalThis as unknown as { getComputedStyle(e: unknown): { color: string } }).getComputedStyle(n).color);
      expect(color).toBe("rgb(83, 189, 235)");

      // the developer panel: each webhook with its signature, each Cloud API request
      await page.getByRole("button", { name: "Developer panel" }).click();
      await expect(page.locator("#webhooks li").first().textContent()).resolves.toMatch(/X-Hub-Signature-256: sha256=[0-9a-f]{64}/);
      await expect(page.locator("#requests li", { hasText: "/messages" }).count()).resolves.toBeGreaterThan(0);

      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });

  it("the business console shows that verification approved", async () => {
    const { page, errors, close } = await newPage(browser);
    try {
      await page.goto(`${sys.http.url}/console#verifications`);
      await page.getByLabel("Admin key").fill(sys.config.ADMIN_API_KEY);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("link", { name: "Verifications" }).click();
      const row = page.locator("#verification-table tbody tr", { hasText: CUSTOMER });
      await row.waitFor();
      await expect(row.getAttribute("data-status")).resolves.toBe("approved");
      await expect(row.textContent()).resolves.toMatch(/registration.*whatsapp.*approved/);
      // and the conversation, with the code template read
      await page.getByRole("link", { name: "Conversations" }).click();
      await page.locator('.conversation .msg.outbound[data-status="read"]', { hasText: "template verification_code" }).waitFor();
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });

  it("shows the bot's errors instead of swallowing them: a refused send, an undeliverable message", async () => {
    const number = "+5511987650000";
    const { page, errors, close } = await newPage(browser);
    try {
      await page.goto(`${sys.sandboxUrl}/sandbox`);
      await page.getByLabel("Customer number").fill(number);
      await page.getByLabel("Customer number").press("Enter");
      sys.sandbox.addFault({ type: "rate_limit", to: number.slice(1), count: 1 });
      await page.getByRole("textbox", { name: "Message" }).fill("hello there");
      await page.getByRole("button", { name: "Send", exact: true }).click();
      await page.locator(".chat-error", { hasText: "The Cloud API refused a message from the bot: HTTP 400, error 130429" }).waitFor();
      // the bot retries; the reply arrives
      await page.locator('[data-from="bot"]').first().waitFor();

      sys.sandbox.addFault({ type: "undeliverable", to: number.slice(1), count: 1 });
      await page.getByRole("textbox", { name: "Message" }).fill("and again");
      await page.getByRole("button", { name: "Send", exact: true }).click();
      const failed = page.locator('[data-from="bot"][data-status="failed"]');
      await failed.waitFor();
      await expect(failed.textContent()).resolves.toContain("Not delivered: Meta error 131026");
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });

  it("shows several customers side by side, and fits a phone-sized window", async () => {
    const { page, errors, close } = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      await page.goto(`${sys.sandboxUrl}/sandbox`);
      await page.getByRole("textbox", { name: "Message" }).waitFor();
      expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);

      await page.getByRole("button", { name: "Add a customer" }).click();
      const second = page.locator(".phone").nth(1);
      await expect(second.getByLabel("Customer number").inputValue()).resolves.toBe("+447700900123");
      await second.getByLabel("Country").selectOption("ES");
      await expect(second.locator(".e164-value").textContent()).resolves.toBe("+34 7700900123".replace(" ", ""));
      await second.getByLabel("Customer number").fill("612345678");
      await second.getByLabel("Customer number").press("Enter");
      await expect(second.locator(".e164-value").textContent()).resolves.toBe("+34612345678");
      await second.getByRole("textbox", { name: "Message" }).fill("hello");
      await second.getByRole("button", { name: "Send" }).click();
      await second.locator('[data-from="bot"]').first().waitFor();
      // a list message (in Spanish, for a Spanish number): its button opens the rows; tapping one answers with it
      await second.getByRole("textbox", { name: "Message" }).fill("menú");
      await second.getByRole("button", { name: "Send" }).click();
      await second.getByRole("button", { name: "Opciones" }).click();
      await page.getByRole("dialog").getByRole("button", { name: /Verificar mi número/ }).click();
      await second.locator('[data-from="customer"]', { hasText: "Verificar mi número" }).waitFor();
      await second.locator('[data-from="bot"]', { hasText: "Vamos a confirmar que +34612345678 es tu número" }).waitFor();
      // the first customer's chat is untouched by the second's
      await expect(page.locator(".phone").nth(0).locator('[data-from="customer"]', { hasText: "hello" }).count()).resolves.toBe(0);
      expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });
});

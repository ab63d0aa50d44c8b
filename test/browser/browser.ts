import { existsSync } from "node:fs";
import { chromium, type Browser, type BrowserContextOptions, type Page } from "playwright-core";

/** Debian's Chromium (installed by .ci/run when missing); playwright-core downloads no browser. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** The browser tests' `describe`. They always run: without Chromium they fail with the way to install it. */
export function describeBrowser(name: string, fn: () => void): void {
  describe(name, fn);
}

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (as .ci/run does), or set CHROMIUM_PATH`);
  return chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-background-networking"], headless: true });
}

/**
 * Starts a system and the browser side by side. If either fails, the other is closed before the error is thrown:
 * a system left running past its test file would fire its timers into the next file of the same jest worker.
 */
export async function startWithBrowser<T extends { close(): Promise<void> }>(start: () => Promise<T>): Promise<[T, Browser]> {
  const [sys, browser] = await Promise.allSettled([start(), launchBrowser()]);
  if (sys.status === "fulfilled" && browser.status === "fulfilled") return [sys.value, browser.value];
  if (sys.status === "fulfilled") await sys.value.close();
  if (browser.status === "fulfilled") await browser.value.close();
  throw sys.status === "rejected" ? sys.reason : (browser as PromiseRejectedResult).reason;
}

/** Console errors and uncaught exceptions of a page, for "no console errors" checks. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

export async function newPage(browser: Browser, opts: BrowserContextOptions = {}): Promise<{ page: Page; errors: string[]; close(): Promise<void> }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...opts });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors = collectErrors(page);
  return { page, errors, close: () => context.close() };
}

/** No horizontal scroll: the page is no wider than its window. */
export async function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate<number>("document.documentElement.scrollWidth - document.documentElement.clientWidth");
}

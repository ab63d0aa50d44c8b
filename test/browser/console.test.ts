import type { Browser, Page } from "playwright-core";
import request from "supertest";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";
import { describeBrowser, horizontalOverflow, newPage, startWithBrowser } from "./browser";

const CUSTOMER = "+14155550199";

async function signIn(page: Page, base: string, key: string): Promise<void> {
  await page.goto(`${base}/console`);
  await page.getByLabel("Admin key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
}

describeBrowser("the business console in Chromium", () => {
  let sys: TestSystem;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    [sys, browser] = await startWithBrowser(() => startTestSystem());
    base = sys.http.url;
    // a verification approved through the Verify API, as a business backend would
    const admin = `Bearer ${sys.config.ADMIN_API_KEY}`;
    const created = await request(base).post("/v1/verifications").set("Authorization", admin).send({ to: CUSTOMER });
    expect(created.status).toBe(201);
    const code = await waitFor(() => latestCode(sys.sandbox, CUSTOMER.slice(1)));
    const checked = await request(base).post("/v1/verifications/check").set("Authorization", admin).send({ to: CUSTOMER, code });
    expect(checked.body.status).toBe("approved");
  });
  afterAll(async () => {
    await browser?.close();
    await sys?.close();
  });

  it("refuses a wrong key at the sign-in form, then signs in and shows the approved verification", async () => {
    const refused = await newPage(browser);
    try {
      const first = await refused.page.goto(`${base}/console`);
      expect(first?.headers()["content-security-policy"]).toContain("script-src 'self'");
      expect(first?.headers()["x-frame-options"]).toBe("SAMEORIGIN");
      await refused.page.getByLabel("Admin key").fill("not-the-key");
      const [answer] = await Promise.all([refused.page.waitForResponse(`${base}/console/login`), refused.page.getByRole("button", { name: "Sign in" }).click()]);
      expect(answer.status()).toBe(401);
      await expect(refused.page.getByRole("alert").textContent()).resolves.toContain("That key is not valid");
      expect(await refused.page.context().cookies()).toEqual([]);
    } finally {
      await refused.close();
    }

    const { page, errors, close } = await newPage(browser);
    try {
      await page.goto(`${base}/console`);
      await page.getByLabel("Admin key").fill(sys.config.ADMIN_API_KEY);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      const cookies = await page.context().cookies();
      const session = cookies.find((c) => c.name === "wabot_console");
      expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/console" });
      expect(await page.content()).not.toContain(sys.config.ADMIN_API_KEY);

      // charts: verifications per minute and queue depth are drawn, conversion is 100 %
      await page.locator("#chart-per-minute canvas").waitFor();
      await page.locator("#chart-queues canvas").waitFor();
      await waitFor(async () => (await page.locator("#conversion-rate").textContent()) === "100%", 5000);

      await page.getByRole("link", { name: "Verifications" }).click();
      const row = page.locator("#verification-table tbody tr", { hasText: CUSTOMER });
      await row.waitFor();
      await expect(row.getAttribute("data-status")).resolves.toBe("approved");
      await expect(row.textContent()).resolves.toMatch(/whatsapp.*approved.*1 \/ 5/);

      await page.getByRole("link", { name: "Conversations" }).click();
      await page.locator(".conversation", { hasText: CUSTOMER }).waitFor();
      await page.getByRole("link", { name: "Audit trail" }).click();
      await page.locator("#audit-table tbody tr").first().waitFor();
      await page.getByRole("link", { name: "Tenants" }).click();
      await page.locator(".tenant").first().waitFor();
      await page.getByRole("link", { name: "Queues" }).click();
      await page.locator("#queue-table tbody tr").first().waitFor();
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });

  it("refuses a flow with a schema error, with its message, path and line; publishes a valid one", async () => {
    const { page, errors, close } = await newPage(browser);
    try {
      await signIn(page, base, sys.config.ADMIN_API_KEY);
      await page.getByRole("link", { name: "Flows" }).click();
      await page.locator(".flow-item", { hasText: "verify" }).first().waitFor();
      await page.getByRole("button", { name: "New flow" }).click();
      await page.getByLabel("Flow name").fill("broken-one");
      const doc = {
        name: "broken-one",
        triggers: [{ type: "keyword", keywords: ["broken-42"] }],
        steps: [{ id: "answer", type: "send", text: "hi", next: "nowhere" }],
      };
      await page.getByLabel("Flow definition").fill(JSON.stringify(doc, null, 2));
      await page.getByRole("button", { name: "Publish" }).click();
      const error = page.locator(".flow-error").first();
      await error.waitFor();
      await expect(page.locator("#flow-result").textContent()).resolves.toMatch(/^Refused: the flow definition is not valid: 1 error/);
      await expect(error.locator(".path").textContent()).resolves.toBe("steps[0].next");
      await expect(error.locator(".message").textContent()).resolves.toBe("no step with id 'nowhere'");
      // "next" is on line 16 of the pretty-printed document
      await expect(error.getByRole("button").textContent()).resolves.toBe("Line 16");
      expect(await sys.core.flows.get(sys.tenantId, "broken-one")).toBeNull();

      // Validate gives the same, without publishing; a fixed document publishes as version 1
      await page.getByLabel("Flow definition").fill(JSON.stringify({ ...doc, steps: [{ id: "answer", type: "send", text: "hi" }] }, null, 2));
      await page.getByRole("button", { name: "Validate" }).click();
      await page.locator("#flow-result", { hasText: "can be published" }).waitFor();
      await page.getByRole("button", { name: "Publish" }).click();
      await page.locator("#flow-result", { hasText: "Published: broken-one version 1" }).waitFor();
      expect((await sys.core.flows.get(sys.tenantId, "broken-one"))?.version).toBe(1);

      // a second version, then a roll back to the first (a third version, a copy of v1)
      await page.getByLabel("Flow definition").fill(JSON.stringify({ ...doc, steps: [{ id: "answer", type: "send", text: "hi again" }] }, null, 2));
      await page.getByRole("button", { name: "Publish" }).click();
      await page.locator("#flow-result", { hasText: "Published: broken-one version 2" }).waitFor();
      page.once("dialog", (d) => void d.accept());
      await page.getByRole("button", { name: "Roll back to v1" }).click();
      await page.locator("#flow-versions li", { hasText: "v3" }).filter({ hasText: "live" }).waitFor();
      const live = await sys.core.flows.get(sys.tenantId, "broken-one");
      expect(live?.version).toBe(3);
      expect(live?.definition.steps[0]).toMatchObject({ text: "hi" });

      expect(errors).toEqual([]);

      // a state-changing request without the CSRF token is refused, even from the signed-in page itself
      const status = await page.evaluate(async () => {
        const r = await fetch("/console/api/admin/flows/broken-one", { method: "DELETE" });
        return { status: r.status, body: await r.json() };
      });
      expect(status).toEqual({ status: 403, body: { error: { code: "csrf_failed", message: expect.any(String) } } });
      expect(await sys.core.flows.get(sys.tenantId, "broken-one")).not.toBeNull();
    } finally {
      await close();
    }
  });

  it("fits a phone-sized window and the queue dashboard opens behind the same sign-in", async () => {
    const { page, errors, close } = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    try {
      await signIn(page, base, sys.config.ADMIN_API_KEY);
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.locator("#chart-per-minute canvas").waitFor();
      expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);
      await page.getByRole("link", { name: "Flows" }).click();
      await page.locator(".flow-item").first().waitFor();
      expect(await horizontalOverflow(page)).toBeLessThanOrEqual(0);
      expect(errors).toEqual([]);

      const board = await page.goto(`${base}/console/queues`);
      expect(board?.status()).toBe(200);
      await page.getByText("inbound", { exact: false }).first().waitFor();
    } finally {
      await close();
    }
  });

  it("guards sessions over plain HTTP: no session 401, cross-site 403, tenant keys scoped", async () => {
    const agent = request.agent(base);
    expect((await agent.get("/console/api/verifications")).status).toBe(401);
    expect((await agent.get("/console/queues/")).status).toBe(303);
    // sign-in from another site is refused
    const cross = await agent.post("/console/login").set("Origin", "https://evil.example").type("form").send({ key: sys.config.ADMIN_API_KEY });
    expect(cross.status).toBe(403);

    // a tenant key with the read scope: its own tenant only, no queue dashboard, no writes
    const other = await request(base)
      .post("/admin/tenants")
      .set("Authorization", `Bearer ${sys.config.ADMIN_API_KEY}`)
      .send({ phoneNumberId: "998877665544", displayPhoneNumber: "+1 555 000 9999", accessToken: "EAAG-other-tenant-token" });
    expect(other.status).toBe(201);
    const key = await request(base).post(`/admin/tenants/${other.body.id}/api-keys`).set("Authorization", `Bearer ${sys.config.ADMIN_API_KEY}`).send({ scopes: ["read"] });
    const verifyOnly = await request(base).post(`/admin/tenants/${other.body.id}/api-keys`).set("Authorization", `Bearer ${sys.config.ADMIN_API_KEY}`).send({ scopes: ["verify"] });
    expect((await request(base).post("/console/login").type("form").send({ key: verifyOnly.body.key })).status).toBe(403);

    const signedIn = await agent.post("/console/login").type("form").send({ key: key.body.key });
    expect(signedIn.status).toBe(303);
    const session = await agent.get("/console/api/session");
    expect(session.body).toMatchObject({ tenantId: other.body.id, superAdmin: false, canWrite: false });
    expect((await agent.get("/console/api/verifications")).body.verifications).toEqual([]);
    expect((await agent.get(`/console/api/verifications?tenantId=${sys.tenantId}`)).status).toBe(404);
    expect((await agent.get("/console/queues/")).status).toBe(403);
    const write = await agent
      .put("/console/api/admin/flows/x")
      .set("x-csrf-token", session.body.csrfToken)
      .send({ name: "x", triggers: [], steps: [{ id: "a", type: "send", text: "hi" }] });
    expect(write.status).toBe(403);
    expect(write.body.error.code).toBe("forbidden");
    const wrongOrigin = await agent.post("/console/api/flows/validate").set("x-csrf-token", session.body.csrfToken).set("Origin", "https://evil.example").send({ text: "{}", format: "json" });
    expect(wrongOrigin.status).toBe(403);

    // revoking the key ends its session at the next request; signing out ends it at once
    await request(base).delete(`/admin/api-keys/${key.body.id}`).set("Authorization", `Bearer ${sys.config.ADMIN_API_KEY}`);
    expect((await agent.get("/console/api/session")).status).toBe(401);
    const again = request.agent(base);
    await again.post("/console/login").type("form").send({ key: sys.config.ADMIN_API_KEY });
    const s2 = await again.get("/console/api/session");
    expect((await again.post("/console/logout")).status).toBe(403);
    expect((await again.post("/console/logout").set("x-csrf-token", s2.body.csrfToken)).status).toBe(200);
    expect((await again.get("/console/api/session")).status).toBe(401);
  });
});

import request from "supertest";
import { transaction } from "../../src/db/prisma";
import { emptyPostCommit } from "../../src/otp/delivery";
import { ManualClock } from "../../src/shared/clock";
import { Receiver } from "../events/receiver";
import { latestCode, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * The daily cap on codes (limits.codesPerDay = 3 here): new codes and re-sends count, per tenant and UTC day; the
 * 4th is 429 daily_limit_reached with Retry-After to midnight UTC and never reaches the sandbox; one event a day;
 * test numbers count like any other (a test number only fixes the code). The clock is injected (the sandbox keeps
 * real time).
 */
let sys: TestSystem;
// noon UTC today: the test advances the clock by minutes, and a start just before midnight crossed into the next
// day halfway through (seen on a run at 23:59 UTC); the last test moves to the next day on purpose
const today = new Date();
const clock = new ManualClock(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate(), 12));
const receiver = new Receiver();
// a fictitious number (NANP 555-0100…0199): the only kind a test number may be
const TEST_NUMBER = "+14155550188";
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const api = () => request(sys.http.url);
const create = (to: string) => api().post("/v1/verifications").set(admin()).send({ to });
const templatesTo = (digits: string) =>
  sys.sandbox.requests().filter((r) => r.method === "POST" && (r.body as { type?: string; to?: string }).type === "template" && String((r.body as { to?: string }).to).replace(/\D/g, "") === digits);
const reached = () => receiver.at("/hooks").map((r) => JSON.parse(r.raw)).filter((e) => e.type === "limit.daily_codes_reached");
const toMidnight = () => {
  const now = clock.now();
  return Math.ceil((Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1) - now.getTime()) / 1000);
};

beforeAll(async () => {
  await receiver.listen();
  // events go to a local receiver over http: development mode, opted into explicitly
  sys = await startTestSystem({ clock, env: { OUTBOUND_RECIPIENT_GAP_MS: "5", NODE_ENV: "development" } });
  await api().put(`/admin/tenants/${sys.tenantId}/events`).set(admin()).send({ url: `${receiver.url}/hooks` }).expect(200);
  const patched = await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({
    limits: { codesPerDay: 3 },
    otp: { testNumbers: [{ number: TEST_NUMBER, code: "246810" }] },
  });
  expect(patched.status).toBe(200);
  expect(patched.body.settings.limits).toMatchObject({ codesPerDay: 3, messagingLimitWarnPercent: 80 });
});
afterAll(async () => {
  await sys.close();
  await receiver.close();
});

it("counts new codes and re-sends; the (N+1)th is 429 daily_limit_reached with Retry-After to midnight UTC, and nothing is sent", async () => {
  expect((await create("+14155550101")).status).toBe(201);
  await waitFor(() => latestCode(sys.sandbox, "14155550101"));
  clock.advance(31_000); // past the re-send cool-down: the same code again, counted
  expect((await create("+14155550101")).status).toBe(201);
  await waitFor(() => templatesTo("14155550101").length === 2);
  expect((await create("+14155550102")).status).toBe(201);
  expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(3);

  const refused = await create("+14155550103");
  expect(refused.status).toBe(429);
  expect(refused.body.error.code).toBe("daily_limit_reached");
  expect(refused.headers["retry-after"]).toBe(String(toMidnight()));
  // a re-send is a code too
  clock.advance(61_000);
  const resend = await create("+14155550101");
  expect(resend.status).toBe(429);
  expect(resend.body.error.code).toBe("daily_limit_reached");

  await waitFor(() => templatesTo("14155550102").length === 1);
  await new Promise((r) => setTimeout(r, 300));
  expect(templatesTo("14155550103")).toHaveLength(0);
  expect(templatesTo("14155550101")).toHaveLength(2);
  expect(await sys.core.prisma.verification.count({ where: { tenantId: sys.tenantId, to: "+14155550103" } })).toBe(0);
  expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(3);
});

it("tells the business once a day (event and audit row)", async () => {
  const [event] = await waitFor(() => reached().length > 0 && reached(), 10_000);
  const now = clock.now();
  expect(event).toMatchObject({
    type: "limit.daily_codes_reached",
    tenantId: sys.tenantId,
    data: { day: now.toISOString().slice(0, 10), limit: 3, count: 3, resetsAt: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString() },
  });
  expect((await create("+14155550104")).status).toBe(429);
  await new Promise((r) => setTimeout(r, 400));
  expect(reached()).toHaveLength(1);
  expect(await sys.core.prisma.auditEvent.count({ where: { tenantId: sys.tenantId, type: "limit.daily_codes_reached" } })).toBe(1);
});

it("does not exempt test numbers, and enforces the cap on the in-transaction path the chat uses", async () => {
  const test = await create(TEST_NUMBER);
  expect(test.status).toBe(429);
  expect(test.body.error.code).toBe("daily_limit_reached");
  await new Promise((r) => setTimeout(r, 200));
  expect(templatesTo(TEST_NUMBER.slice(1))).toHaveLength(0);
  expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(3);

  // the Prisma path (a code asked for in the chat runs inside the conversation's transaction)
  const inTx = transaction(sys.core.prisma, (tx) =>
    sys.core.verifications.create({ tenantId: sys.tenantId, actor: "chat:test" }, { to: "+14155550105" }, { tx, post: emptyPostCommit() }),
  );
  await expect(inTx).rejects.toMatchObject({ code: "daily_limit_reached", retryAfterSeconds: toMidnight() });
});

it("gives the place back when the send is refused after being counted, and starts again the next UTC day", async () => {
  // next day (UTC): a fresh count
  const now = clock.now();
  clock.set(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1, 0, 0, 5)));
  expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(0);
  expect((await create("+14155550106")).status).toBe(201);
  expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(1);
  // under the cap a test number gets its fixed code, and counts
  expect((await create(TEST_NUMBER)).status).toBe(201);
  expect(await waitFor(() => latestCode(sys.sandbox, TEST_NUMBER.slice(1)))).toBe("246810");
  expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(2);

  // the number's own send limit refuses inside the transaction: nothing is counted
  const tight = await api().patch(`/admin/tenants/${sys.tenantId}/settings`).set(admin()).send({ otp: { maxSendsPerNumber: 1, testNumbers: [{ number: TEST_NUMBER, code: "246810" }] } });
  expect(tight.status).toBe(200);
  clock.advance(9 * 60_000); // the code is replaced (under a minute of life left), which needs a send
  const limited = await create("+14155550106");
  expect(limited.status).toBe(429);
  expect(limited.body.error.code).toBe("send_limit_reached");
  expect(await sys.core.dailyCodes.count(sys.tenantId)).toBe(2);
});

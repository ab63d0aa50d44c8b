import { Writable } from "node:stream";
import { signBody } from "../../src/ingest/verify-signature";
import { AccessLog } from "../../src/observability/access-log";
import { createLogger } from "../../src/observability/logger";
import { startRig, until, type BotProcess, type Rig } from "../chaos/harness";
import { contact, envelope, messages } from "../helpers/payloads";
import { sparePort } from "./own-redis";

/**
 * What an operator sees at the default log level (info) of the real process (`npm start`, its stdout as pino JSON):
 * one access line per HTTP request (request id, method, route pattern, status, ms), the inbound worker's line for
 * each handled message with the webhook's request id, and above ACCESS_LOG_MAX_PER_SECOND summaries instead of
 * lines — every request counted, none dropped. No phone number in full, no code, no text.
 */
jest.setTimeout(90_000);

const MAX_PER_SECOND = 5;
let rig: Rig;
let bot: BotProcess;
let url: string;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  rig = await startRig();
  const port = await sparePort();
  url = `http://127.0.0.1:${port}`;
  // LOG_LEVEL info: the default
  bot = rig.spawn("all", { PORT: String(port), LOG_LEVEL: "info", ACCESS_LOG_MAX_PER_SECOND: String(MAX_PER_SECOND) }, "all");
  await bot.ready();
  rig.sandbox.setWebhookUrl(`${url}/webhook`);
});
afterAll(async () => {
  await rig?.close();
});

function parsed(): Record<string, unknown>[] {
  lines.length = 0;
  for (const l of bot.output().split("\n")) {
    if (!l.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      // a partial last line
    }
  }
  return lines;
}

const CUSTOMER = "447700900777";
const SECRET_TEXT = "my words are kumquat-9191";

it("writes one access line per request with its route pattern, and the worker's line for the message carries the webhook's request id", async () => {
  const reqId = "acc-log.0001";
  const raw = JSON.stringify(envelope({ phoneNumberId: rig.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact(CUSTOMER)], messages: [messages.text(CUSTOMER, SECRET_TEXT)] }));
  const res = await fetch(`${url}/webhook`, { method: "POST", headers: { "content-type": "application/json", "x-request-id": reqId, "x-hub-signature-256": signBody(raw, rig.config.WHATSAPP_APP_SECRET) }, body: raw });
  expect(res.status).toBe(200);
  // a Verify API route with an id in its path, and a phone number in a body
  const admin = { Authorization: `Bearer ${rig.config.ADMIN_API_KEY}`, "content-type": "application/json" };
  const created = await fetch(`${url}/v1/verifications`, { method: "POST", headers: { ...admin, "x-request-id": "acc-log.0002" }, body: JSON.stringify({ to: "+14155550123" }) });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  expect((await fetch(`${url}/v1/verifications/${id}`, { headers: { ...admin, "x-request-id": "acc-log.0003" } })).status).toBe(200);
  expect((await fetch(`${url}/v1/verifications/${id}/nothing-here`, { headers: { ...admin, "x-request-id": "acc-log.0004" } })).status).toBe(404);

  const worker = await until(() => parsed().find((l) => l.msg === "inbound message processed" && l.reqId === reqId), 30_000, () => bot.output().slice(-2000));
  expect(worker).toMatchObject({ level: 30, outcome: "handled", wamid: expect.stringMatching(/^wamid\./), ms: expect.any(Number) });
  const access = (r: string) => parsed().filter((l) => l.msg === "request" && l.reqId === r);
  // the process writes its lines asynchronously: wait for the last request's
  const hook = await until(() => access(reqId)[0], 5_000);
  await until(() => access("acc-log.0004")[0], 5_000);
  expect(hook).toMatchObject({ level: 30, method: "POST", route: "/webhook", status: 200, ms: expect.any(Number) });
  expect(access(reqId)).toHaveLength(1);
  expect(access("acc-log.0002")).toEqual([expect.objectContaining({ method: "POST", route: "/v1/verifications", status: 201 })]);
  expect(access("acc-log.0003")).toEqual([expect.objectContaining({ method: "GET", route: "/v1/verifications/:id", status: 200 })]);
  // no route matched: the raw path (ids, numbers) is not logged
  expect(access("acc-log.0004")).toEqual([expect.objectContaining({ method: "GET", route: "(unmatched)", status: 404 })]);
  const out = bot.output();
  expect(out).not.toContain(id);
  expect(out).not.toContain("14155550123");
  expect(out).not.toContain(CUSTOMER);
  expect(out).not.toContain("kumquat");
});

it("above ACCESS_LOG_MAX_PER_SECOND aggregates the rest of the second per route and status, counting every request", async () => {
  // a second of its own: the earlier requests' window (and the sandbox's status webhooks) are over
  await new Promise((r) => setTimeout(r, 1_100));
  const before = parsed().length;
  const N = 60;
  const statuses = await Promise.all(Array.from({ length: N }, () => fetch(`${url}/healthz`).then((r) => r.status)));
  expect(statuses.every((s) => s === 200)).toBe(true);
  // the summaries are written when their second ends
  await new Promise((r) => setTimeout(r, 1_500));
  const mine = parsed().slice(before);
  const single = mine.filter((l) => l.msg === "request" && l.route === "/healthz");
  const summaries = mine.filter((l) => l.msg === "requests aggregated" && l.route === "/healthz");
  expect(summaries.length).toBeGreaterThan(0);
  for (const s of summaries) expect(s).toMatchObject({ level: 30, method: "GET", status: 200, count: expect.any(Number), p50Ms: expect.any(Number), maxMs: expect.any(Number) });
  // nothing dropped: every request is in its own line or in a summary
  expect(single.length + summaries.reduce((n, s) => n + (s.count as number), 0)).toBe(N);
  // and the individual lines stay within the limit per second (the burst may straddle two windows)
  expect(single.length).toBeGreaterThan(0);
  expect(single.length).toBeLessThanOrEqual(2 * MAX_PER_SECOND);
});

describe("AccessLog (its own clock)", () => {
  it("writes up to the limit per second, then one summary per method, route and status with count, p50 and max", () => {
    const out: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, cb) => (out.push(JSON.parse(chunk.toString())), cb()) });
    let now = 10_000;
    const log = new AccessLog(createLogger({ level: "info", destination: sink }), 2, () => now);
    for (const ms of [1, 2, 3, 4, 5, 100]) log.record({ method: "GET", route: "/healthz", status: 200, ms });
    log.record({ method: "POST", route: "/webhook", status: 503, ms: 7 });
    now += 1_000; // the next second: the summaries of the last one first
    log.record({ method: "GET", route: "/healthz", status: 200, ms: 9 });
    log.flush();
    expect(out.map((l) => l.msg)).toEqual(["request", "request", "requests aggregated", "requests aggregated", "request"]);
    expect(out[2]).toMatchObject({ route: "/healthz", status: 200, count: 4, p50Ms: 4, maxMs: 100 });
    expect(out[3]).toMatchObject({ route: "/webhook", method: "POST", status: 503, count: 1, p50Ms: 7, maxMs: 7 });
    expect(out[4]).toMatchObject({ route: "/healthz", ms: 9 });
  });
});

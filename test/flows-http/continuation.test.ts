import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { PgSql, sqlFor } from "../../src/db/sql";
import { setCallback } from "../../src/events/callback";
import { verifyRequest } from "../../src/events/signature";
import { FlowCalls } from "../../src/flows/flow-call";
import { startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * Issue 16, item 2: a flow's http step is a job, called outside any transaction, whose answer comes back to the
 * engine under the contact's lock. Before: the call ran inside the message's transaction, so a failure after it
 * retried the whole message and called the business again (a new booking each time), and a slow endpoint held a
 * pool connection and the contact's lock for as long as it took — and delayed every other contact behind it.
 */
let sys: TestSystem;
let server: Server;
let base = "";
let secret = "";
type Seen = { path: string; key: string | undefined; signature: string; raw: string; url: string; method: string };
const seen: Seen[] = [];
/** answers per path: called with the request, answers now or later */
const routes = new Map<string, (req: IncomingMessage, res: ServerResponse, n: number) => void>();
const admin = () => ({ Authorization: `Bearer ${sys.config.ADMIN_API_KEY}` });
const publish = async (doc: Record<string, unknown>) => {
  const res = await request(sys.http.url).put(`/admin/flows/${doc.name as string}`).set(admin()).send(doc);
  expect([200, 201]).toContain(res.status);
};
const botTexts = (digits: string) => sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound").map((m) => m.text);
const say = (digits: string, text: string) => sys.sandbox.injectInbound({ from: digits, text });
const callsTo = (path: string) => seen.filter((s) => s.path === path);
const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
/** no flow call queued, running or waiting for a retry */
const callsSettled = async () => {
  const c = await sys.core.queues.flowCalls.getJobCounts("active", "waiting", "delayed", "prioritized", "waiting-children");
  return Object.values(c).every((n) => n === 0);
};

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0]!;
      const entry: Seen = { path, key: req.headers["idempotency-key"] as string | undefined, signature: String(req.headers["x-wabot-signature"] ?? ""), raw: Buffer.concat(chunks).toString("utf8"), url: req.url ?? "/", method: req.method ?? "" };
      seen.push(entry);
      const h = routes.get(path);
      if (h) h(req, res, callsTo(path).length);
      else json(res, 200, {});
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // the business endpoint is a local HTTP server: development mode, opted into explicitly
  sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5", NODE_ENV: "development", INBOUND_CONCURRENCY: "16" } });
  secret = (await setCallback(sys.core.prisma, sys.core.keyring, sys.tenantId, `${base}/events`, { dev: true })).secret!;
  const row = await sys.core.prisma.tenant.findUniqueOrThrow({ where: { id: sys.tenantId } });
  const settings = row.settings as Record<string, any>;
  await sys.core.prisma.tenant.update({ where: { id: sys.tenantId }, data: { settings: { ...settings, flows: { ...(settings.flows ?? {}), httpAllowedHosts: ["127.0.0.1"] } } } });
  sys.core.tenants.invalidate();
}, 60_000);
afterAll(async () => {
  await sys?.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

it("a failure after the call retries without calling again: one call per step execution, one Idempotency-Key each", async () => {
  let ref = 0;
  routes.set("/book", (_req, res, n) => {
    // the second execution's first attempt meets a 503: the step's retry sends the same key
    if (n === 2) return json(res, 503, { error: "busy" });
    json(res, 200, { ref: `R${++ref}` });
  });
  await publish({
    name: "booking",
    triggers: [{ type: "keyword", keywords: ["book a table"] }],
    steps: [
      { id: "book", type: "http", url: `${base}/book`, save: "api", retries: 1, next: "done", onError: "oops" },
      { id: "done", type: "send", text: "Booked: {{api.ref}}" },
      { id: "oops", type: "send", text: "booking failed: {{http_error}}" },
    ],
  });
  // the reply's outbox insert fails once (a real failure inside the transaction that writes it)
  await sys.core.prisma.$executeRawUnsafe(`CREATE SEQUENCE IF NOT EXISTS test_fail_once`);
  await sys.core.prisma.$executeRawUnsafe(`CREATE OR REPLACE FUNCTION test_fail_once() RETURNS trigger AS $$
    BEGIN IF nextval('test_fail_once') = 1 THEN RAISE EXCEPTION 'injected failure after the call'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`);
  await sys.core.prisma.$executeRawUnsafe(`CREATE TRIGGER test_fail_once BEFORE INSERT ON messages FOR EACH ROW
    WHEN (NEW.direction = 'outbound' AND NEW.payload::text LIKE '%Booked:%') EXECUTE FUNCTION test_fail_once()`);

  await say("14155550301", "book a table");
  await waitFor(() => botTexts("14155550301").includes("Booked: R1"), 20_000);
  await waitFor(callsSettled, 10_000);
  const failed = await sys.core.prisma.$queryRawUnsafe<{ last_value: bigint }[]>(`SELECT last_value FROM test_fail_once`);
  expect(Number(failed[0]!.last_value)).toBeGreaterThanOrEqual(2); // the failure happened, and the retry wrote the reply
  expect(callsTo("/book")).toHaveLength(1);
  const first = callsTo("/book")[0]!;
  expect(first.key).toMatch(UUID);
  expect(botTexts("14155550301").filter((t) => t.startsWith("Booked"))).toEqual(["Booked: R1"]);
  // the key is a header beside the v2 signature, which still verifies over method, target, timestamp and body
  expect(verifyRequest(secret, first.signature, { method: first.method, pathAndQuery: first.url, body: first.raw })).toMatchObject({ ok: true });

  // the customer runs the flow again: a new execution, a new key; its retry (after a 503) keeps that key
  await say("14155550301", "book a table");
  await waitFor(() => botTexts("14155550301").includes("Booked: R2"), 20_000);
  await waitFor(callsSettled, 10_000);
  const calls = callsTo("/book");
  expect(calls).toHaveLength(3);
  expect(calls[1]!.key).toMatch(UUID);
  expect(calls[2]!.key).toBe(calls[1]!.key);
  expect(calls[1]!.key).not.toBe(first.key);
  await sys.core.prisma.$executeRawUnsafe(`DROP TRIGGER test_fail_once ON messages`);
}, 60_000);

it("the answer of a call whose session moved on (cancel, a newer execution) is ignored", async () => {
  const held: ServerResponse[] = [];
  routes.set("/hold", (_req, res) => void held.push(res));
  await publish({
    name: "slowbook",
    triggers: [{ type: "keyword", keywords: ["book slowly"] }],
    steps: [
      { id: "call", type: "http", url: `${base}/hold`, save: "api", timeoutMs: 10_000, next: "done", onError: "oops" },
      { id: "done", type: "send", text: "Slow booking: {{api.ref}}" },
      { id: "oops", type: "send", text: "slow booking failed: {{http_error}}" },
    ],
  });
  const who = "14155550302";
  await say(who, "book slowly");
  await waitFor(() => held.length === 1, 10_000);
  // while the business thinks, the customer cancels: answered at once (no lock is held by the call)
  const t0 = Date.now();
  await say(who, "cancel");
  await waitFor(() => botTexts(who).some((t) => t.startsWith("OK, stopped")), 5_000);
  expect(Date.now() - t0).toBeLessThan(3_000);
  // and starts again: a newer execution of the step, with its own key
  await say(who, "book slowly");
  await waitFor(() => held.length === 2, 10_000);
  const [k1, k2] = callsTo("/hold").map((c) => c.key);
  expect(k1).not.toBe(k2);

  json(held[0]!, 200, { ref: "STALE" }); // the cancelled execution answers: dropped
  await waitFor(async () => (await sys.core.queues.flowCalls.getJobCounts("active")).active === 1, 10_000);
  json(held[1]!, 200, { ref: "FRESH" });
  await waitFor(() => botTexts(who).includes("Slow booking: FRESH"), 10_000);
  await waitFor(callsSettled, 10_000);
  expect(botTexts(who).filter((t) => t.startsWith("Slow booking"))).toEqual(["Slow booking: FRESH"]);
  const session = await sys.core.prisma.session.findFirstOrThrow({ where: { contact: { waId: who } } });
  expect(session.flow).toBeNull(); // ended after the fresh answer, not re-entered by the stale one
}, 60_000);

it("a 10-second endpoint hit by 50 contacts delays nobody else and holds no pool connection while it waits", async () => {
  const held: ServerResponse[] = [];
  routes.set("/slow", (_req, res) => {
    held.push(res);
    setTimeout(() => json(res, 200, { ref: "late" }), 9_500); // within the step's 10 s timeout
  });
  await publish({
    name: "slowlookup",
    triggers: [{ type: "keyword", keywords: ["slow lookup"] }],
    steps: [
      { id: "call", type: "http", url: `${base}/slow`, save: "api", timeoutMs: 10_000, next: "done", onError: "oops" },
      { id: "done", type: "send", text: "Lookup: {{api.ref}}" },
      { id: "oops", type: "send", text: "lookup failed: {{http_error}}" },
    ],
  });
  const slow = Array.from({ length: 50 }, (_, i) => `1415556${String(1000 + i)}`);
  // the same measure with nothing in flight, for comparison (this machine is shared: absolute numbers vary)
  const baseline = percentiles(await greetingLatencies(Array.from({ length: 50 }, (_, i) => `1415558${String(1000 + i)}`)));
  const others = Array.from({ length: 50 }, (_, i) => `1415557${String(1000 + i)}`);
  await Promise.all(slow.map((d) => say(d, "slow lookup")));
  // all 50 calls are in flight at once (none waits behind another)
  await waitFor(() => held.length === 50, 15_000);
  const t0 = Date.now();

  // while they wait: no connection is checked out of the pool, none is in a transaction or a lock wait
  // (polled for a moment: a sweep or a late status of the baseline may hold one briefly; the 50 calls would hold
  // one each, for the whole 9.5 s)
  const pool = (sqlFor(sys.core.prisma) as PgSql).pool;
  const busyNow = async () => {
    const rows = await sys.core.prisma.$queryRawUnsafe<{ state: string; query: string }[]>(
      `SELECT state, query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`,
    );
    return { checkedOut: pool.totalCount - pool.idleCount, rows };
  };
  const idle = await waitFor(async () => {
    const b = await busyNow();
    return b.checkedOut === 0 && b.rows.length === 0 && b;
  }, 3_000);
  expect(idle.checkedOut).toBe(0);
  expect(idle.rows).toEqual([]);

  // 50 other contacts' greetings meanwhile, arriving over one second (50 messages/s)
  const latency = await greetingLatencies(others);
  const { p50, p99, max } = percentiles(latency);
  console.log(`greetings with no call in flight: p50 ${baseline.p50} ms, p99 ${baseline.p99} ms; during 50 slow calls: p50 ${p50} ms, p99 ${p99} ms, max ${max} ms`);
  // under 1 s, or (when this shared machine is itself slower than that with nothing in flight) no more than half a
  // second over its own idle figure; before, every inbound worker waited on the endpoint and p99 was ~9 s
  expect(p99).toBeLessThan(Math.max(1_000, baseline.p99 + 500));
  expect(Date.now() - t0).toBeLessThan(9_000); // all measured while the 50 calls were still waiting
  expect(held.every((r) => !r.writableEnded)).toBe(true);

  // and the slow ones get their answer when the endpoint does
  await waitFor(() => slow.every((d) => botTexts(d).includes("Lookup: late")), 20_000);
}, 90_000);

it("a flow the business starts from the API calls its http step after the start committed, and goes on with the answer", async () => {
  routes.set("/enrich", (_req, res) => json(res, 200, { tier: "gold" }));
  await publish({
    name: "enrich",
    triggers: [{ type: "api" }],
    steps: [
      { id: "lookup", type: "http", url: `${base}/enrich`, body: ["account"], save: "api", next: "route", onError: "oops" },
      { id: "route", type: "branch", cases: [{ when: { var: "api.tier", equals: "gold" }, next: "gold" }], default: "oops" },
      { id: "gold", type: "handoff", reason: "gold customer" },
      { id: "oops", type: "end" },
    ],
  });
  const res = await request(sys.http.url).post("/v1/flows/enrich/start").set(admin()).send({ to: "+14155550303", variables: { account: "A-1" } });
  expect(res.status).toBe(202);
  await waitFor(() => callsTo("/enrich").length === 1, 10_000);
  const call = callsTo("/enrich")[0]!;
  expect(call.key).toMatch(UUID);
  expect(JSON.parse(call.raw)).toMatchObject({ flow: "enrich", step: "lookup", variables: { account: "A-1" } });
  // the answer took the branch: the session is with a person now
  const session = await waitFor(async () => {
    const s = await sys.core.prisma.session.findFirst({ where: { contact: { waId: "14155550303" } } });
    return s?.handoffAt ? s : null;
  }, 10_000);
  expect(session.step).toBe("gold");
}, 30_000);

/** Each customer says hello (one every 20 ms); ms until the bot's first reply reached the sandbox. */
async function greetingLatencies(customers: string[]): Promise<number[]> {
  const latency = new Map<string, number>();
  const sentAt = new Map<string, number>();
  await Promise.all(
    customers.map(async (d, i) => {
      await new Promise((r) => setTimeout(r, i * 20));
      sentAt.set(d, Date.now());
      await say(d, "hello");
    }),
  );
  await waitFor(() => {
    for (const d of customers) if (!latency.has(d) && sentAt.has(d) && botTexts(d).length > 0) latency.set(d, Date.now() - sentAt.get(d)!);
    return latency.size === customers.length;
  }, 8_000, 5);
  return [...latency.values()];
}

function percentiles(values: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: sorted[Math.floor(sorted.length / 2)]!, p99: sorted[Math.ceil(0.99 * sorted.length) - 1]!, max: sorted[sorted.length - 1]! };
}

it("a call whose job Redis refused after the commit is written again by the contact's next message", async () => {
  routes.set("/late", (_req, res) => json(res, 200, { ref: "L1" }));
  await publish({
    name: "latebook",
    triggers: [{ type: "keyword", keywords: ["book late"] }],
    steps: [
      { id: "call", type: "http", url: `${base}/late`, save: "api", next: "done", onError: "oops" },
      { id: "done", type: "send", text: "Late booking: {{api.ref}}" },
      { id: "oops", type: "send", text: "late booking failed: {{http_error}}" },
    ],
  });
  // the enqueue after the commit fails once (what a Redis outage at that moment does)
  const refused = jest.spyOn(FlowCalls.prototype, "enqueue").mockRejectedValueOnce(new Error("Connection is closed."));
  const who = "14155550304";
  await say(who, "book late");
  await waitFor(() => refused.mock.calls.length === 1, 10_000);
  // the message's job is retried and finds its wamid handled; the session still waits for the call
  await waitFor(async () => Object.values(await sys.core.queues.inbound.getJobCounts("active", "waiting", "delayed")).every((n) => n === 0), 10_000);
  const waiting = await sys.core.prisma.session.findFirstOrThrow({ where: { contact: { waId: who } } });
  expect((waiting.state as { call?: { id: string } }).call?.id).toMatch(UUID);
  expect(callsTo("/late")).toHaveLength(0);

  await say(who, "hello?"); // quiet while the flow waits, and it writes the job again
  await waitFor(() => botTexts(who).includes("Late booking: L1"), 10_000);
  expect(callsTo("/late")).toHaveLength(1);
  expect(callsTo("/late")[0]!.key).toBe((waiting.state as { call: { id: string } }).call.id);
  refused.mockRestore();
}, 30_000);

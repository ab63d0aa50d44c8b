import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { OwnRedis, sparePort } from "../ops/own-redis";
import { recordScenario } from "./report";
import { expectNothingLost, customers, halfWritten, repliesPerCustomer, sleep, startRig, tally, until, type BotProcess, type Rig } from "./harness";

/**
 * Fault: Redis stopped and started under load. The Redis is the test's own (a redis-server on a spare port,
 * persisting as production must: append-only file, fsync every second); the machine's shared Redis is never
 * touched. The API and the worker are real processes. While Redis is down the webhook answers 503 (Meta keeps the
 * message and redelivers); nothing answered 200 is lost; both processes resume by themselves when Redis is back.
 */
jest.setTimeout(150_000);

const CUSTOMERS = 20;
let redis: OwnRedis;
let dir: string;
let rig: Rig;
let api: BotProcess;
let worker: BotProcess;
let apiUrl: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), "wabot-chaos-redis-"));
  redis = await OwnRedis.start({ persistDir: dir });
  // Meta redelivery is played by the test (below), so every POST's own answer is seen
  rig = await startRig({ env: { REDIS_URL: redis.url }, sandbox: { webhookRetry: { attempts: 1, baseDelayMs: 50 } } });
  const port = await sparePort();
  apiUrl = `http://127.0.0.1:${port}`;
  api = rig.spawn("api", { PORT: String(port) }, "api");
  worker = rig.spawn("worker", { INBOUND_CONCURRENCY: "8", OUTBOUND_CONCURRENCY: "16", OUTBOUND_RATE_PER_SECOND: "1000", OUTBOUND_TIMEOUT_MS: "5000" }, "worker");
  await Promise.all([api.ready(/"msg":"API started"/), worker.ready(/"msg":"workers started"/)]);
  rig.sandbox.setWebhookUrl(`${apiUrl}/webhook`);
});
afterAll(async () => {
  await redis?.start(); // the rig cleans its queues up
  await rig?.close();
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What Meta does with a webhook that was not answered 200: deliver the same signed bytes again. */
async function redeliver(body: string, signature: string): Promise<number> {
  try {
    const res = await fetch(`${apiUrl}/webhook`, { method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": signature }, body, signal: AbortSignal.timeout(10_000) });
    return res.status;
  } catch {
    return 0;
  }
}

it("answers 503 while Redis is down, loses nothing it answered 200, and resumes by itself", async () => {
  rig.sandbox.addFault({ type: "timeout", timeoutMs: 150, count: 100_000 }); // slow Meta: the queue stays busy
  const numbers = customers("4470022", CUSTOMERS);
  const acked = new Set<string>(); // wamids of POSTs answered 200
  const all: string[] = [];
  const refused: { body: string; signature: string; wamids: string[] }[] = [];
  const statuses: number[] = [];

  const post = async (round: number) => {
    const before = rig.sandbox.webhooks().length;
    const { wamids, status } = await rig.sandbox.injectBatch(numbers.map((from) => ({ from, text: `round ${round}` })));
    all.push(...wamids);
    statuses.push(status);
    if (status === 200) wamids.forEach((w) => acked.add(w));
    else {
      // the webhook of this batch (status webhooks are recorded in between)
      const hook = rig.sandbox.webhooks().slice(before).find((w) => w.kind === "message" && w.body.includes(wamids[0]!))!;
      refused.push({ body: hook.body, signature: hook.signature, wamids });
    }
    return status;
  };

  // before: answered 200, handled
  for (let round = 0; round < 3; round++) expect(await post(round)).toBe(200);
  // Redis stops while the worker is still busy with those (jobs waiting in Redis, replies in flight)
  await until(() => rig.sandbox.requests().filter((r) => r.wamid).length >= 5, 30_000);
  await redis.stop();
  const downAt = Date.now();

  // while it is down: every webhook is refused with 503 (quickly), never 200; readiness says so
  const during: number[] = [];
  for (let round = 3; round < 6; round++) {
    const t = Date.now();
    during.push(await post(round));
    expect(Date.now() - t).toBeLessThan(8_000);
  }
  expect(during).toEqual([503, 503, 503]);
  const ready = await fetch(`${apiUrl}/readyz`).then((r) => r.status);
  expect(ready).toBe(503);
  await sleep(Math.max(0, 2_000 - (Date.now() - downAt))); // down for at least 2 s

  await redis.start();
  const outageMs = Date.now() - downAt;
  // Meta redelivers what was refused; the API answers 200 again without a restart
  for (const r of refused) {
    await until(async () => (await redeliver(r.body, r.signature)) === 200, 30_000, () => `redelivery still refused\n${api.output().slice(-1500)}`, 250);
    r.wamids.forEach((w) => acked.add(w));
  }
  // and new traffic flows
  expect(await post(6)).toBe(200);

  const total = all.length;
  const done = await until(
    async () => {
      const t = await tally(rig, all);
      return t.inboundHandled === total && t.outboundRows === total && t.outboundOpen === 0 ? t : null;
    },
    60_000,
    async () => {
      const handled = new Set((await rig.core.prisma.message.findMany({ where: { direction: "inbound" }, select: { wamid: true } })).map((m) => m.wamid));
      const perRound = Array.from({ length: 7 }, (_, r) => all.slice(r * CUSTOMERS, (r + 1) * CUSTOMERS).filter((w) => handled.has(w)).length);
      const counts = await rig.core.queues.inbound.getJobCounts();
      return `${JSON.stringify(await tally(rig, all))} per round ${perRound} inbound queue ${JSON.stringify(counts)}\n${worker.output().slice(-3000)}`;
    },
    200,
  );
  const state = await halfWritten(rig);
  const ackedHandled = await rig.core.prisma.message.count({ where: { direction: "inbound", wamid: { in: [...acked] } } });
  const perCustomer = repliesPerCustomer(rig, numbers);
  const unanswered = [...perCustomer.values()].filter((n) => n < 7).length;
  const lost = acked.size - ackedHandled + (done.outboundRows - done.outboundSent);

  recordScenario({
    id: "F2-redis-stop-start",
    title: "Redis stopped and started under load",
    section: "faults",
    figures: {
      sent: total,
      handled: done.inboundHandled,
      lost,
      repeatedUnknownOutcome: done.repeated,
      unknownOutcome: done.unknownAttempts,
      "webhook POSTs while Redis was down": during.length,
      "of them answered 503": during.filter((s) => s === 503).length,
      "messages answered 503, then redelivered": refused.reduce((n, r) => n + r.wamids.length, 0),
      "replies sent": done.outboundSent,
      "customers without all their replies": unanswered,
      "processes restarted": 0,
      // messages handled while Redis went away, whose replies' jobs could not be written after the commit: the job's
      // retry hands them over (src/conversation/inbound-handler.ts) instead of the outbox sweeper 30-45 s later
      "messages whose replies were handed over again by the retry": (worker.output().match(/"msg":"replies of an already handled message dispatched again"/g) ?? []).length,
    },
    notes:
      `${CUSTOMERS} customers wrote 7 rounds of texts to a real API process and worker process on a Redis of the test's ` +
      "own (append-only file, fsync every second). After 3 rounds, with the worker still busy, Redis was stopped for a " +
      "few seconds: the 3 rounds posted meanwhile were answered `503` within the producer's fail-fast timeouts (never " +
      "`200`) and `/readyz` said `503`. Redis was started again on the same port and data directory; without any " +
      "restart the API answered the redelivered rounds (as Meta redelivers) `200`, the worker carried on, and every " +
      "message answered `200` before, during or after the outage was handled and answered.",
  });

  expectNothingLost({ lost, state, done });
  expect(done.inboundHandled).toBe(total);
  expect(done.outboundSent).toBe(total);
  expect(unanswered).toBe(0);
  expect(outageMs).toBeGreaterThanOrEqual(2_000);
  expect(api.running() && worker.running()).toBe(true);
});

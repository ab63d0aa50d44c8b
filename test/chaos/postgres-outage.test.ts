import { recordScenario } from "./report";
import { expectNothingLost, customers, halfWritten, repliesPerCustomer, sleep, startRig, tally, until, type BotProcess, type Rig } from "./harness";
import { pgTarget, TcpProxy } from "./tcp-proxy";

/**
 * Fault: PostgreSQL unreachable for a while from a worker process (its DATABASE_URL goes through a TCP proxy the
 * test cuts: open connections reset, new ones refused). Jobs fail and retry with backoff, and complete once it is
 * back; nothing is half-written (each message, its contact, session and replies commit together or not at all).
 */
jest.setTimeout(150_000);

const CUSTOMERS = 20;
const ROUNDS = 5;
const OUTAGE_MS = 3_000;
let rig: Rig;
let proxy: TcpProxy;
let worker: BotProcess;

beforeAll(async () => {
  rig = await startRig({ api: true }); // the API (in the test process) keeps its own direct connection
  proxy = await TcpProxy.start(pgTarget(rig.dbUrl));
  worker = rig.spawn("worker", { DATABASE_URL: proxy.url(rig.dbUrl), INBOUND_CONCURRENCY: "8", OUTBOUND_CONCURRENCY: "16", OUTBOUND_RATE_PER_SECOND: "1000", OUTBOUND_TIMEOUT_MS: "5000" }, "worker");
  await worker.ready(/"msg":"workers started"/);
});
afterAll(async () => {
  await proxy?.close();
  await rig?.close();
});

it("retries with backoff while PostgreSQL is unreachable and completes after it returns, with no half-written state", async () => {
  rig.sandbox.addFault({ type: "timeout", timeoutMs: 150, count: 100_000 }); // slow Meta: sends in flight at the cut
  const numbers = customers("4470033", CUSTOMERS);
  const all: string[] = [];
  const post = async (round: number) => {
    const { wamids, status } = await rig.sandbox.injectBatch(numbers.map((from) => ({ from, text: `round ${round}` })));
    expect(status).toBe(200);
    all.push(...wamids);
  };
  for (let round = 0; round < 3; round++) await post(round);
  await until(() => rig.sandbox.requests().filter((r) => r.wamid).length >= 5, 30_000, () => worker.output().slice(-2000));

  proxy.cut();
  const cutAt = Date.now();
  const before = await tally(rig, all);
  for (let round = 3; round < ROUNDS; round++) await post(round); // Meta keeps writing: the API still answers 200
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - cutAt)));
  const duringOutage = await tally(rig, all);
  proxy.restore();
  const outageMs = Date.now() - cutAt;

  const total = CUSTOMERS * ROUNDS;
  const done = await until(
    async () => {
      const t = await tally(rig, all);
      return t.inboundHandled === total && t.outboundRows === total && t.outboundOpen === 0 ? t : null;
    },
    60_000,
    async () => `${JSON.stringify(await tally(rig, all))}\n${worker.output().slice(-3000)}`,
    200,
  );
  const state = await halfWritten(rig);
  const out = worker.output();
  const failedJobs = (out.match(/"msg":"inbound job failed"/g) ?? []).length;
  const unanswered = [...repliesPerCustomer(rig, numbers).values()].filter((n) => n < ROUNDS).length;
  const lost = total - done.inboundHandled + (done.outboundRows - done.outboundSent);

  recordScenario({
    id: "F3-postgres-unreachable",
    title: "PostgreSQL unreachable from the worker for a while",
    section: "faults",
    figures: {
      sent: total,
      handled: done.inboundHandled,
      lost,
      repeatedUnknownOutcome: done.repeated,
      unknownOutcome: done.unknownAttempts,
      "outage (s)": Math.round(outageMs / 1000),
      "connections severed at the cut": proxy.severed,
      "connections refused during the outage": proxy.refused,
      "inbound job attempts failed and retried": failedJobs,
      "Cloud API send attempts": done.attempts,
      "messages handled while it was down": duringOutage.inboundHandled - before.inboundHandled,
      "customers without all their replies": unanswered,
      "half-written rows": state.unpairedContacts + state.sentWithoutWamid + state.openRows + state.pendingAttempts + state.duplicateWamids,
    },
    notes:
      `${CUSTOMERS} customers wrote ${ROUNDS} rounds of texts; the worker process reached PostgreSQL through a TCP proxy ` +
      `in the test. After 3 rounds, with sends in flight, the proxy reset every open connection and refused new ones ` +
      `for about ${Math.round(OUTAGE_MS / 1000)} s while 2 more rounds arrived (the API, on its own connection, answered ` +
      "them `200`). Jobs failed and were retried with backoff (BullMQ's exponential delays for inbound jobs, the Cloud " +
      "API backoff for sends); once the proxy let connections through again the pool reconnected by itself and every " +
      "message was handled and answered. Each message is one transaction (contact, wamid claim, session, replies): " +
      "afterwards every contact has exactly one greeting per text, no reply is open, no attempt is left `pending`.",
  });

  expectNothingLost({ lost, state, done });
  expect(done.inboundHandled).toBe(total);
  expect(done.outboundSent).toBe(total);
  expect(unanswered).toBe(0);
  expect(duringOutage.inboundHandled - before.inboundHandled).toBe(0); // nothing commits without PostgreSQL
  expect(worker.running()).toBe(true);
});

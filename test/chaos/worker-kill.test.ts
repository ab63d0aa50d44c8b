import { recordScenario } from "./report";
import { expectNothingLost, customers, halfWritten, repliesPerCustomer, startRig, tally, until, type BotProcess, type Rig } from "./harness";

/**
 * Fault: a worker process killed with SIGKILL in the middle of a busy queue, then started again.
 * Every message is handled and answered; a reply repeats only where the send's outcome was unknown at the kill
 * (the request had left, no answer was recorded: a `pending` SendAttempt), and those are counted.
 */
jest.setTimeout(120_000);

const CUSTOMERS = 24;
const PER_CUSTOMER = 5;
const TOTAL = CUSTOMERS * PER_CUSTOMER;
let rig: Rig;
let first: BotProcess | null = null;
let second: BotProcess | null = null;

beforeAll(async () => {
  rig = await startRig({ api: true });
});
afterAll(async () => {
  await rig?.close();
});

it("SIGKILL mid-queue: after a restart every message is handled and answered; only unknown-outcome sends repeat", async () => {
  // Meta answers every send after 200 ms (below the 1 s client timeout): many sends are in flight at any moment
  rig.sandbox.addFault({ type: "timeout", timeoutMs: 200, count: 100_000 });
  first = rig.spawn("worker", { INBOUND_CONCURRENCY: "8", OUTBOUND_CONCURRENCY: "16", OUTBOUND_RATE_PER_SECOND: "1000" }, "worker-1");
  await first.ready(/"msg":"workers started"/);

  const numbers = customers("4470011", CUSTOMERS);
  const wamids: string[] = [];
  for (let round = 0; round < PER_CUSTOMER; round++) {
    const { wamids: ids, status } = await rig.sandbox.injectBatch(numbers.map((from) => ({ from, text: `message ${round}` })));
    expect(status).toBe(200);
    wamids.push(...ids);
  }

  // busy: some replies out, most not yet, and sends in flight (a `pending` attempt: the request left, no answer yet)
  const inFlight = () => rig.core.prisma.sendAttempt.count({ where: { outcome: "pending" } });
  await until(async () => rig.sandbox.requests().filter((r) => r.wamid).length >= 30 && (await inFlight()) > 0, 30_000, () => first!.output().slice(-2000), 20);
  await first.kill("SIGKILL");
  const atKill = await tally(rig, wamids);
  // sends whose request had left when the process died: their outcome is unknown (`pending` rows)
  const unknownAtKill = atKill.pendingAttempts;
  expect(atKill.outboundSent + atKill.outboundFailed).toBeLessThan(TOTAL); // the kill was mid-queue

  second = rig.spawn("worker", { INBOUND_CONCURRENCY: "8", OUTBOUND_CONCURRENCY: "16", OUTBOUND_RATE_PER_SECOND: "1000" }, "worker-2");
  await second.ready(/"msg":"workers started"/);
  const done = await until(
    async () => {
      const t = await tally(rig, wamids);
      return t.inboundHandled === TOTAL && t.outboundRows === TOTAL && t.outboundOpen === 0 ? t : null;
    },
    60_000,
    async () => JSON.stringify(await tally(rig, wamids)),
    200,
  );
  const state = await halfWritten(rig);
  const perCustomer = repliesPerCustomer(rig, numbers);
  const unanswered = [...perCustomer.values()].filter((n) => n < PER_CUSTOMER).length;
  const lost = TOTAL - done.inboundHandled + (TOTAL - done.outboundSent);

  recordScenario({
    id: "F1-worker-sigkill",
    title: "Worker killed with SIGKILL mid-queue, then restarted",
    section: "faults",
    figures: {
      sent: TOTAL,
      handled: done.inboundHandled,
      lost,
      repeatedUnknownOutcome: done.repeated,
      unknownOutcome: done.unknownAttempts,
      "sends in flight at the kill (pending, outcome unknown)": unknownAtKill,
      "other sends with unknown outcome (1 s client timeout on a loaded machine)": done.unknownAttempts - unknownAtKill,
      "replies sent before the kill": atKill.outboundSent,
      "replies sent in all": done.outboundSent,
      "customers without all their replies": unanswered,
    },
    notes:
      `${CUSTOMERS} customers each wrote ${PER_CUSTOMER} texts (one webhook POST per round, answered 200 by the API); a worker ` +
      "process (`src/main/worker.ts`) handled them while the sandbox answered every Cloud API call after 200 ms. Once " +
      "some replies were out the worker got SIGKILL, and a new worker process was started. Its jobs came back when their " +
      "BullMQ locks lapsed (`WORKER_LOCK_MS`, 4 s in the test); inbound messages already claimed in PostgreSQL were " +
      "not handled twice (the wamid claim), and the sends whose `SendAttempt` was still `pending` at the kill were " +
      "marked `unknown` and sent again: those (and any call that outlived the 1 s client timeout on the loaded test " +
      "machine, also recorded `unknown`), and only those, may reach the customer twice.",
  });

  expect(done.inboundHandled).toBe(TOTAL);
  expect(done.outboundSent).toBe(TOTAL);
  expectNothingLost({ lost, state, done });
  expect(unanswered).toBe(0);
  // a reply is repeated only where an attempt's outcome was unknown: pending at the kill (those became `unknown`
  // when the new worker retried them), or, on a loaded machine, a call that outlived the 1 s client timeout
  expect(unknownAtKill).toBeGreaterThan(0);
  expect(done.attemptsByOutcome.unknown ?? 0).toBeGreaterThanOrEqual(unknownAtKill);
});

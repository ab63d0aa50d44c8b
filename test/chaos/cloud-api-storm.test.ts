import type { RecordedRequest } from "../../src/sandbox/types";
import { recordScenario } from "./report";
import { expectNothingLost, customers, halfWritten, startRig, tally, until, type BotProcess, type Rig } from "./harness";

/**
 * Fault: Cloud API storms against a real worker process. The sandbox (Meta) answers sends with timeouts (the send is
 * accepted, the answer comes after the client gave up), HTTP 500, 503 with Retry-After, 429 with and without
 * Retry-After, 130429 (throughput) and 131056 (pair rate), and 190 (expired token: permanent).
 * Sends are retried within the per-number rate limit; Retry-After and the 131056 backoff are honoured; only sends
 * whose outcome was unknown (timeouts after the request left) repeat, and they are counted; permanent errors are
 * recorded once and never retried.
 */
jest.setTimeout(150_000);

const RATE = 20;
let rig: Rig;
let worker: BotProcess;

beforeAll(async () => {
  rig = await startRig({ api: true });
  worker = rig.spawn("worker", { OUTBOUND_RATE_PER_SECOND: String(RATE), OUTBOUND_CONCURRENCY: "16", OUTBOUND_MAX_ATTEMPTS: "10", OUTBOUND_TIMEOUT_MS: "1000" }, "worker");
  await worker.ready(/"msg":"workers started"/);
});
afterAll(async () => {
  await rig?.close();
});

const digits = (s: string) => s.replace(/\D/g, "");
const recipientOf = (r: RecordedRequest) => digits(String((r.body as { to?: unknown } | null)?.to ?? ""));

/** Largest number of sends in any sliding window of `ms`. */
function maxInWindow(times: number[], ms: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= ms) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

it("retries transient errors within the rate limit, repeats only unknown-outcome sends, records permanent errors once", async () => {
  const n = customers("4470044", 40);
  const groups = {
    tooManyWithRetryAfter: n.slice(0, 4), // HTTP 429, Retry-After: 2
    tooManyBare: n.slice(4, 8), // HTTP 429, no Retry-After
    unavailableWithRetryAfter: n.slice(8, 12), // 131016, HTTP 503, Retry-After: 1
    timeout: n.slice(12, 15), // accepted, answered after 2.5 s; the client gives up at 1 s
    tokenExpired: n.slice(15, 18), // 190: permanent
    pairRate: n.slice(18, 22), // 131056: 1 s, then 4 s…
    plain: n.slice(22), // the generic storm below (500, 130429) falls on whichever sends come first
  };
  // faults aimed at one customer are armed first, so each of those customers' first send takes its own
  for (const to of groups.tooManyWithRetryAfter) rig.sandbox.addFault({ type: "too_many_requests", retryAfterSeconds: 2, to });
  for (const to of groups.tooManyBare) rig.sandbox.addFault({ type: "too_many_requests", to });
  for (const to of groups.unavailableWithRetryAfter) rig.sandbox.addFault({ type: "service_unavailable", retryAfterSeconds: 1, to });
  for (const to of groups.timeout) rig.sandbox.addFault({ type: "timeout", timeoutMs: 2_500, to });
  for (const to of groups.tokenExpired) rig.sandbox.addFault({ type: "token_expired", to });
  for (const to of groups.pairRate) rig.sandbox.addFault({ type: "pair_rate", to });
  rig.sandbox.addFault({ type: "server_error", count: 5 }); // HTTP 500, 131000
  rig.sandbox.addFault({ type: "rate_limit", count: 5 }); // 130429

  const { wamids, status } = await rig.sandbox.injectBatch(n.map((from) => ({ from, text: "hello" })));
  expect(status).toBe(200);
  const done = await until(
    async () => {
      const t = await tally(rig, wamids);
      return t.inboundHandled === n.length && t.outboundRows === n.length && t.outboundOpen === 0 ? t : null;
    },
    90_000,
    async () => `${JSON.stringify(await tally(rig, wamids))}\n${worker.output().slice(-3000)}`,
    200,
  );
  const state = await halfWritten(rig);

  const sends = rig.sandbox.requests().filter((r) => r.method === "POST" && r.path.endsWith("/messages"));
  const of = (to: string) => sends.filter((r) => recipientOf(r) === digits(to)).sort((a, b) => a.at - b.at);
  /** gap between a customer's first (refused) send and the retry */
  const gaps = (group: string[]) => group.map((to) => { const [a, b] = of(to); return a && b ? b.at - a.at : -1; });
  const retryAfter2 = gaps(groups.tooManyWithRetryAfter);
  const retryAfter1 = gaps(groups.unavailableWithRetryAfter);
  const pairGaps = gaps(groups.pairRate);
  const bareGaps = gaps(groups.tooManyBare);
  const permanent = await rig.core.prisma.message.findMany({ where: { direction: "outbound", status: "failed" }, select: { errorCode: true, attempts: { select: { outcome: true } } } });
  const permanentRequests = groups.tokenExpired.map((to) => of(to).length);
  const statuses = sends.reduce((m: Record<string, number>, r) => ((m[`${r.responseStatus}${r.errorCode !== undefined ? `/${r.errorCode}` : ""}`] = (m[`${r.responseStatus}${r.errorCode !== undefined ? `/${r.errorCode}` : ""}`] ?? 0) + 1), m), {});
  const maxPerSecond = maxInWindow(sends.map((r) => r.at), 1_000);
  const expectedAnswered = n.length - groups.tokenExpired.length;
  const lost = expectedAnswered - done.outboundSent;

  recordScenario({
    id: "F4-cloud-api-storm",
    title: "Cloud API storm: timeouts, 5xx, 429 with and without Retry-After, 130429, 131056, 190",
    section: "faults",
    figures: {
      sent: n.length,
      handled: done.inboundHandled,
      lost,
      repeatedUnknownOutcome: done.repeated,
      unknownOutcome: done.unknownAttempts,
      "replies accepted by Meta": done.outboundSent,
      "permanent errors (190), recorded once": permanent.length,
      "Cloud API calls": sends.length,
      "transient errors retried": done.attemptsByOutcome.transient_error ?? 0,
      "answers by HTTP status/code": Object.entries(statuses).sort().map(([k, v]) => `${k}: ${v}`).join(", "),
      "rate limit (sends per second)": RATE,
      "most sends in any 1 s": maxPerSecond,
      "shortest retry after 429 with Retry-After 2 s (ms)": Math.min(...retryAfter2),
      "shortest retry after 503 with Retry-After 1 s (ms)": Math.min(...retryAfter1),
      "shortest retry after 131056 (ms)": Math.min(...pairGaps),
    },
    notes:
      `${n.length} customers wrote once; every greeting went to a sandbox that refused or stalled many sends: four ` +
      "customers' first send got HTTP 429 with `Retry-After: 2`, four a bare 429, four 131016 (HTTP 503) with " +
      "`Retry-After: 1`, four 131056 (pair rate), three were accepted but answered only after the worker's 1 s timeout, " +
      "three got 190 (expired token, permanent), and five 131000 (HTTP 500) and five 130429 fell on whichever sends came " +
      `first. The worker (limit ${RATE} sends per second per number, counted per attempt) retried every transient ` +
      "error with full-jitter backoff, never sooner than Retry-After, and 131056 after 1 s × 4^X. The timed-out sends " +
      "were recorded `unknown` and retried, so those customers may get the greeting twice: that is the only repetition. " +
      "The 190s failed their message at once with one attempt each.",
  });

  // only unknown-outcome sends repeat, and they are counted
  expectNothingLost({ lost, state, done });
  expect(done.outboundSent).toBe(expectedAnswered);
  expect(done.attemptsByOutcome.unknown ?? 0).toBe(groups.timeout.length);
  for (const to of groups.timeout) expect(of(to).filter((r) => r.responseStatus === 200).length).toBe(2);
  for (const to of n.filter((c) => !groups.timeout.includes(c))) expect(of(to).filter((r) => r.responseStatus === 200).length).toBeLessThanOrEqual(1);
  // permanent errors: recorded once, never retried
  expect(permanent).toHaveLength(groups.tokenExpired.length);
  for (const p of permanent) expect(p).toEqual({ errorCode: 190, attempts: [{ outcome: "permanent_error" }] });
  expect(permanentRequests).toEqual(groups.tokenExpired.map(() => 1));
  // Retry-After and the pair-rate backoff honoured (small slack for clocks: the sandbox records arrival times)
  for (const g of retryAfter2) expect(g).toBeGreaterThanOrEqual(1_950);
  for (const g of retryAfter1) expect(g).toBeGreaterThanOrEqual(950);
  for (const g of pairGaps) expect(g).toBeGreaterThanOrEqual(950);
  for (const g of bareGaps) expect(g).toBeGreaterThanOrEqual(0);
  // within the rate limit: the limiter's fixed 1 s windows allow at most RATE per window, so at most 2 × RATE in any
  // sliding second (a few more only if arrival jitter at the sandbox moves a send across a window's edge)
  expect(maxPerSecond).toBeLessThanOrEqual(2 * RATE + 3);
});

import { connect, type Socket } from "node:net";
import { signBody } from "../../src/ingest/verify-signature";
import { contact, envelope, messages } from "../helpers/payloads";
import { sparePort } from "../ops/own-redis";
import { recordScenario } from "./report";
import { expectNothingLost, customers, halfWritten, startRig, tally, until, type Rig } from "./harness";

/**
 * Fault: SIGTERM to a process running the API and the workers (`npm start`, src/main/all.ts) while sends are in
 * flight and a webhook POST half-received. The HTTP server stops taking connections at once, the request in flight
 * is answered (on a keep-alive connection Meta keeps open), the jobs in flight finish (their Cloud API answers are
 * recorded), and the process exits 0 promptly; what was still queued is handled by the next worker, nothing lost or
 * repeated.
 */
jest.setTimeout(150_000);

const HOLD_MS = 2_000;
let rig: Rig;

beforeAll(async () => {
  rig = await startRig();
});
afterAll(async () => {
  await rig?.close();
});

async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(1_000) });
    return true;
  } catch {
    return false;
  }
}

it("stops taking requests, finishes the jobs in flight and exits 0", async () => {
  const port = await sparePort();
  const url = `http://127.0.0.1:${port}`;
  // every send is accepted by Meta and answered after 2 s: well inside the 10 s client timeout
  rig.sandbox.addFault({ type: "timeout", timeoutMs: HOLD_MS, count: 100_000 });
  const bot = rig.spawn("all", { PORT: String(port), OUTBOUND_TIMEOUT_MS: "10000", OUTBOUND_CONCURRENCY: "8" }, "all");
  await bot.ready(/"msg":"API and workers started"/);
  rig.sandbox.setWebhookUrl(`${url}/webhook`);

  const numbers = customers("4470055", 30);
  const { wamids, status } = await rig.sandbox.injectBatch(numbers.map((from) => ({ from, text: "hello" })));
  expect(status).toBe(200);
  // sends in flight (concurrency 8, each held 2 s), the rest still queued
  const pending = () => rig.core.prisma.sendAttempt.count({ where: { outcome: "pending" } });
  await until(async () => rig.sandbox.requests().filter((r) => r.wamid).length >= 8 && (await pending()) > 0, 30_000, () => bot.output().slice(-2000), 20);
  // Meta is in the middle of a webhook POST on a keep-alive connection: headers and part of the body sent
  const late = messages.text(numbers[0]!, "one more");
  const raw = JSON.stringify(envelope({ phoneNumberId: rig.config.WHATSAPP_PHONE_NUMBER_ID, contacts: [contact(numbers[0]!)], messages: [late] }));
  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  let response = "";
  socket.on("data", (d) => (response += d.toString()));
  socket.on("error", () => undefined);
  // Expect: 100-continue: the server says when it has read the headers, so the request is surely in progress (not an
  // idle connection) when the signal comes
  socket.write(
    `POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n` +
      `X-Hub-Signature-256: ${signBody(raw, rig.config.WHATSAPP_APP_SECRET)}\r\nContent-Length: ${Buffer.byteLength(raw)}\r\n\r\n`,
  );
  await until(() => /^HTTP\/1\.1 100/.test(response), 10_000, () => `no 100 Continue: ${response}`, 10);
  socket.write(raw.slice(0, 20));
  const atSignal = await tally(rig, wamids);
  const inFlight = atSignal.pendingAttempts;
  const signalledAt = Date.now();
  bot.child.kill("SIGTERM");

  // the HTTP server stops taking connections while the process is still finishing its jobs
  await until(async () => !(await answers(`${url}/healthz`)), 5_000, () => "the API still answers after SIGTERM", 50);
  const refusedWhileRunning = bot.running();
  // the request in flight is still answered; Meta leaves the connection open
  socket.write(raw.slice(20));
  const final = /HTTP\/1\.1 ([2-5]\d\d)/;
  await until(() => final.test(response), 10_000, () => `no answer to the webhook in flight: ${response}`, 20);
  const inFlightWebhookStatus = Number(final.exec(response)?.[1] ?? 0);
  wamids.push(late.id);
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([bot.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), 60_000)))]);
  clearTimeout(timer);
  socket.destroy();
  const exitMs = Date.now() - signalledAt;
  const atExit = await tally(rig, wamids);

  // what was still queued is handled by the next worker (Meta answers at once now)
  rig.sandbox.clearFaults();
  const next = rig.spawn("worker", { OUTBOUND_CONCURRENCY: "8" }, "worker-after");
  await next.ready(/"msg":"workers started"/);
  const done = await until(
    async () => {
      const t = await tally(rig, wamids);
      return t.inboundHandled === wamids.length && t.outboundRows === wamids.length && t.outboundOpen === 0 ? t : null;
    },
    60_000,
    async () => JSON.stringify(await tally(rig, wamids)),
    200,
  );
  const state = await halfWritten(rig);
  const lost = wamids.length - done.inboundHandled + (wamids.length - done.outboundSent);

  recordScenario({
    id: "F5-sigterm",
    title: "SIGTERM with sends in flight (API and workers in one process)",
    section: "faults",
    figures: {
      sent: wamids.length,
      handled: done.inboundHandled,
      lost,
      repeatedUnknownOutcome: done.repeated,
      unknownOutcome: done.unknownAttempts,
      "sends in flight at SIGTERM": inFlight,
      "of them finished and recorded before exit": inFlight - atExit.pendingAttempts,
      "exit code": exit?.code ?? "none",
      "new connections refused before exit": refusedWhileRunning ? "yes" : "no",
      "webhook in flight at SIGTERM answered": inFlightWebhookStatus,
      "exit after SIGTERM (s)": Math.round(exitMs / 1000),
      "replies sent before exit": atExit.outboundSent,
      "replies sent by the next worker": done.outboundSent - atExit.outboundSent,
    },
    notes:
      `${numbers.length} customers wrote once to \`src/main/all.ts\` (API and workers in one process); the sandbox answered ` +
      `every send after ${HOLD_MS / 1000} s. With sends in flight, and a webhook POST half-received on a keep-alive ` +
      "connection, the process got SIGTERM: the HTTP server closed its listening socket at once (new connections " +
      "refused while the process was still running), answered the POST in flight `200` and closed that connection as " +
      "soon as it was idle (instead of waiting for its 65 s keep-alive timeout), `worker.close()` " +
      "waited for the jobs in flight, whose answers were recorded (no attempt left `pending`), and the process exited " +
      "0. The replies still queued were sent by the next worker process: none lost, none repeated.",
  });

  expect(exit).toEqual({ code: 0, signal: null });
  expect(refusedWhileRunning).toBe(true);
  expect(inFlight).toBeGreaterThan(0);
  expect(atExit.pendingAttempts).toBe(0); // every send in flight finished and was recorded
  expect(atExit.attemptsByOutcome.unknown ?? 0).toBe(0);
  expect(inFlightWebhookStatus).toBe(200);
  // not held up by the keep-alive connection left open (its idle timeout is 65 s)
  expect(exitMs).toBeLessThan(20_000);
  expectNothingLost({ lost, state, done });
  expect(done.repeated).toBe(0);
});

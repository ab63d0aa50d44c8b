import { sentAtOf } from "../../src/ingest/envelope";
import { statusUpdateFrom } from "../../src/queues/status.worker";
import { envelope, wamid } from "../helpers/payloads";
import { echoHandler, startTestSystem, waitFor, type TestSystem } from "../helpers/system";

/**
 * A message whose `timestamp` is not a plausible number (issue 15 item 16) made an Invalid Date: its job failed on
 * every retry and, since a contact's messages are handled in order, held that contact's later messages back. Now an
 * implausible timestamp (not digits, before 2009, more than a day ahead) falls back to the time it was received.
 */
const BAD = ["soon", "1e400", "-1", "99999999999999999999", "12abc", "", "0", 1e300, "1718000000000"];

describe("sentAtOf", () => {
  it("keeps a plausible timestamp and falls back to the receive time otherwise", () => {
    const received = Date.UTC(2026, 11, 8, 0, 0, 0);
    expect(sentAtOf("1765152000", received).toISOString()).toBe(new Date(1765152000 * 1000).toISOString());
    expect(sentAtOf(1765152000, received).getTime()).toBe(1765152000 * 1000);
    for (const bad of [...BAD, undefined, null, { x: 1 }, String(received / 1000 + 2 * 86_400)]) {
      const d = sentAtOf(bad, received);
      expect([bad, d.getTime()]).toEqual([bad, received]);
    }
  });

  it("a status with an implausible timestamp is applied at its receive time (the same rule)", () => {
    const receivedAt = Date.now();
    for (const timestamp of ["99999999999999999999", "1e400", "soon"]) {
      const u = statusUpdateFrom({ status: { id: "wamid.x", status: "delivered", timestamp }, receivedAt } as never);
      expect([timestamp, Number.isNaN(u.timestamp.getTime()), u.timestamp.getTime()]).toEqual([timestamp, false, receivedAt]);
    }
  });
});

describe("end to end: a bad timestamp neither fails the message nor holds the contact's next one", () => {
  let sys: TestSystem;
  beforeAll(async () => {
    sys = await startTestSystem({ env: { OUTBOUND_RECIPIENT_GAP_MS: "5" }, handlers: [echoHandler] });
  });
  afterAll(async () => {
    await sys.close();
  });

  it("each contact's bad-timestamp message and the message after it are both answered", async () => {
    const phoneNumberId = sys.config.WHATSAPP_PHONE_NUMBER_ID;
    const contacts = BAD.map((_, i) => `1415555${String(3000 + i)}`);
    for (const [i, bad] of BAD.entries()) {
      const from = contacts[i]!;
      const message = (text: string, timestamp: unknown) => ({ from, id: wamid(), timestamp, type: "text", text: { body: text } });
      const first = envelope({ phoneNumberId, contacts: [{ wa_id: from, profile: { name: "T" } }], messages: [message(`first ${i}`, bad)] });
      expect(await sys.sandbox.postWebhook(first)).toBe(200);
      const second = envelope({ phoneNumberId, contacts: [{ wa_id: from, profile: { name: "T" } }], messages: [message(`second ${i}`, String(Math.floor(Date.now() / 1000)))] });
      expect(await sys.sandbox.postWebhook(second)).toBe(200);
    }
    const echoes = (digits: string) => sys.sandbox.conversation(digits).filter((m) => m.direction === "outbound").map((m) => JSON.stringify(m.payload));
    await waitFor(() => contacts.every((c, i) => echoes(c).some((e) => e.includes(`echo: first ${i}`)) && echoes(c).some((e) => e.includes(`echo: second ${i}`))), 20_000);
    // the stored time of the bad one is the receive time (within the test's span), never an Invalid Date
    const rows = await sys.core.prisma.message.findMany({ where: { direction: "inbound" }, select: { timestamp: true } });
    expect(rows.length).toBeGreaterThanOrEqual(BAD.length * 2);
    for (const r of rows) expect(Math.abs(r.timestamp.getTime() - Date.now())).toBeLessThan(5 * 60_000);
  });
});

import fc from "fast-check";
import { sqlFor } from "../../src/db/sql";
import { mergeStatus, recordStatus, wamidLock, type StatusUpdate, type Timeline } from "../../src/messaging/delivery-status";
import type { MessageStatus } from "../../src/generated/prisma/enums";
import { createHarness, type Harness } from "./harness";

/**
 * The status path applies a status in one SQL statement (APPLY_STATUS in src/messaging/delivery-status.ts). Its
 * merge must be `mergeStatus`, the pure rules: on random timelines (any status, any subset of the four timestamps,
 * error fields or not), random updates (tracked or not, earlier or later) and a status event seen before (applied,
 * stored unapplied, or new), the row PostgreSQL ends with is the row `mergeStatus` computes, and the outcome says
 * what happened.
 */
let h: Harness;
let contactId: string;
let n = 0;
const T0 = Date.UTC(2026, 11, 1);

beforeAll(async () => {
  h = await createHarness("http://127.0.0.1:9");
  contactId = await h.contact("+447700900999");
});
afterAll(async () => {
  await h.close();
});

const STATUSES: MessageStatus[] = ["queued", "sending", "sent", "delivered", "read", "failed"];
const at = fc.option(fc.integer({ min: 0, max: 20 }).map((s) => new Date(T0 + s * 1000)), { nil: null });
const timeline = fc.record({
  status: fc.constantFrom(...STATUSES),
  sentAt: at,
  deliveredAt: at,
  readAt: at,
  failedAt: at,
  errorCode: fc.option(fc.constantFrom(131026, 131047, 131000), { nil: null }),
  errorTitle: fc.option(fc.constantFrom("Message undeliverable", "Re-engagement message"), { nil: null }),
}) as fc.Arbitrary<Timeline>;
const update = fc.record({
  status: fc.constantFrom("sent", "delivered", "read", "failed", "played", "deleted"),
  timestamp: fc.integer({ min: 0, max: 20 }).map((s) => new Date(T0 + s * 1000)),
  errorCode: fc.option(fc.constantFrom(131026, 131049), { nil: null }),
  errorTitle: fc.option(fc.constantFrom("Message undeliverable", "Spam rate limit hit"), { nil: null }),
}) as fc.Arbitrary<StatusUpdate>;
const seenBefore = fc.constantFrom("new", "applied", "unapplied") as fc.Arbitrary<"new" | "applied" | "unapplied">;

const ms = (d: Date | null) => d?.getTime() ?? null;
const comparable = (t: Timeline) => ({ ...t, sentAt: ms(t.sentAt), deliveredAt: ms(t.deliveredAt), readAt: ms(t.readAt), failedAt: ms(t.failedAt) });

test("the one-statement apply agrees with mergeStatus", async () => {
  const sql = sqlFor(h.prisma);
  await fc.assert(
    fc.asyncProperty(timeline, update, seenBefore, async (before, upd, seen) => {
      const wamid = `wamid.prop${++n}`;
      const id = await h.sentMessage(contactId, wamid);
      await h.prisma.message.update({ where: { id }, data: before });
      if (seen !== "new") {
        await h.prisma.statusEvent.create({ data: { tenantId: h.tenant.id, wamid, status: upd.status, timestamp: upd.timestamp, applied: seen === "applied" } });
      }
      const outcome = await sql.transaction((q) => recordStatus(q, h.tenant.id, wamid, upd, { final: false, last: true }), wamidLock(h.tenant.id, wamid));
      const row = await h.prisma.message.findUniqueOrThrow({ where: { id } });
      const after: Timeline = { status: row.status, sentAt: row.sentAt, deliveredAt: row.deliveredAt, readAt: row.readAt, failedAt: row.failedAt, errorCode: row.errorCode, errorTitle: row.errorTitle };
      if (seen === "applied") {
        expect(outcome).toEqual({ kind: "duplicate" });
        expect(comparable(after)).toEqual(comparable(before));
      } else {
        const want = mergeStatus(before, upd);
        expect(comparable(after)).toEqual(comparable(want));
        expect(outcome).toEqual({ kind: "applied", messageId: id, status: want.status, verificationId: null, errorCode: want.errorCode });
      }
      const events = await h.prisma.statusEvent.findMany({ where: { tenantId: h.tenant.id, wamid } });
      expect(events.map((e) => [e.status, e.applied])).toEqual([[upd.status, true]]);
    }),
    { numRuns: 200 },
  );
});

test("no message for the wamid: held (nothing written) until the last attempt, then stored unapplied once", async () => {
  const sql = sqlFor(h.prisma);
  const wamid = `wamid.unknown${++n}`;
  const upd: StatusUpdate = { status: "delivered", timestamp: new Date(T0) };
  const run = (final: boolean) => sql.transaction((q) => recordStatus(q, h.tenant.id, wamid, upd, { final, last: true }), wamidLock(h.tenant.id, wamid));
  expect(await run(false)).toEqual({ kind: "held" });
  expect(await h.prisma.statusEvent.count({ where: { wamid } })).toBe(0);
  expect(await run(true)).toEqual({ kind: "stored_unapplied" });
  expect(await run(true)).toEqual({ kind: "duplicate" });
  expect((await h.prisma.statusEvent.findMany({ where: { wamid } })).map((e) => e.applied)).toEqual([false]);
});

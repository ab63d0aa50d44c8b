import { mergeStatus, type Timeline } from "../../src/messaging/delivery-status";
import { FakeGraph } from "./fake-graph";
import { createHarness, drained, waitFor, type Harness } from "./harness";

let graph: FakeGraph;
let h: Harness;
let n = 0;
const T0 = 1_790_000_000; // Unix seconds

beforeAll(async () => {
  graph = new FakeGraph();
  await graph.listen();
  h = await createHarness(graph.url, { OUTBOUND_RECIPIENT_GAP_MS: "0" });
  h.startStatus();
  h.startOutbound();
});
afterAll(async () => {
  await h.close();
  await graph.close();
});

async function sent(): Promise<{ id: string; wamid: string }> {
  const contactId = await h.contact(`+4477009${String(++n).padStart(5, "0")}`);
  const wamid = `wamid.status${n}`;
  return { id: await h.sentMessage(contactId, wamid), wamid };
}
const row = (id: string) => h.prisma.message.findUniqueOrThrow({ where: { id } });
const events = (wamid: string) => h.prisma.statusEvent.findMany({ where: { wamid }, orderBy: { timestamp: "asc" } });

test("sent → delivered → read in order", async () => {
  const m = await sent();
  await h.status(m.wamid, "sent", T0);
  await h.status(m.wamid, "delivered", T0 + 1);
  await h.status(m.wamid, "read", T0 + 5);
  await drained(h.statusQueue);
  const r = await row(m.id);
  expect(r.status).toBe("read");
  expect(r.deliveredAt?.getTime()).toBe((T0 + 1) * 1000);
  expect(r.readAt?.getTime()).toBe((T0 + 5) * 1000);
  expect((await events(m.wamid)).map((e) => [e.status, e.applied])).toEqual([["sent", true], ["delivered", true], ["read", true]]);
});

test("read before delivered: read stays, deliveredAt is still recorded", async () => {
  const m = await sent();
  await h.status(m.wamid, "read", T0 + 5);
  await drained(h.statusQueue);
  expect((await row(m.id)).status).toBe("read");
  await h.status(m.wamid, "delivered", T0 + 2);
  await drained(h.statusQueue);
  const r = await row(m.id);
  expect(r.status).toBe("read");
  expect(r.deliveredAt?.getTime()).toBe((T0 + 2) * 1000);
});

test("read without any delivered", async () => {
  const m = await sent();
  await h.status(m.wamid, "read", T0 + 3);
  await drained(h.statusQueue);
  expect(await row(m.id)).toMatchObject({ status: "read", deliveredAt: null });
});

test("failed after delivered: failed, with the code from errors[0]", async () => {
  const m = await sent();
  await h.status(m.wamid, "delivered", T0 + 1);
  await drained(h.statusQueue);
  await h.status(m.wamid, "failed", T0 + 4, { errors: [{ code: 131026, title: "Message undeliverable" }] });
  await drained(h.statusQueue);
  const r = await row(m.id);
  expect(r).toMatchObject({ status: "failed", errorCode: 131026, errorTitle: "Message undeliverable" });
  expect(r.failedAt?.getTime()).toBe((T0 + 4) * 1000);
  expect(r.deliveredAt?.getTime()).toBe((T0 + 1) * 1000);
});

test("a delivered later than the failure wins (multi-device); an earlier one does not", async () => {
  const a = await sent();
  await h.status(a.wamid, "failed", T0 + 2, { errors: [{ code: 131000, title: "Something went wrong" }] });
  await drained(h.statusQueue);
  await h.status(a.wamid, "delivered", T0 + 3);
  await drained(h.statusQueue);
  expect(await row(a.id)).toMatchObject({ status: "delivered", errorCode: 131000 });

  const b = await sent();
  await h.status(b.wamid, "failed", T0 + 5, { errors: [{ code: 131000 }] });
  await drained(h.statusQueue);
  await h.status(b.wamid, "delivered", T0 + 3);
  await drained(h.statusQueue);
  expect((await row(b.id)).status).toBe("failed");
});

test("a duplicate status is recorded and applied once", async () => {
  const m = await sent();
  await h.status(m.wamid, "delivered", T0 + 1, {}, { jobId: "dup-a" });
  await h.status(m.wamid, "delivered", T0 + 1, {}, { jobId: "dup-b" }); // a redelivery past BullMQ's job-id dedupe
  await drained(h.statusQueue);
  expect(await events(m.wamid)).toHaveLength(1);
  expect((await row(m.id)).status).toBe("delivered");
});

test("all statuses of one message at once (concurrent workers) end in the right state", async () => {
  const m = await sent();
  await Promise.all([
    h.status(m.wamid, "read", T0 + 9),
    h.status(m.wamid, "sent", T0),
    h.status(m.wamid, "delivered", T0 + 4),
  ]);
  await drained(h.statusQueue);
  const r = await row(m.id);
  expect(r.status).toBe("read");
  expect(r.deliveredAt?.getTime()).toBe((T0 + 4) * 1000);
  expect(r.readAt?.getTime()).toBe((T0 + 9) * 1000);
  expect(await events(m.wamid)).toHaveLength(3);
});

test("a status for an unknown business number is dropped without retries", async () => {
  const item = { kind: "status", phoneNumberId: "999", status: { id: "wamid.x", status: "sent", timestamp: String(T0) }, receivedAt: Date.now() };
  await h.statusQueue.add("status", { enc: h.keyring.encrypt("job-data", JSON.stringify(item)) }, { jobId: "unknown-tenant", attempts: 3 });
  await drained(h.statusQueue);
  expect(await h.statusQueue.getJobState("unknown-tenant")).toBe("completed");
  expect(await h.prisma.statusEvent.count({ where: { wamid: "wamid.x" } })).toBe(0);
});

describe("a status that arrives before the send call returned its wamid", () => {
  test("is held in the queue and applied once the wamid is stored", async () => {
    const phone = "+447700900901";
    const contactId = await h.contact(phone);
    let release!: () => void;
    graph.next({ kind: "ok", wamid: "wamid.early1", release: new Promise<void>((r) => (release = r)) }, { to: phone });
    const [id] = await h.send(contactId, [{ type: "text", text: { body: "racing" } }]);
    await waitFor(async () => graph.to(phone).length === 1, 5_000, "send call in flight");
    await h.status("wamid.early1", "delivered", T0 + 2, {}, { attempts: 50, delay: 40 });
    await waitFor(async () => (((await h.statusQueue.getJobCounts("delayed")).delayed ?? 0) > 0 ? true : null), 5_000, "status retry");
    expect(await h.prisma.statusEvent.count({ where: { wamid: "wamid.early1" } })).toBe(0); // rolled back, held
    release();
    const r = await waitFor(async () => {
      const m = await row(id!);
      return m.status === "delivered" ? m : null;
    }, 10_000, "delivered");
    expect(r.wamid).toBe("wamid.early1");
    expect((await events("wamid.early1")).map((e) => [e.status, e.applied])).toEqual([["delivered", true]]);
  });

  test("after its last attempt it is kept unapplied, and the send worker applies it with the wamid", async () => {
    const phone = "+447700900902";
    const contactId = await h.contact(phone);
    let release!: () => void;
    graph.next({ kind: "ok", wamid: "wamid.early2", release: new Promise<void>((r) => (release = r)) }, { to: phone });
    const [id] = await h.send(contactId, [{ type: "text", text: { body: "racing" } }]);
    await waitFor(async () => graph.to(phone).length === 1, 5_000, "send call in flight");
    await h.status("wamid.early2", "read", T0 + 7, {}, { attempts: 2, delay: 20 });
    await h.status("wamid.early2", "delivered", T0 + 6, {}, { attempts: 1 });
    const held = await waitFor(async () => {
      const e = await events("wamid.early2");
      return e.length === 2 ? e : null;
    }, 5_000, "held statuses stored");
    expect(held.every((e) => !e.applied)).toBe(true);
    expect((await row(id!)).status).toBe("sending");
    release();
    const r = await waitFor(async () => {
      const m = await row(id!);
      return m.status === "read" ? m : null;
    }, 10_000, "read");
    expect(r.deliveredAt?.getTime()).toBe((T0 + 6) * 1000);
    expect(r.readAt?.getTime()).toBe((T0 + 7) * 1000);
    expect((await events("wamid.early2")).every((e) => e.applied)).toBe(true);
    // a late redelivery of one of them is a duplicate
    await h.status("wamid.early2", "read", T0 + 7, {}, { jobId: "late-redelivery" });
    await drained(h.statusQueue);
    expect(await events("wamid.early2")).toHaveLength(2);
  });
});

describe("mergeStatus (pure rules)", () => {
  const base: Timeline = { status: "sent", sentAt: new Date(1000), deliveredAt: null, readAt: null, failedAt: null, errorCode: null, errorTitle: null };
  const at = (s: number) => new Date(s * 1000);
  test("never moves down sent < delivered < read", () => {
    const read = mergeStatus(base, { status: "read", timestamp: at(5) });
    expect(mergeStatus(read, { status: "delivered", timestamp: at(6) }).status).toBe("read");
    expect(mergeStatus(read, { status: "sent", timestamp: at(7) }).status).toBe("read");
  });
  test("failed unless a delivered/read is later", () => {
    const d = mergeStatus(base, { status: "delivered", timestamp: at(5) });
    expect(mergeStatus(d, { status: "failed", timestamp: at(6), errorCode: 1 }).status).toBe("failed");
    expect(mergeStatus(d, { status: "failed", timestamp: at(4), errorCode: 1 }).status).toBe("delivered");
  });
  test("statuses we do not track change nothing", () => {
    expect(mergeStatus(base, { status: "played", timestamp: at(9) })).toEqual(base);
  });
  test("the first time each status was seen is kept", () => {
    const d1 = mergeStatus(base, { status: "delivered", timestamp: at(8) });
    expect(mergeStatus(d1, { status: "delivered", timestamp: at(3) }).deliveredAt).toEqual(at(3));
  });
});

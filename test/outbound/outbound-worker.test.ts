import { jobIds } from "../../src/queues/jobs";
import { cloudApiBackoff, countUnknownSends, RetryableSendError } from "../../src/queues/outbound.worker";
import type { OutboundContent } from "../../src/messaging/outbox";
import { FakeGraph, metaError, type Reply } from "./fake-graph";
import { createHarness, waitFor, type Harness } from "./harness";

const GAP_MS = 120;
let graph: FakeGraph;
let h: Harness;
let phoneSeq = 0;
const codes = new Map<string, string>(); // messageId → OTP code, as an OTP service would hold it (never in the row)

beforeAll(async () => {
  graph = new FakeGraph();
  await graph.listen();
  h = await createHarness(graph.url, {
    OUTBOUND_RECIPIENT_GAP_MS: String(GAP_MS),
    OUTBOUND_TIMEOUT_MS: "300",
    OUTBOUND_MAX_ATTEMPTS: "4",
    OUTBOUND_CONCURRENCY: "8",
  });
  h.startOutbound({
    // the hook for secret parameters: the stored template holds "{{otp}}"; the code is put in only for the call
    resolveContent: async (m) => {
      const code = codes.get(m.id);
      return code ? (JSON.parse(JSON.stringify(m.payload).replaceAll("{{otp}}", code)) as OutboundContent) : m.payload;
    },
  });
});
afterAll(async () => {
  await h.close();
  await graph.close();
});

async function newPhone(): Promise<{ phone: string; contactId: string }> {
  const phone = `+1415555${String(1000 + ++phoneSeq).padStart(4, "0")}`;
  return { phone, contactId: await h.contact(phone) };
}

const text = (body: string): OutboundContent => ({ type: "text", text: { body } });

async function finalRow(id: string) {
  return waitFor(async () => {
    const m = await h.prisma.message.findUniqueOrThrow({ where: { id } });
    return m.status === "sent" || m.status === "failed" ? m : null;
  }, 15_000, `message ${id} to be sent or failed`);
}

async function attempts(id: string) {
  return h.prisma.sendAttempt.findMany({ where: { messageId: id }, orderBy: { attempt: "asc" } });
}

test("a text goes out once with Meta's exact JSON; the row keeps the wamid", async () => {
  const { phone, contactId } = await newPhone();
  const [id] = await h.send(contactId, [text("Welcome!")]);
  const row = await finalRow(id!);
  expect(row.status).toBe("sent");
  expect(row.wamid).toMatch(/^wamid\./);
  expect(row.sentAt).toBeInstanceOf(Date);
  const reqs = graph.to(phone);
  expect(reqs).toHaveLength(1);
  expect(reqs[0]!.path).toBe(`/v23.0/${h.tenant.phoneNumberId}/messages`);
  expect(reqs[0]!.authorization).toBe(`Bearer ${h.config.WHATSAPP_ACCESS_TOKEN}`);
  expect(reqs[0]!.raw).toBe(`{"messaging_product":"whatsapp","recipient_type":"individual","to":"${phone}","type":"text","text":{"body":"Welcome!"}}`);
  expect((await attempts(id!)).map((a) => [a.attempt, a.outcome, a.httpStatus])).toEqual([[1, "accepted", 200]]);
});

test("an OTP template: the code is filled in at send time only (the contract's JSON; never in the row)", async () => {
  const { phone, contactId } = await newPhone();
  const stored: OutboundContent = {
    type: "template",
    template: {
      name: "verification_code",
      language: { code: "en_US" },
      components: [
        { type: "body", parameters: [{ type: "text", text: "{{otp}}" }] },
        { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: "{{otp}}" }] },
      ],
    },
  };
  const ids = await h.prisma.$transaction((tx) =>
    import("../../src/messaging/outbox").then(({ Outbox }) => Outbox.create(tx, { tenantId: h.tenant.id, contactId, contents: [stored], now: new Date() })),
  );
  codes.set(ids[0]!, "123456");
  await h.outbox.dispatch(ids);
  const row = await finalRow(ids[0]!);
  expect(row.status).toBe("sent");
  expect(JSON.parse(graph.to(phone)[0]!.raw)).toEqual({
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to: phone,
    type: "template",
    template: {
      name: "verification_code",
      language: { code: "en_US" },
      components: [
        { type: "body", parameters: [{ type: "text", text: "123456" }] },
        { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: "123456" }] },
      ],
    },
  });
  expect(graph.to(phone)[0]!.raw.startsWith('{"messaging_product":"whatsapp","recipient_type":"individual","to":"')).toBe(true);
  expect(JSON.stringify(row.payload)).not.toContain("123456");
});

describe("transient errors are retried, then the message goes out", () => {
  const cases: Array<[string, Reply]> = [
    ["HTTP 429", { kind: "error", httpStatus: 429, rawBody: "{}" }],
    ["HTTP 500", { kind: "error", httpStatus: 500, rawBody: "oops" }],
    ["HTTP 503 + 131016", metaError(503, 131016)],
    ["130429 throughput", metaError(400, 130429)],
    ["131056 pair rate", metaError(400, 131056)],
    ["131000 unknown error", metaError(500, 131000)],
  ];
  test.each(cases)("%s", async (_name, reply) => {
    const { phone, contactId } = await newPhone();
    graph.next(reply, { to: phone });
    const [id] = await h.send(contactId, [text("retry me")]);
    const row = await finalRow(id!);
    expect(row.status).toBe("sent");
    expect(graph.to(phone)).toHaveLength(2);
    const a = await attempts(id!);
    expect(a.map((x) => x.outcome)).toEqual(["transient_error", "accepted"]);
    if (reply.kind === "error") expect(a[0]!.httpStatus).toBe(reply.httpStatus);
    if (reply.kind === "error" && reply.code) expect(a[0]!.errorCode).toBe(reply.code);
  });

  test("131016 with Retry-After: the retry waits that long", async () => {
    const { phone, contactId } = await newPhone();
    graph.next(metaError(503, 131016, { headers: { "retry-after": "1" } }), { to: phone });
    const [id] = await h.send(contactId, [text("after a while")]);
    expect((await finalRow(id!)).status).toBe("sent");
    const [first, second] = graph.to(phone);
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  });

  test("131056 twice: 4^X backoff (base, then 4× base) for that recipient only", async () => {
    const { phone, contactId } = await newPhone();
    graph.next(metaError(400, 131056), { to: phone, times: 2 });
    const [id] = await h.send(contactId, [text("pair rate")]);
    expect((await finalRow(id!)).status).toBe("sent");
    const r = graph.to(phone);
    expect(r).toHaveLength(3);
    expect(r[1]!.at - r[0]!.at).toBeGreaterThanOrEqual(140); // pairBaseMs 150 × 4^0
    expect(r[2]!.at - r[1]!.at).toBeGreaterThanOrEqual(590); // 150 × 4^1
  });

  test("still failing on the last attempt: failed with Meta's code", async () => {
    const { phone, contactId } = await newPhone();
    graph.next(metaError(500, 131000, { title: "Something went wrong" }), { to: phone, times: 10 });
    const [id] = await h.send(contactId, [text("never")]);
    const row = await finalRow(id!);
    expect(row.status).toBe("failed");
    expect(row.errorCode).toBe(131000);
    expect(row.errorTitle).toBe("Something went wrong");
    expect(graph.to(phone)).toHaveLength(4); // OUTBOUND_MAX_ATTEMPTS
    expect((await attempts(id!)).every((a) => a.outcome === "transient_error")).toBe(true);
    graph.reset();
  });
});

describe("permanent errors are not retried", () => {
  test.each([
    [131026, 400, "Message undeliverable"],
    [132001, 404, "Template name does not exist in the translation"],
    [190, 401, "Error validating access token: Session has expired"],
  ])("%i", async (code, httpStatus, title) => {
    const { phone, contactId } = await newPhone();
    graph.next(metaError(httpStatus, code, { title }), { to: phone });
    const [id] = await h.send(contactId, [text("no luck")]);
    const row = await finalRow(id!);
    expect(row).toMatchObject({ status: "failed", errorCode: code, errorTitle: title, wamid: null });
    expect(row.failedAt).toBeInstanceOf(Date);
    const a = await attempts(id!);
    expect(a.map((x) => [x.outcome, x.errorCode, x.httpStatus])).toEqual([["permanent_error", code, httpStatus]]);
    await waitFor(async () => (await h.outboundQueue.getJobState(jobIds.outbound(id!))) === "failed", 5_000, "job failed");
    expect(graph.to(phone)).toHaveLength(1);
  });
});

test("a timeout is recorded as unknown and retried (at-least-once), and counted", async () => {
  const before = await countUnknownSends(h.prisma);
  const { phone, contactId } = await newPhone();
  graph.next({ kind: "hang" }, { to: phone });
  const [id] = await h.send(contactId, [text("are you there")]);
  const row = await finalRow(id!);
  expect(row.status).toBe("sent");
  expect(graph.to(phone)).toHaveLength(2);
  expect((await attempts(id!)).map((a) => a.outcome)).toEqual(["unknown", "accepted"]);
  const after = await countUnknownSends(h.prisma);
  expect(after.unknown - before.unknown).toBe(1);
  expect(after.possiblyRepeated - before.possiblyRepeated).toBe(1);
});

test("three messages to one recipient go out in order, paced, even when the first must be retried", async () => {
  const { phone, contactId } = await newPhone();
  graph.next(metaError(500, 131000), { to: phone });
  const ids = await h.send(contactId, [text("one"), text("two"), text("three")]);
  for (const id of ids) expect((await finalRow(id)).status).toBe("sent");
  const reqs = graph.to(phone);
  const accepted = reqs.slice(1); // the first request was the failure
  expect(reqs.map((r) => (r.body.text as { body: string }).body)).toEqual(["one", "one", "two", "three"]);
  for (let i = 1; i < accepted.length; i++) expect(accepted[i]!.at - accepted[i - 1]!.at).toBeGreaterThanOrEqual(GAP_MS - 10);
});

test("messages to different recipients are not held up by one recipient's retries", async () => {
  const a = await newPhone();
  const b = await newPhone();
  graph.next(metaError(503, 131016, { headers: { "retry-after": "2" } }), { to: a.phone });
  const [slow] = await h.send(a.contactId, [text("slow")]);
  await waitFor(async () => graph.to(a.phone).length === 1, 5_000, "first attempt");
  const [fast] = await h.send(b.contactId, [text("fast")]);
  const fastRow = await finalRow(fast!);
  const slowNow = await h.prisma.message.findUniqueOrThrow({ where: { id: slow! } });
  expect(fastRow.status).toBe("sent");
  expect(slowNow.status).toBe("queued"); // still waiting for its Retry-After
  expect((await finalRow(slow!)).status).toBe("sent");
});

test("a job for a message already sent does nothing (idempotent)", async () => {
  const { phone, contactId } = await newPhone();
  const [id] = await h.send(contactId, [text("once")]);
  await finalRow(id!);
  await h.outboundQueue.add("send", { messageId: id! }, { jobId: `again-${id}` });
  await waitFor(async () => (await h.outboundQueue.getJobCounts("completed", "waiting", "active")).waiting === 0, 5_000);
  await new Promise((r) => setTimeout(r, 100));
  expect(graph.to(phone)).toHaveLength(1);
});

test("a username-only contact is sent to by BSUID", async () => {
  const userId = "US.13491208655302741918";
  const contactId = await h.contact(null, userId);
  const [id] = await h.send(contactId, [text("hi there")]);
  expect((await finalRow(id!)).status).toBe("sent");
  const r = graph.requests.find((x) => x.body.recipient === userId)!;
  expect(r.raw).toBe(`{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"${userId}","type":"text","text":{"body":"hi there"}}`);
});

test("backoff strategy: full jitter under the cap, 4^X for the pair rate, Retry-After as a floor", () => {
  const s = cloudApiBackoff({ baseMs: 1000, capMs: 60_000, pairBaseMs: 1000 }, () => 0.999);
  expect(s(1)).toBeLessThan(1000);
  expect(s(3)).toBeGreaterThan(3900);
  expect(s(20)).toBeLessThan(60_000);
  expect(cloudApiBackoff({}, () => 0)(5)).toBe(0);
  const pair = (x: number) => new RetryableSendError({ ok: false, kind: "transient", code: 131056 }, x);
  expect(s(1, "cloud-api", pair(0))).toBe(1000);
  expect(s(2, "cloud-api", pair(1))).toBe(4000);
  expect(s(3, "cloud-api", pair(2))).toBe(16000);
  const ra = new RetryableSendError({ ok: false, kind: "transient", code: 130429, retryAfterMs: 30_000 });
  expect(cloudApiBackoff({}, () => 0)(1, "cloud-api", ra)).toBe(30_000);
});

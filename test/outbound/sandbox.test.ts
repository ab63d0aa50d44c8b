import http from "node:http";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import type { Redis } from "ioredis";
import { createIngest } from "../../src/ingest/ingest";
import { Mailboxes } from "../../src/ingest/mailbox";
import type { OutboundContent } from "../../src/messaging/outbox";
import { QUEUES, type EncryptedJob } from "../../src/queues/jobs";
import { countUnknownSends } from "../../src/queues/outbound.worker";
import { producerConnection } from "../../src/queues/redis";
import { createSandbox, type Sandbox } from "../../src/sandbox/sandbox";
import { createHarness, waitFor, type Harness } from "./harness";

/**
 * The send and status workers against the Cloud API sandbox, end to end: worker → sandbox (Meta's validation,
 * errors and faults) → signed status webhooks → ingest → status queue → status worker → the message row.
 */
let sandbox: Sandbox;
let sandboxServer: { url: string; close(): Promise<void> };
let h: Harness;
let receiver: http.Server;
let producer: Redis;
let inboundQueue: Queue<EncryptedJob>;
let n = 0;

beforeAll(async () => {
  // the sandbox needs the tenant's number and token before the harness makes them: take them from a config first
  const { testConfig } = await import("../helpers/env");
  const seed = testConfig();
  sandbox = createSandbox({
    appSecret: seed.WHATSAPP_APP_SECRET,
    phoneNumbers: [{ phoneNumberId: seed.WHATSAPP_PHONE_NUMBER_ID, displayPhoneNumber: "15550001234", accessToken: seed.WHATSAPP_ACCESS_TOKEN }],
    statusDelaysMs: { sent: 5, delivered: 30, read: 60 },
  });
  sandboxServer = await sandbox.listen(0);
  h = await createHarness(sandboxServer.url, {
    WHATSAPP_APP_SECRET: seed.WHATSAPP_APP_SECRET,
    WHATSAPP_PHONE_NUMBER_ID: seed.WHATSAPP_PHONE_NUMBER_ID,
    WHATSAPP_ACCESS_TOKEN: seed.WHATSAPP_ACCESS_TOKEN,
    OUTBOUND_TIMEOUT_MS: "300",
    OUTBOUND_MAX_ATTEMPTS: "4",
    OUTBOUND_RECIPIENT_GAP_MS: "80",
  });
  producer = producerConnection(h.config.REDIS_URL);
  inboundQueue = new Queue<EncryptedJob>(QUEUES.inbound, { connection: producer, prefix: h.config.QUEUE_PREFIX });
  const ingest = createIngest({
    appSecret: h.config.WHATSAPP_APP_SECRET,
    keyring: h.keyring,
    redis: producer,
    mailboxes: new Mailboxes(producer, h.config.QUEUE_PREFIX, h.keyring),
    inboundQueue,
    statusQueue: h.statusQueue,
    logger: h.logger,
  });
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      void ingest(Buffer.concat(chunks), req.headers["x-hub-signature-256"]).then((o) => {
        res.writeHead(o.kind === "accepted" ? 200 : o.kind === "verification_failed" ? 401 : 503).end();
      });
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  sandbox.setWebhookUrl(`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhook`);
  h.startOutbound();
  h.startStatus();
});

afterAll(async () => {
  await h.close();
  await inboundQueue.obliterate({ force: true }).catch(() => undefined);
  await inboundQueue.close();
  await producer.quit();
  await sandbox.close();
  await sandboxServer.close();
  receiver.closeAllConnections();
  await new Promise<void>((r) => receiver.close(() => r()));
});

/** A customer who has written to us (the 24-hour window is open). */
async function customer(): Promise<{ phone: string; digits: string; contactId: string }> {
  const digits = `4915112${String(++n).padStart(5, "0")}`;
  await sandbox.injectInbound({ from: digits, text: "hello" });
  return { phone: `+${digits}`, digits, contactId: await h.contact(`+${digits}`) };
}

const text = (body: string): OutboundContent => ({ type: "text", text: { body } });
const sends = (digits: string) => sandbox.requests().filter((r) => String((r.body as { to?: string })?.to ?? "").replace(/\D/g, "") === digits);

async function rowWhen(id: string, statuses: string[], what = statuses.join("/")) {
  return waitFor(async () => {
    const m = await h.prisma.message.findUniqueOrThrow({ where: { id } });
    return statuses.includes(m.status) ? m : null;
  }, 15_000, `message ${what}`);
}

test("a reply goes out and its status webhooks bring the row to read", async () => {
  const c = await customer();
  const [id] = await h.send(c.contactId, [text("Hi! How can I help?")]);
  const row = await rowWhen(id!, ["read"]);
  expect(row.wamid).toBe(sends(c.digits)[0]!.wamid);
  expect(row.deliveredAt).toBeInstanceOf(Date);
  expect(row.readAt).toBeInstanceOf(Date);
  // The sandbox may send `sent` before the worker has stored the wamid: that status is held and retried with backoff,
  // so it can land after `read`. All three must end up recorded and applied, each once.
  const events = await waitFor(async () => {
    const rows = await h.prisma.statusEvent.findMany({ where: { wamid: row.wamid! } });
    return rows.length === 3 && rows.every((e) => e.applied) ? rows : null;
  }, 15_000, "three applied status events");
  expect(events.map((e) => e.status).sort()).toEqual(["delivered", "read", "sent"]);
  expect((await rowWhen(id!, ["read"])).sentAt).toBeInstanceOf(Date);
});

test("the OTP template reaches the sandbox as the contract's JSON and is accepted", async () => {
  const c = await customer();
  const otp: OutboundContent = {
    type: "template",
    template: {
      name: "verification_code",
      language: { code: "en_US" },
      components: [
        { type: "body", parameters: [{ type: "text", text: "123456" }] },
        { type: "button", sub_type: "url", index: "0", parameters: [{ type: "text", text: "123456" }] },
      ],
    },
  };
  const [id] = await h.send(c.contactId, [otp]);
  await rowWhen(id!, ["delivered", "read"]);
  const [req] = sends(c.digits);
  expect(req!.responseStatus).toBe(200);
  expect(req!.body).toEqual({ messaging_product: "whatsapp", recipient_type: "individual", to: c.phone, ...otp });
  expect(sandbox.conversation(c.digits).some((m) => m.direction === "outbound" && m.text.includes("123456"))).toBe(true);
});

describe("sandbox faults", () => {
  test.each([
    ["rate_limit", 130429],
    ["pair_rate", 131056],
    ["server_error", 131000],
  ] as const)("%s (%i) is retried, then sent", async (type, code) => {
    const c = await customer();
    sandbox.addFault({ type, to: c.digits });
    const [id] = await h.send(c.contactId, [text(`after ${type}`)]);
    await rowWhen(id!, ["sent", "delivered", "read"]);
    expect(sends(c.digits).map((r) => r.errorCode ?? r.responseStatus)).toEqual([code, 200]);
  });

  test("service_unavailable (131016) with Retry-After: 1 waits a second", async () => {
    const c = await customer();
    sandbox.addFault({ type: "service_unavailable", to: c.digits, retryAfterSeconds: 1 });
    const [id] = await h.send(c.contactId, [text("later")]);
    await rowWhen(id!, ["sent", "delivered", "read"]);
    const [a, b] = sends(c.digits);
    expect(a!.errorCode).toBe(131016);
    expect(b!.at - a!.at).toBeGreaterThanOrEqual(950);
  });

  test("token_expired (190) fails at once", async () => {
    const c = await customer();
    sandbox.addFault({ type: "token_expired", to: c.digits });
    const [id] = await h.send(c.contactId, [text("nope")]);
    const row = await rowWhen(id!, ["failed"]);
    expect(row.errorCode).toBe(190);
    await new Promise((r) => setTimeout(r, 150));
    expect(sends(c.digits)).toHaveLength(1);
  });

  test("a template that is not approved in that language (132001) fails at once", async () => {
    const c = await customer();
    const [id] = await h.send(c.contactId, [{ type: "template", template: { name: "verification_code", language: { code: "fr" }, components: [] } }]);
    const row = await rowWhen(id!, ["failed"]);
    expect(row.errorCode).toBe(132001);
    expect(sends(c.digits)).toHaveLength(1);
  });

  test("undeliverable (131026, reported by a failed status webhook) ends failed with the code", async () => {
    const c = await customer();
    sandbox.addFault({ type: "undeliverable", to: c.digits });
    const [id] = await h.send(c.contactId, [text("to nowhere")]);
    const row = await rowWhen(id!, ["failed"]);
    expect(row.errorCode).toBe(131026);
    expect(row.wamid).toBeTruthy();
  });

  test("timeout: recorded as unknown, retried; the sandbox got it twice (at-least-once)", async () => {
    const before = await countUnknownSends(h.prisma);
    const c = await customer();
    sandbox.addFault({ type: "timeout", to: c.digits, timeoutMs: 1_000 });
    const [id] = await h.send(c.contactId, [text("slow network")]);
    await rowWhen(id!, ["sent", "delivered", "read"]);
    const outcomes = (await h.prisma.sendAttempt.findMany({ where: { messageId: id! }, orderBy: { attempt: "asc" } })).map((a) => a.outcome);
    expect(outcomes).toEqual(["unknown", "accepted"]);
    expect(sends(c.digits)).toHaveLength(2);
    expect((await countUnknownSends(h.prisma)).unknown - before.unknown).toBe(1);
  });
});

test("three messages to one customer arrive in order, even when the first is retried", async () => {
  const c = await customer();
  sandbox.addFault({ type: "server_error", to: c.digits });
  const ids = await h.send(c.contactId, [text("first"), text("second"), text("third")]);
  for (const id of ids) await rowWhen(id, ["sent", "delivered", "read"]);
  const outbound = sandbox.conversation(c.digits).filter((m) => m.direction === "outbound");
  expect(outbound.map((m) => m.text)).toEqual(["first", "second", "third"]);
});

import { randomUUID } from "node:crypto";
import { transaction, type PrismaClient } from "../../src/db/prisma";
import { getCallback, rotateSecret, setCallback, InvalidCallbackUrlError } from "../../src/events/callback";
import { EventPublisher } from "../../src/events/publisher";
import { verifyEvent } from "../../src/events/signature";
import type { EventData, EventType } from "../../src/events/types";
import { jobIds } from "../../src/queues/jobs";
import { Keyring } from "../../src/shared/crypto";
import { SecretInDataError } from "../../src/shared/no-secrets";
import { readSettings } from "../../src/tenants/settings";
import { waitFor } from "../outbound/harness";
import { startEventsHarness, type EventsHarness } from "./harness";
import { Receiver } from "./receiver";

const MAX_ATTEMPTS = 4;
let harness: EventsHarness;
let prisma: PrismaClient;
let keyring: Keyring;
let queue: EventsHarness["queue"];
let publisher: EventPublisher;
let receiver: Receiver;

beforeAll(async () => {
  receiver = new Receiver();
  await receiver.listen();
  // the receiver is a local HTTP server: development mode, opted into explicitly (test/attacks/ssrf.test.ts holds the other modes)
  harness = await startEventsHarness({ maxAttempts: MAX_ATTEMPTS, timeoutMs: 1_000, dev: true, backoff: { baseMs: 20, factor: 2, capMs: 100 } });
  ({ prisma, keyring, queue, publisher } = harness);
});

afterAll(async () => {
  await harness.close();
  await receiver.close();
});

let tenantSeq = 0;
async function newTenant(): Promise<string> {
  const row = await prisma.tenant.create({
    data: {
      name: `t${++tenantSeq}`,
      phoneNumberId: String(200000000000000 + Math.floor(Math.random() * 1e12)),
      displayPhoneNumber: "15550001234",
      accessTokenEnc: keyring.encrypt("tenant-token", "EAAG-token"),
    },
  });
  return row.id;
}

/** a tenant whose callback is `path` on the receiver; returns its id and secret */
async function subscribed(path: string, script: Parameters<Receiver["script"]>[1] = [{ status: 200 }]): Promise<{ tenantId: string; secret: string }> {
  const tenantId = await newTenant();
  const { secret } = await setCallback(prisma, keyring, tenantId, receiver.script(path, script), { dev: true });
  return { tenantId, secret: secret! };
}

function approved(): EventData<"verification.approved"> {
  return { verificationId: randomUUID(), to: "+14155550123", purpose: "login", channel: "whatsapp", status: "approved", attempts: 1 };
}

async function publish<T extends EventType>(tenantId: string, type: T, data: EventData<T>): Promise<string | null> {
  const id = await transaction(prisma, (tx) => EventPublisher.publish(tx, { tenantId, type, data, now: new Date() }));
  await publisher.dispatch([id]);
  return id;
}

async function finalRow(id: string) {
  return waitFor(async () => {
    const row = await prisma.eventDelivery.findUniqueOrThrow({ where: { id } });
    return row.status === "pending" ? null : row;
  }, 10_000, `delivery ${id} to end`);
}

test("an event is delivered signed; the signature verifies, a tampered body or old timestamp does not", async () => {
  const { tenantId, secret } = await subscribed("/ok");
  const data = approved();
  const id = await publish(tenantId, "verification.approved", data);
  const row = await finalRow(id!);
  expect(row).toMatchObject({ status: "delivered", attempts: 1, lastStatus: 200, lastError: null, type: "verification.approved" });
  expect(row.deliveredAt).toBeInstanceOf(Date);

  const [req] = receiver.at("/ok");
  expect(req!.headers["content-type"]).toBe("application/json");
  expect(req!.headers["x-wabot-event-id"]).toBe(id);
  expect(req!.headers["x-wabot-event-type"]).toBe("verification.approved");
  const header = req!.headers["x-wabot-signature"] as string;
  expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
  expect(verifyEvent(secret, header, req!.raw)).toEqual({ ok: true, timestamp: expect.any(Number) });

  const body = JSON.parse(req!.raw);
  expect(Object.keys(body)).toEqual(["id", "type", "createdAt", "tenantId", "data"]);
  expect(body).toMatchObject({ id, type: "verification.approved", tenantId, data });

  expect(verifyEvent(secret, header, req!.raw.replace('"approved"', '"canceled"')).ok).toBe(false);
  expect(verifyEvent(secret, header, req!.raw, { now: Date.now() + 10 * 60_000 })).toEqual({ ok: false, reason: "timestamp_out_of_tolerance" });
  expect(verifyEvent("whsec_wrong", header, req!.raw).ok).toBe(false);
});

test("500 twice then 200: delivered on the 3rd attempt, same id and body each time; the job carries only the id", async () => {
  const { tenantId, secret } = await subscribed("/flaky", [{ status: 500 }, { status: 500 }, { status: 200 }]);
  const id = await transaction(prisma, (tx) => EventPublisher.publish(tx, { tenantId, type: "verification.sent", data: { ...approved(), status: "pending" }, now: new Date() }));
  await queue.pause(); // look at the job before the worker takes it
  await publisher.dispatch([id]);
  const job = await queue.getJob(jobIds.event(id!));
  expect(job?.id).toBe(`e-${id}`);
  expect(job?.data).toEqual({ deliveryId: id });
  await queue.resume();

  const row = await finalRow(id!);
  expect(row).toMatchObject({ status: "delivered", attempts: 3, lastStatus: 200 });
  const reqs = receiver.at("/flaky");
  expect(reqs).toHaveLength(3);
  expect(new Set(reqs.map((r) => r.headers["x-wabot-event-id"]))).toEqual(new Set([id]));
  expect(new Set(reqs.map((r) => r.raw)).size).toBe(1);
  for (const r of reqs) expect(verifyEvent(secret, r.headers["x-wabot-signature"] as string, r.raw).ok).toBe(true);
});

test("a receiver that always answers 500: failed after the last attempt; attempts, status and error recorded", async () => {
  const { tenantId, secret } = await subscribed("/down", [{ status: 500, body: "boom" }]);
  const id = await publish(tenantId, "verification.expired", { ...approved(), status: "expired" });
  const row = await finalRow(id!);
  expect(row).toMatchObject({ status: "failed", attempts: MAX_ATTEMPTS, lastStatus: 500, lastError: "HTTP 500", deliveredAt: null });
  expect(receiver.at("/down")).toHaveLength(MAX_ATTEMPTS);
  expect(JSON.stringify(row)).not.toContain(secret);
});

test("a 4xx is retried and counted; a redirect is not followed", async () => {
  const { tenantId } = await subscribed("/moved", [{ status: 302, headers: { location: `${receiver.url}/elsewhere` } }, { status: 404 }, { status: 204 }]);
  const id = await publish(tenantId, "verification.canceled", { ...approved(), status: "canceled", reason: "api" });
  const row = await finalRow(id!);
  expect(row).toMatchObject({ status: "delivered", attempts: 3, lastStatus: 204 });
  expect(receiver.at("/elsewhere")).toHaveLength(0);
});

test("no callback URL: publish returns null and stores nothing", async () => {
  const tenantId = await newTenant();
  const id = await transaction(prisma, (tx) => EventPublisher.publish(tx, { tenantId, type: "verification.approved", data: approved(), now: new Date() }));
  expect(id).toBeNull();
  expect(await prisma.eventDelivery.count({ where: { tenantId } })).toBe(0);
  await publisher.dispatch([id]); // a no-op
});

test("data with a code key at any depth is refused, and nothing is stored", async () => {
  const { tenantId } = await subscribed("/never");
  const bad = [
    { ...approved(), code: "123456" },
    { ...approved(), reason: "x", nested: { deeper: [{ otp: "123456" }] } },
    { ...approved(), verificationCode: "123456" },
    { ...approved(), PIN: "1234" },
  ];
  for (const data of bad) {
    await expect(
      transaction(prisma, (tx) => EventPublisher.publish(tx, { tenantId, type: "verification.approved", data: data as EventData<"verification.approved">, now: new Date() })),
    ).rejects.toThrow(SecretInDataError);
  }
  // not a secret, but not in the catalogue either: refused by the schema
  await expect(
    transaction(prisma, (tx) => EventPublisher.publish(tx, { tenantId, type: "verification.approved", data: { ...approved(), to: "0155" }, now: new Date() })),
  ).rejects.toThrow();
  expect(await prisma.eventDelivery.count({ where: { tenantId } })).toBe(0);
  expect(receiver.at("/never")).toHaveLength(0);
});

test("an event is written only if the caller's transaction commits", async () => {
  const { tenantId } = await subscribed("/rollback");
  await expect(
    transaction(prisma, async (tx) => {
      await EventPublisher.publish(tx, { tenantId, type: "verification.approved", data: approved(), now: new Date() });
      throw new Error("the change failed");
    }),
  ).rejects.toThrow("the change failed");
  expect(await prisma.eventDelivery.count({ where: { tenantId } })).toBe(0);
});

test("sweep re-dispatches a pending row whose job was never written", async () => {
  const { tenantId } = await subscribed("/swept");
  const id = await transaction(prisma, (tx) => EventPublisher.publish(tx, { tenantId, type: "number.blocked", data: { to: "+14155550123", until: new Date(Date.now() + 86_400_000).toISOString(), reason: "customer_report" }, now: new Date(Date.now() - 60_000) }));
  // (crash: no dispatch)
  expect(await publisher.sweep(30_000)).toBeGreaterThanOrEqual(1);
  const row = await finalRow(id!);
  expect(row.status).toBe("delivered");
  expect(JSON.parse(receiver.at("/swept")[0]!.raw).data).toMatchObject({ to: "+14155550123", reason: "customer_report" });
});

describe("setCallback", () => {
  test("validates the URL: http to a public host refused, https accepted; http loopback only in development mode", async () => {
    const tenantId = await newTenant();
    await expect(setCallback(prisma, keyring, tenantId, "http://example.com/hook")).rejects.toThrow(InvalidCallbackUrlError);
    await expect(setCallback(prisma, keyring, tenantId, "ftp://example.com/hook")).rejects.toThrow(InvalidCallbackUrlError);
    expect(await getCallback(prisma, tenantId)).toEqual({ url: null, hasSecret: false });

    const first = await setCallback(prisma, keyring, tenantId, "https://example.com/hook");
    expect(first.url).toBe("https://example.com/hook");
    expect(first.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    await expect(setCallback(prisma, keyring, tenantId, "http://localhost:8080/hook")).rejects.toThrow(InvalidCallbackUrlError);
    const dev = { dev: true };
    const loop = await setCallback(prisma, keyring, tenantId, "http://localhost:8080/hook", dev);
    expect(loop).toEqual({ url: "http://localhost:8080/hook", secret: null }); // shown once only
    expect((await setCallback(prisma, keyring, tenantId, "http://[::1]:8080/h", dev)).url).toBe("http://[::1]:8080/h");
    expect((await setCallback(prisma, keyring, tenantId, "http://127.0.0.1:8080/h", dev)).url).toBe("http://127.0.0.1:8080/h");
  });

  test("stores the secret encrypted, keeps the other settings, keeps the secret when the URL is removed; rotateSecret replaces it", async () => {
    const tenantId = await newTenant();
    await prisma.tenant.update({ where: { id: tenantId }, data: { settings: { otp: { codeLength: 8 } } } });
    const { secret } = await setCallback(prisma, keyring, tenantId, "https://example.com/hook");
    const stored = (await prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } })).settings;
    expect(JSON.stringify(stored)).not.toContain(secret!);
    const settings = readSettings(stored);
    expect(settings.otp.codeLength).toBe(8);
    expect(keyring.decryptString("tenant-token", settings.events.secretEnc!)).toBe(secret);

    expect(await setCallback(prisma, keyring, tenantId, null)).toEqual({ url: null, secret: null });
    expect(await getCallback(prisma, tenantId)).toEqual({ url: null, hasSecret: true });
    expect((await setCallback(prisma, keyring, tenantId, "https://example.com/again")).secret).toBeNull();

    const rotated = await rotateSecret(prisma, keyring, tenantId);
    expect(rotated.secret).not.toBe(secret);
    const after = readSettings((await prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } })).settings);
    expect(keyring.decryptString("tenant-token", after.events.secretEnc!)).toBe(rotated.secret);
    expect(after.events.url).toBe("https://example.com/again");
  });

  test("events after a rotation are signed with the new secret", async () => {
    const { tenantId, secret } = await subscribed("/rotated");
    const { secret: fresh } = await rotateSecret(prisma, keyring, tenantId);
    const id = await publish(tenantId, "verification.approved", approved());
    await finalRow(id!);
    const [req] = receiver.at("/rotated");
    expect(verifyEvent(fresh, req!.headers["x-wabot-signature"] as string, req!.raw).ok).toBe(true);
    expect(verifyEvent(secret, req!.headers["x-wabot-signature"] as string, req!.raw).ok).toBe(false);
  });
});

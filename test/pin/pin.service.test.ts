import pino from "pino";
import { createPrisma, transaction, type PrismaClient } from "../../src/db/prisma";
import { ManualClock } from "../../src/shared/clock";
import { PinService } from "../../src/pin/pin.service";
import { pinMatches } from "../../src/pin/pin-hash";
import { createTestDatabase } from "../helpers/db";

const PHONE = "+447700900847";
let db: { url: string; drop: () => Promise<void> };
let prisma: PrismaClient;
const clock = new ManualClock(Date.parse("2026-03-01T10:00:00Z"));
const logLines: string[] = [];
const logger = pino({ level: "debug" }, { write: (s: string) => void logLines.push(s) });
const pins = new PinService({ clock, logger });
let tenantId: string;
let n = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  prisma = createPrisma(db.url, 12);
  const t = await prisma.tenant.create({ data: { name: "t", phoneNumberId: "pn1", displayPhoneNumber: "+15550001", accessTokenEnc: "e", settings: { pin: { maxAttempts: 5, lockMinutes: 30, resetWaitDays: 7 } } } });
  tenantId = t.id;
});
afterAll(async () => {
  await prisma.$disconnect();
  await db.drop();
});

async function newContact(): Promise<string> {
  n++;
  const c = await prisma.contact.create({ data: { tenantId, waId: `4477009${String(n).padStart(5, "0")}`, phoneE164: PHONE } });
  return c.id;
}
const tx = <T>(fn: Parameters<typeof transaction<T>>[1]) => transaction(prisma, fn);

describe("isWeak", () => {
  test.each([
    ["12345", "exactly 6"],
    ["1234567", "exactly 6"],
    ["12a456", "exactly 6"],
    ["１２３４５６", "exactly 6"],
    ["000000", "one digit"],
    ["777777", "one digit"],
    ["123456", "consecutive"],
    ["654321", "consecutive"],
    ["012345", "consecutive"],
    ["789012", "consecutive"],
    ["121212", "pattern"],
    ["123123", "pattern"],
    ["900847", "phone number"],
    ["770090", "phone number"],
    ["112233", "common"],
    ["159753", "common"],
    ["147258", "common"],
    ["101010", "pattern"],
    ["696969", "pattern"],
  ])("%s is refused (%s)", (pin, why) => {
    const reason = pins.isWeak(pin, { phoneE164: PHONE });
    expect(reason).not.toBeNull();
    expect(reason!.toLowerCase()).toContain(why);
    expect(reason).not.toContain(pin);
  });

  test("ordinary PINs pass", () => {
    for (const pin of ["583920", "270416", "918273", "400817"]) expect(pins.isWeak(pin, { phoneE164: PHONE })).toBeNull();
    expect(pins.isWeak("900847")).toBeNull(); // without the number, its digits are not known
  });
});

describe("set and verify", () => {
  test("a weak PIN is refused and nothing is stored; the contact's own number counts", async () => {
    const contactId = await newContact();
    expect(await tx((t) => pins.set(t, { tenantId, contactId, pin: "123456" }))).toEqual({ ok: false, reason: "weak", message: expect.stringContaining("consecutive") });
    expect(await tx((t) => pins.set(t, { tenantId, contactId, pin: "900847" }))).toMatchObject({ ok: false, reason: "weak" });
    expect(await tx((t) => pins.has(t, contactId))).toBe(false);
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toEqual({ status: "not_set" });
  });

  test("right PIN approves, wrong one counts down; the stored hash holds no PIN and matches only the right one", async () => {
    const contactId = await newContact();
    logLines.length = 0;
    expect(await tx((t) => pins.set(t, { tenantId, contactId, pin: "583920", recoveryEmail: "a@example.com" }))).toEqual({ ok: true });
    expect(await tx((t) => pins.has(t, contactId))).toBe(true);
    const row = await prisma.contactPin.findUniqueOrThrow({ where: { contactId } });
    expect(row.pinHash).toMatch(/^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    expect(row.pinHash).not.toContain("583920");
    expect(Buffer.from(row.pinHash.split("$")[5]!, "base64").toString("latin1")).not.toContain("583920");
    expect(row.recoveryEmail).toBe("a@example.com");
    expect(await pinMatches("583920", row.pinHash)).toBe(true);
    expect(await pinMatches("583921", row.pinHash)).toBe(false);

    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toEqual({ status: "approved" });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "111119" }))).toEqual({ status: "wrong", attemptsLeft: 4 });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "111118" }))).toEqual({ status: "wrong", attemptsLeft: 3 });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toEqual({ status: "approved" });
    expect((await prisma.contactPin.findUniqueOrThrow({ where: { contactId } })).failedAttempts).toBe(0);
    // another tenant cannot verify this contact's PIN
    const other = await prisma.tenant.create({ data: { name: "o", phoneNumberId: "pn2", displayPhoneNumber: "+15550002", accessTokenEnc: "e" } });
    expect(await tx((t) => pins.verify(t, { tenantId: other.id, contactId, pin: "583920" }))).toEqual({ status: "not_set" });

    // re-setting keeps the recovery email unless told otherwise
    expect(await tx((t) => pins.set(t, { tenantId, contactId, pin: "270416" }))).toEqual({ ok: true });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toMatchObject({ status: "wrong" });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "270416" }))).toEqual({ status: "approved" });
    expect(await tx((t) => pins.recoveryEmail(t, contactId))).toBe("a@example.com");

    const logs = logLines.join("\n");
    for (const p of ["583920", "270416", "111119", "scrypt$"]) expect(logs).not.toContain(p);
  });

  test("locks at maxAttempts, even the right PIN is refused while locked, unlocks after lockMinutes", async () => {
    const contactId = await newContact();
    await tx((t) => pins.set(t, { tenantId, contactId, pin: "583920" }));
    for (let i = 4; i >= 1; i--) expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "000001" }))).toEqual({ status: "wrong", attemptsLeft: i });
    const until = new Date(clock.now().getTime() + 30 * 60_000);
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "000001" }))).toEqual({ status: "locked", until });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toEqual({ status: "locked", until });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "000002" }))).toEqual({ status: "locked", until });
    expect((await prisma.contactPin.findUniqueOrThrow({ where: { contactId } })).failedAttempts).toBe(5);

    clock.advance(30 * 60_000 - 1);
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toEqual({ status: "locked", until });
    clock.advance(1);
    // after the lock a fresh count starts
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "000001" }))).toEqual({ status: "wrong", attemptsLeft: 4 });
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toEqual({ status: "approved" });
    const row = await prisma.contactPin.findUniqueOrThrow({ where: { contactId } });
    expect(row).toMatchObject({ failedAttempts: 0, lockedUntil: null });
  });

  test("the tenant's settings decide the cap and the lock", async () => {
    const t2 = await prisma.tenant.create({ data: { name: "t2", phoneNumberId: "pn3", displayPhoneNumber: "+15550003", accessTokenEnc: "e", settings: { pin: { maxAttempts: 2, lockMinutes: 5 } } } });
    const c = await prisma.contact.create({ data: { tenantId: t2.id, waId: "15550009999" } });
    await tx((t) => pins.set(t, { tenantId: t2.id, contactId: c.id, pin: "583920" }));
    expect(await tx((t) => pins.verify(t, { tenantId: t2.id, contactId: c.id, pin: "000001" }))).toEqual({ status: "wrong", attemptsLeft: 1 });
    expect(await tx((t) => pins.verify(t, { tenantId: t2.id, contactId: c.id, pin: "000001" }))).toEqual({ status: "locked", until: new Date(clock.now().getTime() + 5 * 60_000) });
  });

  test("concurrent wrong attempts never exceed the cap", async () => {
    const contactId = await newContact();
    await tx((t) => pins.set(t, { tenantId, contactId, pin: "583920" }));
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => tx((t) => pins.verify(t, { tenantId, contactId, pin: `10000${i}` }))));
    const wrong = results.filter((r) => r.status === "wrong");
    const locked = results.filter((r) => r.status === "locked");
    expect(wrong).toHaveLength(4);
    expect(locked).toHaveLength(6);
    expect(wrong.map((r) => (r as { attemptsLeft: number }).attemptsLeft).sort()).toEqual([1, 2, 3, 4]);
    expect((await prisma.contactPin.findUniqueOrThrow({ where: { contactId } })).failedAttempts).toBe(5);
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toMatchObject({ status: "locked" });
  });

  test("remove and the waiting-period reset: the wait counts from the request, a right PIN cancels it", async () => {
    const contactId = await newContact();
    await tx((t) => pins.set(t, { tenantId, contactId, pin: "583920" }));
    expect(await tx((t) => pins.pendingReset(t, contactId))).toBeNull();
    // a PIN set 30 days ago is not due at once: the first request starts the wait
    clock.advance(30 * 86_400_000);
    const askedAt = clock.now();
    expect(await tx((t) => pins.requestReset(t, contactId))).toEqual({ state: "requested", requestedAt: askedAt, availableAt: new Date(askedAt.getTime() + 7 * 86_400_000) });
    clock.advance(86_400_000);
    // asking again does not move the start; wrong attempts leave it alone
    expect(await tx((t) => pins.requestReset(t, contactId))).toMatchObject({ state: "waiting", requestedAt: askedAt });
    await tx((t) => pins.verify(t, { tenantId, contactId, pin: "000001" }));
    expect(await tx((t) => pins.pendingReset(t, contactId))).toMatchObject({ requestedAt: askedAt });
    // the owner types the right PIN: the reset is cancelled
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "583920" }))).toEqual({ status: "approved" });
    expect(await tx((t) => pins.pendingReset(t, contactId))).toBeNull();
    expect(await tx((t) => pins.provenWithin(t, contactId))).toBe(true);
    clock.advance(16 * 60_000);
    expect(await tx((t) => pins.provenWithin(t, contactId))).toBe(false);
    // a new request, left alone for the whole wait, is due
    await tx((t) => pins.requestReset(t, contactId));
    clock.advance(7 * 86_400_000);
    expect(await tx((t) => pins.requestReset(t, contactId))).toMatchObject({ state: "due" });
    expect(await tx((t) => pins.cancelReset(t, contactId))).toBe(true);
    expect(await tx((t) => pins.cancelReset(t, contactId))).toBe(false);
    await tx((t) => pins.remove(t, contactId));
    expect(await tx((t) => pins.has(t, contactId))).toBe(false);
    expect(await tx((t) => pins.verify(t, { tenantId, contactId, pin: "270416" }))).toEqual({ status: "not_set" });
  });
});

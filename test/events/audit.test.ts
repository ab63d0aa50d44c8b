import { randomUUID } from "node:crypto";
import { listAudit, recordAudit, InvalidAuditQueryError } from "../../src/audit/audit";
import { createPrisma, transaction, type PrismaClient } from "../../src/db/prisma";
import { maskPhone } from "../../src/observability/logger";
import { SecretInDataError } from "../../src/shared/no-secrets";
import { createTestDatabase } from "../helpers/db";

let db: { url: string; drop: () => Promise<void> };
let prisma: PrismaClient;

beforeAll(async () => {
  db = await createTestDatabase();
  prisma = createPrisma(db.url, 3);
});
afterAll(async () => {
  await prisma.$disconnect();
  await db.drop();
});

const T0 = new Date("2025-06-01T12:00:00.000Z");
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

async function seed() {
  const tenantId = randomUUID();
  const other = randomUUID();
  const v1 = randomUUID();
  const v2 = randomUUID();
  await transaction(prisma, async (tx) => {
    await recordAudit(tx, { tenantId, type: "verification.requested", actor: "api_key:k1", verificationId: v1, subject: "+447700900123", data: { channel: "whatsapp" }, at: at(0) });
    await recordAudit(tx, { tenantId, type: "verification.checked_wrong", actor: "api_key:k1", verificationId: v1, subject: maskPhone("+447700900123"), data: { attempts: 1 }, at: at(1) });
    await recordAudit(tx, { tenantId, type: "verification.approved", actor: "api_key:k1", verificationId: v1, subject: "+447700900123", at: at(2) });
    await recordAudit(tx, { tenantId, type: "verification.requested", actor: "customer", verificationId: v2, subject: "+14155550199", at: at(3) });
    await recordAudit(tx, { tenantId, type: "settings.callback_set", actor: "admin", subject: tenantId, data: { url: "https://example.com/h" }, at: at(4) });
    await recordAudit(tx, { tenantId: other, type: "verification.requested", actor: "api_key:k9", verificationId: randomUUID(), subject: "+447700900123", at: at(5) });
  });
  return { tenantId, v1, v2 };
}

test("rows are written with the number masked, and listed newest first with filters", async () => {
  const { tenantId, v1, v2 } = await seed();
  const all = await listAudit(prisma, { tenantId });
  expect(all.items.map((r) => r.type)).toEqual([
    "settings.callback_set", "verification.requested", "verification.approved", "verification.checked_wrong", "verification.requested",
  ]);
  expect(all.nextCursor).toBeNull();
  const first = all.items[4]!;
  expect(first).toMatchObject({ tenantId, actor: "api_key:k1", verificationId: v1, subject: maskPhone("+447700900123"), data: { channel: "whatsapp" }, createdAt: at(0) });
  expect(JSON.stringify(all.items)).not.toContain("+447700900123");

  expect((await listAudit(prisma, { tenantId, verificationId: v1 })).items.map((r) => r.type)).toEqual(["verification.approved", "verification.checked_wrong", "verification.requested"]);
  expect((await listAudit(prisma, { tenantId, type: "verification.requested" })).items.map((r) => r.verificationId)).toEqual([v2, v1]);
  expect((await listAudit(prisma, { tenantId, type: ["verification.approved", "settings.callback_set"] })).items).toHaveLength(2);
  // by number: given in E.164 or masked
  expect((await listAudit(prisma, { tenantId, subject: "+447700900123" })).items).toHaveLength(3);
  expect((await listAudit(prisma, { tenantId, subject: maskPhone("+447700900123")! })).items).toHaveLength(3);
  expect((await listAudit(prisma, { tenantId, subject: tenantId })).items.map((r) => r.type)).toEqual(["settings.callback_set"]);
  // since inclusive, until exclusive
  expect((await listAudit(prisma, { tenantId, since: at(1), until: at(3) })).items.map((r) => r.createdAt)).toEqual([at(2), at(1)]);
});

test("pages with a cursor, newest first, and bounds the limit", async () => {
  const { tenantId } = await seed();
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await listAudit(prisma, { tenantId, limit: 2, cursor });
    seen.push(...page.items.map((r) => r.id));
    cursor = page.nextCursor ?? undefined;
    pages++;
  } while (cursor);
  expect(pages).toBe(3);
  const all = await listAudit(prisma, { tenantId, limit: 500 });
  expect(seen).toEqual(all.items.map((r) => r.id));
  await expect(listAudit(prisma, { tenantId, limit: 501 })).rejects.toThrow(InvalidAuditQueryError);
  await expect(listAudit(prisma, { tenantId, cursor: "garbage" })).rejects.toThrow(InvalidAuditQueryError);
});

test("rows with the same timestamp page without loss or repeat", async () => {
  const tenantId = randomUUID();
  await transaction(prisma, async (tx) => {
    for (let i = 0; i < 7; i++) await recordAudit(tx, { tenantId, type: "verification.sent", actor: "system", data: { i }, at: T0 });
  });
  const ids = new Set<string>();
  let cursor: string | undefined;
  do {
    const page = await listAudit(prisma, { tenantId, limit: 3, cursor });
    page.items.forEach((r) => ids.add(r.id));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  expect(ids.size).toBe(7);
});

test("data with a code, otp, pin, secret or token key is refused; nothing is written", async () => {
  const tenantId = randomUUID();
  for (const data of [{ code: "123456" }, { nested: [{ otp: "1" }] }, { pin: "1234" }, { secretEnc: "x" }, { accessToken: "EAAG" }, { token: "t" }]) {
    await expect(recordAudit(prisma, { tenantId, type: "verification.checked_wrong", actor: "customer", data })).rejects.toThrow(SecretInDataError);
  }
  await expect(recordAudit(prisma, { tenantId, type: "Bad Type", actor: "admin" })).rejects.toThrow();
  expect((await listAudit(prisma, { tenantId })).items).toHaveLength(0);
  // the tenant may be null (deployment-wide actions); errorCode is not a code
  const id = await recordAudit(prisma, { tenantId: null, type: "system.started", actor: "system", data: { errorCode: "131026" } });
  expect(await prisma.auditEvent.findUniqueOrThrow({ where: { id } })).toMatchObject({ tenantId: null, data: { errorCode: "131026" } });
});

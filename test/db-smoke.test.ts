import { createPrisma } from "../src/db/prisma";
import { createTestDatabase } from "./helpers/db";

test("a test database is migrated and reachable through Prisma", async () => {
  const db = await createTestDatabase();
  const prisma = createPrisma(db.url, 2);
  try {
    const t = await prisma.tenant.create({ data: { name: "x", phoneNumberId: "1", displayPhoneNumber: "1", accessTokenEnc: "e" } });
    expect(await prisma.tenant.count()).toBe(1);
    expect(t.id).toMatch(/^[0-9a-f-]{36}$/);
  } finally {
    await prisma.$disconnect();
    await db.drop();
  }
});

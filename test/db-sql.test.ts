import { PrismaPg } from "@prisma/adapter-pg";
import { createPrisma, PrismaClient } from "../src/db/prisma";
import { PgSql, sqlFor, type Sql } from "../src/db/sql";
import { createTestDatabase } from "./helpers/db";

let db: { url: string; drop: () => Promise<void> };
let prisma: PrismaClient;
/** a client built without createPrisma: no pool registered, so sqlFor falls back to raw statements through Prisma */
let bare: PrismaClient;

beforeAll(async () => {
  db = await createTestDatabase();
  prisma = createPrisma(db.url, 4);
  bare = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url, max: 2 }) });
});
afterAll(async () => {
  await prisma.$disconnect();
  await bare.$disconnect();
  await db.drop();
});

test("createPrisma registers its pool: sqlFor gives the pg implementation, the fallback otherwise", () => {
  expect(sqlFor(prisma)).toBeInstanceOf(PgSql);
  expect(sqlFor(bare)).not.toBeInstanceOf(PgSql);
  expect(sqlFor(prisma)).toBe(sqlFor(prisma));
});

describe.each([
  ["pg", () => sqlFor(prisma)],
  ["prisma fallback", () => sqlFor(bare)],
])("%s", (_name, get: () => Sql) => {
  let n = 0;
  const tenant = async (sql: Sql) => {
    const phone = `sql-${_name}-${++n}`;
    await sql.execute(
      `INSERT INTO tenants (id, name, phone_number_id, display_phone_number, access_token_enc, updated_at) VALUES (gen_random_uuid(), 'x', $1::text, '1', 'e', $2::timestamptz)`,
      [phone, new Date()],
    );
    return phone;
  };
  const count = async (sql: Sql, phone: string) =>
    (await sql.query<{ n: number }>({ name: "sql_test_count", text: `SELECT count(*)::int AS n FROM tenants WHERE phone_number_id = $1::text` }, [phone]))[0]!.n;

  test("query, execute and named statements", async () => {
    const sql = get();
    const phone = await tenant(sql);
    expect(await count(sql, phone)).toBe(1);
    expect(await count(sql, phone)).toBe(1); // the prepared statement again
    expect(await sql.execute(`UPDATE tenants SET name = 'y' WHERE phone_number_id = $1::text`, [phone])).toBe(1);
  });

  test("a transaction commits, or rolls back when its function throws", async () => {
    const sql = get();
    const kept = `kept-${_name}`;
    await sql.transaction(async (q) => {
      await q.execute(`INSERT INTO tenants (id, name, phone_number_id, display_phone_number, access_token_enc, updated_at) VALUES (gen_random_uuid(), 'x', $1::text, '1', 'e', now())`, [kept]);
    });
    expect(await count(sql, kept)).toBe(1);
    const lost = `lost-${_name}`;
    await expect(
      sql.transaction(async (q) => {
        await q.execute(`INSERT INTO tenants (id, name, phone_number_id, display_phone_number, access_token_enc, updated_at) VALUES (gen_random_uuid(), 'x', $1::text, '1', 'e', now())`, [lost]);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await count(sql, lost)).toBe(0);
    // the pool is still usable after a rollback
    expect(await count(sql, kept)).toBe(1);
  });

  test("the advisory locks, taken with the first statement, serialise transactions and are held until the end", async () => {
    const sql = get();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const key = { lockText: `t:wamid.'quoted'\\x` };
    const first = sql.transaction(async (q) => {
      await q.query("SELECT 1 AS one");
      order.push("first in");
      await gate;
      order.push("first out");
    }, key);
    await new Promise((r) => setTimeout(r, 100));
    const second = sql.transaction(async (q) => {
      await q.query("SELECT 1 AS one");
      order.push("second in");
    }, { ...key, lockKey: 42n });
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(order).toEqual(["first in"]);
    } finally {
      release();
    }
    await Promise.all([first, second]);
    expect(order).toEqual(["first in", "first out", "second in"]);
    // the lock was transaction-scoped: it is free again
    await sql.transaction((q) => q.query("SELECT 1 AS one"), { lockKey: -1n, lockText: "t:wamid" });
  });

  test("COMMIT with the last statement; a failing statement rolls the transaction back and the connection stays usable", async () => {
    const sql = get();
    const phone = `commit-${_name}`;
    const insert = { name: "sql_test_insert", text: `INSERT INTO tenants (id, name, phone_number_id, display_phone_number, access_token_enc, updated_at) VALUES (gen_random_uuid(), 'x', $1::text, '1', 'e', now())` };
    // twice: the first use prepares the named statement on its own, the second is pipelined with BEGIN and COMMIT
    for (const suffix of ["a", "b"]) {
      await sql.transaction(async (q) => {
        await q.execute(insert, [phone + suffix], { commit: true });
      }, { lockKey: 7n });
      expect(await count(sql, phone + suffix)).toBe(1);
    }
    // a unique violation in the pipelined statement: nothing of the transaction stays
    await expect(
      sql.transaction(async (q) => {
        await q.execute(insert, [phone + "c"]);
        await q.execute(insert, [phone + "a"], { commit: true }); // phone_number_id is unique
      }),
    ).rejects.toThrow();
    expect(await count(sql, phone + "c")).toBe(0);
    for (let i = 0; i < 6; i++) expect(await sql.transaction((q) => q.query<{ one: number }>("SELECT 1 AS one", [], { commit: true }))).toEqual([{ one: 1 }]);
    if (sql instanceof PgSql) {
      await expect(sql.transaction(async (q) => {
        await q.query("SELECT 1 AS one", [], { commit: true });
        await q.query("SELECT 1 AS one");
      })).rejects.toThrow(/after the transaction's COMMIT/);
    }
  });
});

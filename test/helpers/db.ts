import { randomBytes } from "node:crypto";
import { Client } from "pg";
import { ADMIN_DATABASE_URL, databaseUrl, templateDatabase } from "./env";

/**
 * A fresh database for one test file, copied from the template that global-setup migrated.
 * Returns its URL and a function that drops it.
 */
export interface TestDatabase {
  url: string;
  drop: () => Promise<void>;
  /** what this database's connections are doing (state, wait, query), to explain a close that does not end */
  activity?: () => Promise<string[]>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `wabot_t_${Math.floor(Date.now() / 1000)}_${randomBytes(4).toString("hex")}`;
  const admin = new Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect();
  try {
    // CREATE DATABASE … TEMPLATE needs the template to have no other sessions; retry briefly if one lingers.
    for (let i = 0; ; i++) {
      try {
        await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${templateDatabase()}"`);
        break;
      } catch (err) {
        if (i >= 50 || !/being accessed by other users/.test(String(err))) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    await admin.end();
  }
  const admin1 = async <T>(fn: (c: Client) => Promise<T>): Promise<T> => {
    const c = new Client({ connectionString: ADMIN_DATABASE_URL });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  return {
    url: databaseUrl(name),
    activity: () =>
      admin1(async (c) => {
        const r = await c.query<{ line: string }>(
          `SELECT concat_ws(' | ', state, wait_event_type || ':' || wait_event, now() - state_change, left(query, 160)) AS line
             FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
          [name],
        );
        return r.rows.map((row) => row.line);
      }),
    drop: async () => {
      const c = new Client({ connectionString: ADMIN_DATABASE_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
